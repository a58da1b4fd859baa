//! SQL surface: the parser entry point, the dialect, time-travel planning and constant
//! query vectors.

pub mod array_literal;
pub mod dialect;
pub mod parser;
pub mod statement;
pub mod time_travel;

pub use parser::{VfStatement, dialect_for, parse_statements};
