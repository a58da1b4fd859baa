//! vecfusion's own statements, as parsed (planned and run by `crate::index::statements`).

use std::fmt;

/// A literal option value in `WITH (name = value, ...)`.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// The number as written (parsed by the option's reader).
    Number(String),
    String(String),
    Boolean(bool),
}

impl fmt::Display for OptionValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionValue::Number(n) => write!(f, "{n}"),
            OptionValue::String(s) => write!(f, "'{}'", s.replace('\'', "''")),
            OptionValue::Boolean(b) => write!(f, "{b}"),
        }
    }
}

/// `CREATE VECTOR INDEX [IF NOT EXISTS] name ON table (column) [USING kind] [WITH (...)]`
#[derive(Debug, Clone, PartialEq)]
pub struct CreateVectorIndex {
    pub name: String,
    pub if_not_exists: bool,
    pub table: String,
    pub column: String,
    /// `IVF_FLAT`, `IVF_SQ`, `IVF_PQ` as written (validated when planned).
    pub kind: Option<String>,
    pub options: Vec<(String, OptionValue)>,
}

impl fmt::Display for CreateVectorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CREATE VECTOR INDEX ")?;
        if self.if_not_exists {
            write!(f, "IF NOT EXISTS ")?;
        }
        write!(f, "{} ON {} ({})", self.name, self.table, self.column)?;
        if let Some(kind) = &self.kind {
            write!(f, " USING {kind}")?;
        }
        write_options(f, &self.options)
    }
}

/// `OPTIMIZE VECTOR INDEX name ON table [WITH (...)]`
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizeVectorIndex {
    pub name: String,
    pub table: String,
    pub options: Vec<(String, OptionValue)>,
}

impl fmt::Display for OptimizeVectorIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OPTIMIZE VECTOR INDEX {} ON {}", self.name, self.table)?;
        write_options(f, &self.options)
    }
}

/// `OPTIMIZE TABLE table [WITH (...)]`
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizeTable {
    pub table: String,
    pub options: Vec<(String, OptionValue)>,
}

impl fmt::Display for OptimizeTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "OPTIMIZE TABLE {}", self.table)?;
        write_options(f, &self.options)
    }
}

/// `CREATE EMBEDDING MODEL [IF NOT EXISTS] name FROM 'directory' [WITH (...)]`
#[derive(Debug, Clone, PartialEq)]
pub struct CreateEmbeddingModel {
    /// The SQL function's name (lower-cased unless quoted, as DataFusion resolves functions).
    pub name: String,
    pub if_not_exists: bool,
    pub path: String,
    pub options: Vec<(String, OptionValue)>,
}

impl fmt::Display for CreateEmbeddingModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CREATE EMBEDDING MODEL ")?;
        if self.if_not_exists {
            write!(f, "IF NOT EXISTS ")?;
        }
        let path = OptionValue::String(self.path.clone());
        write!(f, "{} FROM {path}", self.name)?;
        write_options(f, &self.options)
    }
}

/// `DROP EMBEDDING MODEL [IF EXISTS] name`
#[derive(Debug, Clone, PartialEq)]
pub struct DropEmbeddingModel {
    pub name: String,
    pub if_exists: bool,
}

impl fmt::Display for DropEmbeddingModel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let if_exists = if self.if_exists { "IF EXISTS " } else { "" };
        write!(f, "DROP EMBEDDING MODEL {if_exists}{}", self.name)
    }
}

fn write_options(f: &mut fmt::Formatter<'_>, options: &[(String, OptionValue)]) -> fmt::Result {
    if !options.is_empty() {
        let opts: Vec<String> = options.iter().map(|(k, v)| format!("{k} = {v}")).collect();
        write!(f, " WITH ({})", opts.join(", "))?;
    }
    Ok(())
}

/// `DROP VECTOR INDEX [IF EXISTS] name ON table`
#[derive(Debug, Clone, PartialEq)]
pub struct DropVectorIndex {
    pub name: String,
    pub if_exists: bool,
    pub table: String,
}

/// `SHOW VECTOR INDEXES [FROM table]`
#[derive(Debug, Clone, PartialEq)]
pub struct ShowVectorIndexes {
    pub table: Option<String>,
}
