//! Query vectors in SQL text, read without parsing the statement.
//!
//! A query vector written in SQL (`[0.12, -0.5, ...]`, hundreds of numbers) costs the SQL
//! parser about a microsecond per number — at 768 dimensions more than the search itself.
//! [`literal_query`] finds the one such literal of a query in its text, reads its numbers as
//! DataFusion's planner would, and gives the query's *shape* (the text with the literal
//! replaced by `$1`), so that queries of one shape can share one plan
//! (`crate::literal_queries`). [`vector_from_numbers`] is the one reading of number texts
//! as a query vector, also used for `EXECUTE name([...])`.

use std::ops::Range;

/// Fewer numbers than this are not worth a shape of their own (and are rarely a vector).
pub const MIN_VECTOR_LEN: usize = 8;

/// A query whose text holds one number array literal.
#[derive(Debug, Clone, PartialEq)]
pub struct LiteralQuery {
    /// The text with the literal replaced by `$1`.
    pub shape: String,
    /// Where the literal (brackets included) is in the text.
    pub literal: Range<usize>,
    /// Its numbers, as a query vector.
    pub vector: Vec<f32>,
}

/// The query `sql` is, when it is one `SELECT` or `WITH` statement (a trailing `;` allowed)
/// without placeholders, quoted text with escapes or dollar quoting, and with exactly one
/// array literal of at least [`MIN_VECTOR_LEN`] plain numbers outside quotes and comments;
/// `None` otherwise (the statement is then planned as written).
pub fn literal_query(sql: &str) -> Option<LiteralQuery> {
    let head = sql.trim_start();
    let keyword: String = head
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if !keyword.eq_ignore_ascii_case("select") && !keyword.eq_ignore_ascii_case("with") {
        return None;
    }
    let bytes = sql.as_bytes();
    let mut found: Option<(Range<usize>, Vec<f32>)> = None;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' | b'"' | b'`' => {
                let quote = bytes[i];
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => return None,
                        // Escapes read differently by dialects: leave such text alone.
                        Some(b'\\') => return None,
                        Some(&b) if b == quote => {
                            if bytes.get(i + 1) == Some(&quote) {
                                i += 2;
                            } else {
                                i += 1;
                                break;
                            }
                        }
                        Some(_) => i += 1,
                    }
                }
            }
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = sql[i + 2..].find("*/")?;
                i += 2 + end + 2;
            }
            b'$' => return None,
            b';' => {
                if !sql[i + 1..].trim().is_empty() {
                    return None;
                }
                i += 1;
            }
            b'[' => {
                // `a[1]`, `f(x)[1]`: a subscript, not a literal.
                let indexing = sql[..i]
                    .ends_with(|c: char| c.is_alphanumeric() || matches!(c, '_' | ')' | ']' | '"'));
                match (indexing, number_list(sql, i)) {
                    (false, Some((end, texts))) if texts.len() >= MIN_VECTOR_LEN => {
                        if found.is_some() {
                            return None;
                        }
                        found = Some((i..end, vector_from_numbers(&texts)?));
                        i = end;
                    }
                    _ => i += 1,
                }
            }
            _ => i += 1,
        }
    }
    let (literal, vector) = found?;
    let shape = format!("{}$1{}", &sql[..literal.start], &sql[literal.end..]);
    Some(LiteralQuery {
        shape,
        literal,
        vector,
    })
}

/// `EXECUTE name([numbers])` (a trailing `;` allowed): the statement's name, as DataFusion
/// names prepared statements (lower-cased unless quoted), and the vector; `None` for any
/// other text (which is then parsed as usual).
pub fn execute_call(sql: &str) -> Option<(String, Vec<f32>)> {
    let text = sql.trim();
    let text = text.strip_suffix(';').unwrap_or(text).trim_end();
    let (keyword, rest) = text.split_at_checked(7)?;
    if !keyword.eq_ignore_ascii_case("execute") || !rest.starts_with(char::is_whitespace) {
        return None;
    }
    let rest = rest.trim_start();
    let (name, rest) = if let Some(quoted) = rest.strip_prefix('"') {
        let end = quoted.find('"')?;
        (quoted[..end].to_string(), &quoted[end + 1..])
    } else {
        let end = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        if end == 0 || rest.starts_with(|c: char| c.is_ascii_digit()) {
            return None;
        }
        (rest[..end].to_ascii_lowercase(), &rest[end..])
    };
    let inner = rest.trim().strip_prefix('(')?.strip_suffix(')')?.trim();
    let (end, texts) = number_list(inner, 0).filter(|_| inner.starts_with('['))?;
    if end != inner.len() {
        return None;
    }
    Some((name, vector_from_numbers(&texts)?))
}

/// The numbers of the list that opens at `start` (`[`): where it ends (after `]`) and each
/// number as `(negated, digits)`; `None` when it is not a list of plain numbers.
fn number_list(sql: &str, start: usize) -> Option<(usize, Vec<(bool, &str)>)> {
    let bytes = sql.as_bytes();
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut texts = vec![];
    let mut i = skip_space(start + 1);
    loop {
        let negated = bytes.get(i) == Some(&b'-');
        if negated {
            i = skip_space(i + 1);
        }
        let end = number_end(bytes, i)?;
        texts.push((negated, &sql[i..end]));
        i = skip_space(end);
        match bytes.get(i)? {
            b',' => i = skip_space(i + 1),
            b']' => return Some((i + 1, texts)),
            _ => return None,
        }
    }
}

/// The end of the number that starts at `i`: digits with an optional fraction and exponent
/// (`12`, `1.5`, `.5`, `5.`, `1e-3`), as SQL writes a plain number.
fn number_end(bytes: &[u8], mut i: usize) -> Option<usize> {
    let digits = |mut i: usize| {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        (i, i > start)
    };
    let (after, whole) = digits(i);
    i = after;
    let mut any = whole;
    if bytes.get(i) == Some(&b'.') {
        let (after, fraction) = digits(i + 1);
        i = after;
        any |= fraction;
    }
    if !any {
        return None;
    }
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let (after, exponent) = digits(j);
        if !exponent {
            return None;
        }
        i = after;
    }
    // `1x`, `1_000`, `0x1F`: not a plain number.
    match bytes.get(i) {
        Some(b) if b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.' => None,
        _ => Some(i),
    }
}

/// Number texts (`(negated, digits)`) as a query vector, read as DataFusion's SQL planner
/// reads them — `i64` when every one is an integer, else `f64` — then made `f32` as every
/// query vector is. `None` for a form it reads otherwise (an integer beyond `i64`, which it
/// reads as `UInt64`; `_` separators), which is then planned as usual.
pub fn vector_from_numbers(texts: &[(bool, &str)]) -> Option<Vec<f32>> {
    if texts.is_empty() || texts.iter().any(|(_, n)| n.contains('_')) {
        return None;
    }
    let ints: Option<Vec<i64>> = texts
        .iter()
        .map(|(negative, n)| {
            let v = n.parse::<i64>().ok()?;
            if *negative { v.checked_neg() } else { Some(v) }
        })
        .collect();
    if let Some(ints) = ints {
        return Some(ints.into_iter().map(|v| v as f32).collect());
    }
    texts
        .iter()
        .map(|(negative, n)| {
            // Only an integer (digits alone) can be one DataFusion reads as UInt64.
            if n.bytes().all(|b| b.is_ascii_digit())
                && n.parse::<i64>().is_err()
                && n.parse::<u64>().is_ok()
            {
                return None;
            }
            let v = n.parse::<f64>().ok()?;
            Some((if *negative { -v } else { v }) as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{LiteralQuery, execute_call, literal_query};

    const V: &str = "[0.5, -1, 2e-3, .25, 3., - 4, 1E+2, 7]";

    #[test]
    fn the_one_vector_of_a_query_is_found_and_read() {
        let sql = format!("SELECT id FROM t ORDER BY l2_distance(embedding, {V}) LIMIT 10;");
        let LiteralQuery {
            shape,
            literal,
            vector,
        } = literal_query(&sql).unwrap();
        assert_eq!(&sql[literal], V);
        assert_eq!(
            shape,
            "SELECT id FROM t ORDER BY l2_distance(embedding, $1) LIMIT 10;"
        );
        assert_eq!(vector, vec![0.5, -1.0, 0.002, 0.25, 3.0, -4.0, 100.0, 7.0]);
        let ints = literal_query("with q as (select 1) select [1,2,3,4,5,6,7,8]").unwrap();
        assert_eq!(ints.vector, (1..=8).map(|v| v as f32).collect::<Vec<_>>());
    }

    #[test]
    fn an_execute_with_a_vector_is_read_from_its_text() {
        let (name, vector) = execute_call(&format!(" EXECUTE Q1 ( {V} ) ; ")).unwrap();
        assert_eq!(name, "q1");
        assert_eq!(vector.len(), 8);
        let (name, _) = execute_call("execute \"Q\"([1,2])").unwrap();
        assert_eq!(name, "Q");
        for sql in [
            "EXECUTE q([1, 2], 3)",
            "EXECUTE q(1)",
            "EXECUTE q([1, x])",
            "EXECUTEq([1])",
            "EXECUTE 1q([1])",
            "EXECUTE q([1]) USING x",
        ] {
            assert_eq!(execute_call(sql), None, "{sql}");
        }
    }

    #[test]
    fn anything_else_is_left_to_the_parser() {
        for sql in [
            // Not a query, or several statements, or placeholders.
            format!("INSERT INTO t VALUES (1, {V})"),
            format!("EXPLAIN SELECT {V}"),
            format!("SELECT {V}; SELECT 1"),
            format!("SELECT {V}, $1"),
            // Two vectors, or none long enough.
            format!("SELECT {V}, {V}"),
            "SELECT [1, 2, 3]".into(),
            // In quotes or comments.
            format!("SELECT '{V}'"),
            format!("SELECT 1 -- {V}"),
            format!("SELECT 1 /* {V} */"),
            // Escapes, dollar quoting.
            format!("SELECT 'it\\'s', {V}"),
            // Not plain numbers: an expression, a column, separators, a huge integer.
            "SELECT [1, 2, 3, 4, 5, 6, 7, 8 + 1]".into(),
            "SELECT [1, 2, 3, 4, 5, 6, 7, x]".into(),
            "SELECT [1_0, 2, 3, 4, 5, 6, 7, 8]".into(),
            "SELECT [1, 2, 3, 4, 5, 6, 7, 18446744073709551615]".into(),
            "SELECT [1, 2, 3, 4, 5, 6, 7, 0x1F]".into(),
            "SELECT [1, 2, 3, 4, 5, 6, 7, +8]".into(),
            // Subscripts, not literals.
            "SELECT a[1, 2, 3, 4, 5, 6, 7, 8] FROM t".into(),
            "SELECT f(x)[1, 2, 3, 4, 5, 6, 7, 8] FROM t".into(),
        ] {
            assert_eq!(literal_query(&sql), None, "{sql}");
        }
        // A vector beside quoted text with doubled quotes is still found.
        let sql = format!("SELECT 'it''s', {V}");
        assert!(literal_query(&sql).is_some());
    }
}
