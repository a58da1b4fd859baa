//! The one SQL entry point: DataFusion's `DFParser`, with vecfusion's own statements
//! recognised first.
//!
//! `SessionContext::sql` cannot learn new statements (its dialects are a closed set), so the
//! shell, the Rust API and Python all parse here. A statement that starts with one of
//! vecfusion's keyword sequences is parsed by vecfusion; everything else is handed to
//! `DFParser` unchanged, so every DataFusion statement keeps working.

use datafusion::common::config::Dialect as DialectName;
use datafusion::error::{DataFusionError, Result};
use datafusion::sql::parser::{DFParser, DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::dialect::{Dialect, dialect_from_str};
use datafusion::sql::sqlparser::tokenizer::Token;

use super::dialect::VecfusionDialect;

/// A parsed statement.
#[derive(Debug, Clone)]
pub enum VfStatement {
    /// Any statement DataFusion itself understands.
    DataFusion(Box<DFStatement>),
}

impl std::fmt::Display for VfStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VfStatement::DataFusion(s) => write!(f, "{s}"),
        }
    }
}

/// The sqlparser dialect for a session's `datafusion.sql_parser.dialect` setting: the generic
/// dialect becomes [`VecfusionDialect`] (generic plus table versions).
pub fn dialect_for(name: &DialectName) -> Result<Box<dyn Dialect>> {
    if matches!(name, DialectName::Generic) {
        return Ok(Box::new(VecfusionDialect));
    }
    dialect_from_str(name)
        .ok_or_else(|| DataFusionError::Plan(format!("unsupported SQL dialect '{name}'")))
}

/// Parses a string of `;`-separated statements.
pub fn parse_statements(sql: &str, dialect: &dyn Dialect) -> Result<Vec<VfStatement>> {
    let mut parser = DFParserBuilder::new(sql).with_dialect(dialect).build()?;
    let mut statements = vec![];
    loop {
        while parser.parser.consume_token(&Token::SemiColon) {}
        if parser.parser.peek_token() == Token::EOF {
            break;
        }
        statements.push(parse_statement(&mut parser)?);
        let next = parser.parser.peek_token();
        if next.token != Token::SemiColon && next.token != Token::EOF {
            return Err(DataFusionError::SQL(
                Box::new(
                    datafusion::sql::sqlparser::parser::ParserError::ParserError(format!(
                        "Expected: end of statement, found: {next}"
                    )),
                ),
                None,
            ));
        }
    }
    Ok(statements)
}

fn parse_statement(parser: &mut DFParser) -> Result<VfStatement> {
    Ok(VfStatement::DataFusion(Box::new(parser.parse_statement()?)))
}
