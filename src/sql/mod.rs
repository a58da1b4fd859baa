//! SQL syntax: the parser entry point, vecfusion's statements, the dialect (with table
//! versions), the planning of array literals as constant query vectors, and query vectors
//! read from SQL text without parsing it.

pub mod array_literal;
pub mod dialect;
pub mod expression_depth;
pub mod parser;
pub mod statement;
pub mod vector_text;

pub use parser::{
    ScriptStatement, VfStatement, dialect_for, parse_float_as_decimal, parse_in_session,
    parse_script, parse_script_in_session, parse_statements,
};
