//! SQL syntax: the parser entry point, vecfusion's statements, the dialect (with table
//! versions), and the planning of array literals as constant query vectors.

pub mod array_literal;
pub mod dialect;
pub mod expression_depth;
pub mod parser;
pub mod statement;

pub use parser::{VfStatement, dialect_for, parse_statements};
