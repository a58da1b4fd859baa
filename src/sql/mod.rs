//! SQL surface: the parser entry point, the dialect, and time-travel planning.

pub mod dialect;
pub mod parser;
pub mod statement;
pub mod time_travel;

pub use parser::{VfStatement, dialect_for, parse_statements};
