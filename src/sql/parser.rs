//! The one SQL entry point: DataFusion's `DFParser`, with vecfusion's own statements
//! recognised first.
//!
//! `SessionContext::sql` cannot learn new statements (its dialects are a closed set), so the
//! shell, the Rust API and Python all parse here. A statement that starts with one of
//! vecfusion's keyword sequences is parsed by vecfusion; everything else is handed to
//! `DFParser` unchanged, so every DataFusion statement keeps working.

use std::ops::Range;

use datafusion::common::config::Dialect as DialectName;
use datafusion::common::plan_datafusion_err;
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::{DFParser, DFParserBuilder, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::Value;
use datafusion::sql::sqlparser::dialect::{Dialect, dialect_from_str};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::ParserError;
use datafusion::sql::sqlparser::tokenizer::{Location, Token};

use super::dialect::VecfusionDialect;
use super::expression_depth::check_expression_depth;
use super::statement::{
    CreateEmbeddingModel, CreateVectorIndex, DropEmbeddingModel, DropVectorIndex, OptimizeTable,
    OptimizeVectorIndex, OptionValue, ShowVectorIndexes,
};

/// A parsed statement.
#[derive(Debug, Clone)]
pub enum VfStatement {
    /// Any statement DataFusion itself understands.
    DataFusion(Box<DFStatement>),
    CreateVectorIndex(CreateVectorIndex),
    DropVectorIndex(DropVectorIndex),
    OptimizeVectorIndex(OptimizeVectorIndex),
    OptimizeTable(OptimizeTable),
    ShowVectorIndexes(ShowVectorIndexes),
    CreateEmbeddingModel(CreateEmbeddingModel),
    DropEmbeddingModel(DropEmbeddingModel),
    /// `SHOW EMBEDDING MODELS`
    ShowEmbeddingModels,
    /// `EXPLAIN [ANALYZE] [VERBOSE]` of one of vecfusion's statements.
    Explain {
        analyze: bool,
        verbose: bool,
        statement: Box<VfStatement>,
    },
}

impl std::fmt::Display for VfStatement {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VfStatement::DataFusion(s) => write!(f, "{s}"),
            VfStatement::CreateVectorIndex(s) => write!(f, "{s}"),
            VfStatement::OptimizeVectorIndex(s) => write!(f, "{s}"),
            VfStatement::OptimizeTable(s) => write!(f, "{s}"),
            VfStatement::CreateEmbeddingModel(s) => write!(f, "{s}"),
            VfStatement::DropEmbeddingModel(s) => write!(f, "{s}"),
            VfStatement::ShowEmbeddingModels => write!(f, "SHOW EMBEDDING MODELS"),
            VfStatement::DropVectorIndex(s) => {
                let if_exists = if s.if_exists { "IF EXISTS " } else { "" };
                write!(f, "DROP VECTOR INDEX {if_exists}{} ON {}", s.name, s.table)
            }
            VfStatement::ShowVectorIndexes(s) => match &s.table {
                Some(t) => write!(f, "SHOW VECTOR INDEXES FROM {t}"),
                None => write!(f, "SHOW VECTOR INDEXES"),
            },
            VfStatement::Explain {
                analyze,
                verbose,
                statement,
            } => {
                write!(f, "EXPLAIN ")?;
                if *analyze {
                    write!(f, "ANALYZE ")?;
                }
                if *verbose {
                    write!(f, "VERBOSE ")?;
                }
                write!(f, "{statement}")
            }
        }
    }
}

/// The sqlparser dialect for a session's `datafusion.sql_parser.dialect` setting: the generic
/// dialect becomes [`VecfusionDialect`] (generic plus table versions).
pub fn dialect_for(name: &DialectName) -> Result<Box<dyn Dialect>> {
    if matches!(name, DialectName::Generic) {
        return Ok(Box::new(VecfusionDialect));
    }
    dialect_from_str(name).ok_or_else(|| plan_datafusion_err!("unsupported SQL dialect '{name}'"))
}

/// A statement of a script and where its text is in the script: what a later statement of
/// a script needs to be answered with the kept plan of its shape (`literal_queries`).
#[derive(Debug, Clone)]
pub struct ScriptStatement {
    pub statement: VfStatement,
    /// Byte range of the statement's text (without its `;`); `None` where the parser gave
    /// no position.
    pub text: Option<Range<usize>>,
}

/// Parses a string of `;`-separated statements with the dialect `ctx`'s settings name.
pub fn parse_in_session(ctx: &SessionContext, sql: &str) -> Result<Vec<VfStatement>> {
    Ok(statements_of(parse_script_in_session(ctx, sql)?))
}

/// [`parse_in_session`], with where each statement's text is.
pub fn parse_script_in_session(ctx: &SessionContext, sql: &str) -> Result<Vec<ScriptStatement>> {
    // Read in place: `state()` clones the whole session state (every registered function
    // and table), a measurable share of a short query.
    let dialect = {
        let state = ctx.state_ref();
        let state = state.read();
        dialect_for(&state.config().options().sql_parser.dialect)?
    };
    parse_script(sql, dialect.as_ref())
}

/// Whether `ctx` reads `1.5` as a decimal rather than a float (then a number array is not a
/// query vector of floats).
pub fn parse_float_as_decimal(ctx: &SessionContext) -> bool {
    let state = ctx.state_ref();
    let state = state.read();
    state.config().options().sql_parser.parse_float_as_decimal
}

/// Parses a string of `;`-separated statements.
pub fn parse_statements(sql: &str, dialect: &dyn Dialect) -> Result<Vec<VfStatement>> {
    Ok(statements_of(parse_script(sql, dialect)?))
}

fn statements_of(script: Vec<ScriptStatement>) -> Vec<VfStatement> {
    script.into_iter().map(|s| s.statement).collect()
}

/// Parses a string of `;`-separated statements, noting where each one's text is.
pub fn parse_script(sql: &str, dialect: &dyn Dialect) -> Result<Vec<ScriptStatement>> {
    let mut parser = DFParserBuilder::new(sql).with_dialect(dialect).build()?;
    let mut cursor = TextCursor::new(sql);
    let mut statements = vec![];
    loop {
        while parser.parser.consume_token(&Token::SemiColon) {}
        let first = parser.parser.peek_token();
        if first == Token::EOF {
            break;
        }
        let start = cursor.byte_at(first.span.start);
        let statement = parse_statement(&mut parser)?;
        let next = parser.parser.peek_token();
        let end = match next.token {
            Token::EOF => Some(sql.len()),
            Token::SemiColon => cursor.byte_at(next.span.start),
            _ => {
                return Err(DataFusionError::SQL(
                    Box::new(
                        datafusion::sql::sqlparser::parser::ParserError::ParserError(format!(
                            "Expected: end of statement, found: {next}"
                        )),
                    ),
                    None,
                ));
            }
        };
        let text = start.zip(end).map(|(start, end)| start..end);
        statements.push(ScriptStatement { statement, text });
    }
    Ok(statements)
}

/// Turns the tokenizer's positions (1-based line and column, a column counting characters)
/// into byte offsets, moving forward only, so that a script is walked once however many
/// statements it has.
struct TextCursor<'a> {
    sql: &'a str,
    line: u64,
    column: u64,
    byte: usize,
}

impl<'a> TextCursor<'a> {
    fn new(sql: &'a str) -> Self {
        Self {
            sql,
            line: 1,
            column: 1,
            byte: 0,
        }
    }

    /// The byte offset of `at`; `None` for a position before the last one asked for, or
    /// one the text does not have (an empty span).
    fn byte_at(&mut self, at: Location) -> Option<usize> {
        if (at.line, at.column) < (self.line, self.column) {
            return None;
        }
        let mut chars = self.sql[self.byte..].chars();
        while (self.line, self.column) < (at.line, at.column) {
            let c = chars.next()?;
            self.byte += c.len_utf8();
            if c == '\n' {
                self.line += 1;
                self.column = 1;
            } else {
                self.column += 1;
            }
        }
        ((self.line, self.column) == (at.line, at.column)).then_some(self.byte)
    }
}

fn word(t: &Token) -> Option<String> {
    match t {
        Token::Word(w) => Some(w.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// Whether the next tokens spell `words` (case-insensitively), after skipping `skip` tokens.
fn peek_words(parser: &DFParser, skip: usize, words: &[&str]) -> bool {
    words
        .iter()
        .enumerate()
        .all(|(i, w)| word(&parser.parser.peek_nth_token(skip + i).token).as_deref() == Some(*w))
}

fn parse_statement(parser: &mut DFParser) -> Result<VfStatement> {
    if let Some(statement) = parse_vecfusion_statement(parser)? {
        return Ok(statement);
    }
    // EXPLAIN [ANALYZE] [VERBOSE] of one of ours.
    if peek_words(parser, 0, &["EXPLAIN"]) {
        let mut skip = 1;
        let mut analyze = false;
        let mut verbose = false;
        if peek_words(parser, skip, &["ANALYZE"]) {
            analyze = true;
            skip += 1;
        }
        if peek_words(parser, skip, &["VERBOSE"]) {
            verbose = true;
            skip += 1;
        }
        if is_vecfusion_statement(parser, skip) {
            for _ in 0..skip {
                parser.parser.next_token();
            }
            let statement = parse_vecfusion_statement(parser)?.expect("checked above");
            return Ok(VfStatement::Explain {
                analyze,
                verbose,
                statement: Box::new(statement),
            });
        }
    }
    let statement = parser.parse_statement()?;
    check_expression_depth(&statement)?;
    Ok(VfStatement::DataFusion(Box::new(statement)))
}

fn is_vecfusion_statement(parser: &DFParser, skip: usize) -> bool {
    peek_words(parser, skip, &["CREATE", "VECTOR", "INDEX"])
        || peek_words(parser, skip, &["DROP", "VECTOR", "INDEX"])
        || peek_words(parser, skip, &["OPTIMIZE", "VECTOR", "INDEX"])
        || peek_words(parser, skip, &["OPTIMIZE", "TABLE"])
        || peek_words(parser, skip, &["SHOW", "VECTOR", "INDEXES"])
        || is_embedding_model_statement(parser, skip)
}

fn is_embedding_model_statement(parser: &DFParser, skip: usize) -> bool {
    peek_words(parser, skip, &["CREATE", "EMBEDDING", "MODEL"])
        || peek_words(parser, skip, &["DROP", "EMBEDDING", "MODEL"])
        || peek_words(parser, skip, &["SHOW", "EMBEDDING", "MODELS"])
}

/// `CREATE/DROP EMBEDDING MODEL`, `SHOW EMBEDDING MODELS` (the three words already peeked).
fn parse_embedding_model_statement(parser: &mut DFParser) -> Result<VfStatement> {
    let first = word(&parser.parser.next_token().token).unwrap_or_default();
    parser.parser.next_token(); // EMBEDDING
    parser.parser.next_token(); // MODEL / MODELS
    let p = &mut parser.parser;
    // A function name as DataFusion resolves it: unquoted names are lower-cased.
    let function_name = |p: &mut datafusion::sql::sqlparser::parser::Parser| {
        p.parse_identifier().map(|i| match i.quote_style {
            None => i.value.to_lowercase(),
            Some(_) => i.value,
        })
    };
    Ok(match first.as_str() {
        "CREATE" => {
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            let name = function_name(p)?;
            if !p.parse_keyword(Keyword::FROM) {
                return Err(ParserError::ParserError(format!(
                    "CREATE EMBEDDING MODEL {name} needs the model's directory: CREATE EMBEDDING \
                     MODEL {name} FROM '/path/to/model' [WITH (accelerator = 'auto')]"
                ))
                .into());
            }
            let path = match p.parse_value()?.value {
                Value::SingleQuotedString(s) => s,
                other => {
                    return Err(ParserError::ParserError(format!(
                        "CREATE EMBEDDING MODEL {name} FROM expects a quoted directory path, \
                         found {other}"
                    ))
                    .into());
                }
            };
            let options = parse_with_options(p)?;
            VfStatement::CreateEmbeddingModel(CreateEmbeddingModel {
                name,
                if_not_exists,
                path,
                options,
            })
        }
        "DROP" => {
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = function_name(p)?;
            VfStatement::DropEmbeddingModel(DropEmbeddingModel { name, if_exists })
        }
        _ => VfStatement::ShowEmbeddingModels,
    })
}

fn parse_vecfusion_statement(parser: &mut DFParser) -> Result<Option<VfStatement>> {
    if !is_vecfusion_statement(parser, 0) {
        return Ok(None);
    }
    if is_embedding_model_statement(parser, 0) {
        return parse_embedding_model_statement(parser).map(Some);
    }
    if peek_words(parser, 0, &["OPTIMIZE", "TABLE"]) {
        parser.parser.next_token(); // OPTIMIZE
        parser.parser.next_token(); // TABLE
        let p = &mut parser.parser;
        let table = p.parse_object_name(false)?.to_string();
        let options = parse_with_options(p)?;
        return Ok(Some(VfStatement::OptimizeTable(OptimizeTable {
            table,
            options,
        })));
    }
    let first = word(&parser.parser.next_token().token).unwrap_or_default();
    parser.parser.next_token(); // VECTOR
    parser.parser.next_token(); // INDEX / INDEXES
    let p = &mut parser.parser;
    let statement = match first.as_str() {
        "CREATE" => {
            let if_not_exists = p.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
            if p.peek_keyword(Keyword::ON) {
                return Err(ParserError::ParserError(
                    "CREATE VECTOR INDEX needs a name: CREATE VECTOR INDEX <name> ON <table> \
                     (<column>) [USING IVF_FLAT | IVF_SQ | IVF_PQ] [WITH (...)]"
                        .into(),
                )
                .into());
            }
            let name = p.parse_identifier()?.value;
            p.expect_keyword(Keyword::ON)?;
            let table = p.parse_object_name(false)?.to_string();
            p.expect_token(&Token::LParen)?;
            let column = p.parse_identifier()?.value;
            p.expect_token(&Token::RParen)?;
            let kind = if p.parse_keyword(Keyword::USING) {
                Some(p.parse_identifier()?.value)
            } else {
                None
            };
            let options = parse_with_options(p)?;
            VfStatement::CreateVectorIndex(CreateVectorIndex {
                name,
                if_not_exists,
                table,
                column,
                kind,
                options,
            })
        }
        "OPTIMIZE" => {
            let name = p.parse_identifier()?.value;
            p.expect_keyword(Keyword::ON)?;
            let table = p.parse_object_name(false)?.to_string();
            let options = parse_with_options(p)?;
            VfStatement::OptimizeVectorIndex(OptimizeVectorIndex {
                name,
                table,
                options,
            })
        }
        "DROP" => {
            let if_exists = p.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
            let name = p.parse_identifier()?.value;
            p.expect_keyword(Keyword::ON)?;
            let table = p.parse_object_name(false)?.to_string();
            VfStatement::DropVectorIndex(DropVectorIndex {
                name,
                if_exists,
                table,
            })
        }
        _ => {
            let table = if p.parse_keyword(Keyword::FROM) || p.parse_keyword(Keyword::ON) {
                Some(p.parse_object_name(false)?.to_string())
            } else {
                None
            };
            VfStatement::ShowVectorIndexes(ShowVectorIndexes { table })
        }
    };
    Ok(Some(statement))
}

/// `[WITH (name = value, ...)]`: numbers, quoted strings and booleans.
fn parse_with_options(
    p: &mut datafusion::sql::sqlparser::parser::Parser,
) -> Result<Vec<(String, OptionValue)>> {
    if !p.parse_keyword(Keyword::WITH) {
        return Ok(vec![]);
    }
    p.expect_token(&Token::LParen)?;
    let options = p.parse_comma_separated(|p| {
        let key = p.parse_identifier()?.value.to_ascii_lowercase();
        p.expect_token(&Token::Eq)?;
        // A sign is kept with the number, so that the option's reader can say what is wrong
        // with `-3` rather than the parser failing on `-`.
        let negative = p.consume_token(&Token::Minus);
        let value = match p.parse_value()?.value {
            Value::Number(n, _) if negative => OptionValue::Number(format!("-{n}")),
            _ if negative => {
                return Err(ParserError::ParserError(format!(
                    "option '{key}': expected a number after '-'"
                )));
            }
            Value::Number(n, _) => OptionValue::Number(n.to_string()),
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => OptionValue::String(s),
            Value::Boolean(b) => OptionValue::Boolean(b),
            other => {
                return Err(ParserError::ParserError(format!(
                    "option '{key}': expected a number, a 'string' or true/false, found {other}"
                )));
            }
        };
        Ok((key, value))
    })?;
    p.expect_token(&Token::RParen)?;
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    fn parse_one(sql: &str) -> VfStatement {
        let mut s = parse_statements(sql, &GenericDialect {}).unwrap();
        assert_eq!(s.len(), 1, "{sql}");
        s.remove(0)
    }

    #[test]
    fn each_statement_of_a_script_knows_where_its_text_is() {
        let sql = "-- größte ✓\nSELECT 1;  SELECT 'ü' AS x ;\n\n  CREATE VECTOR INDEX i ON t (v) \
                   USING IVF_FLAT;;SELECT\n2";
        let texts: Vec<&str> = parse_script(sql, &GenericDialect {})
            .unwrap()
            .into_iter()
            .map(|s| &sql[s.text.expect("a position")])
            .collect();
        assert_eq!(
            texts,
            [
                "SELECT 1",
                "SELECT 'ü' AS x ",
                "CREATE VECTOR INDEX i ON t (v) USING IVF_FLAT",
                "SELECT\n2"
            ]
        );
        // A position behind the cursor, or past the text, has no byte offset.
        let mut cursor = TextCursor::new("ab\nc");
        assert_eq!(cursor.byte_at(Location { line: 2, column: 2 }), Some(4));
        assert_eq!(cursor.byte_at(Location { line: 1, column: 1 }), None);
        assert_eq!(cursor.byte_at(Location { line: 9, column: 1 }), None);
    }

    #[test]
    fn embedding_model_statements_parse_and_print_back() {
        let create = |sql: &str| match parse_one(sql) {
            VfStatement::CreateEmbeddingModel(c) => c,
            other => panic!("{other:?}"),
        };
        let drop = |sql: &str| match parse_one(sql) {
            VfStatement::DropEmbeddingModel(d) => d,
            other => panic!("{other:?}"),
        };
        let c = create(
            "create embedding model if not exists MiniLM from '/m/it''s' with (accelerator = 'auto')",
        );
        assert_eq!((c.name.as_str(), c.path.as_str()), ("minilm", "/m/it's"));
        assert!(c.if_not_exists);
        assert_eq!(
            c.options,
            [("accelerator".into(), OptionValue::String("auto".into()))]
        );
        assert_eq!(create(&c.to_string()), c);
        assert_eq!(
            create("CREATE EMBEDDING MODEL \"MiniLM\" FROM '/m'").name,
            "MiniLM"
        );

        let d = drop("DROP EMBEDDING MODEL IF EXISTS minilm");
        assert_eq!(
            d,
            DropEmbeddingModel {
                name: "minilm".into(),
                if_exists: true
            }
        );
        assert_eq!(drop(&d.to_string()), d);
        assert!(matches!(
            parse_one("SHOW EMBEDDING MODELS"),
            VfStatement::ShowEmbeddingModels
        ));

        let err = parse_statements("CREATE EMBEDDING MODEL m FROM 42", &GenericDialect {})
            .unwrap_err()
            .to_string();
        assert!(err.contains("expects a quoted directory path"), "{err}");
    }
}
