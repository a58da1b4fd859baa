//! Query vectors in SQL text, read without parsing the statement.
//!
//! A query vector written in SQL (`[0.12, -0.5, ...]`, hundreds of numbers) costs the SQL
//! parser about a microsecond per number — at 768 dimensions more than the search itself.
//! [`literal_query`] finds the one such literal of a query in its text, reads its numbers as
//! DataFusion's planner would, and gives the query's *shape* (the text with the literal
//! replaced by `$1`), so that queries of one shape can share one plan
//! (`crate::literal_queries`). [`read_number`] is the one reading of a number's text, in
//! one pass, for these literals, for `EXECUTE name([...])` read from its text and, through
//! [`vector_from_numbers`], for the numbers of a parsed `EXECUTE`.

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
                    (false, Some((end, numbers))) if numbers.len() >= MIN_VECTOR_LEN => {
                        if found.is_some() {
                            return None;
                        }
                        found = Some((i..end, vector_of(&numbers)?));
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
    let (end, numbers) = number_list(inner, 0).filter(|_| inner.starts_with('['))?;
    if end != inner.len() {
        return None;
    }
    Some((name, vector_of(&numbers)?))
}

/// The numbers of the list that opens at `start` (`[`): where it ends (after `]`) and each
/// number as the SQL planner reads it alone; `None` when it is not a list of plain numbers.
fn number_list(sql: &str, start: usize) -> Option<(usize, Vec<Number>)> {
    let bytes = sql.as_bytes();
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    let mut numbers = vec![];
    let mut i = skip_space(start + 1);
    loop {
        let negated = bytes.get(i) == Some(&b'-');
        if negated {
            i = skip_space(i + 1);
        }
        let (end, number) = read_number(sql, i, negated)?;
        numbers.push(number);
        i = skip_space(end);
        match bytes.get(i)? {
            b',' => i = skip_space(i + 1),
            b']' => return Some((i + 1, numbers)),
            _ => return None,
        }
    }
}

/// A number written in SQL, as DataFusion's SQL planner reads it on its own.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    /// An integer that fits `i64`.
    Int(i64),
    /// An integer beyond `i64` that fits `u64`, which the planner reads as `UInt64`.
    Unsigned,
    /// Anything else: a fraction, an exponent, an integer beyond `u64`.
    Float(f64),
}

/// Powers of ten that `f64` holds exactly.
const EXACT_POWERS_OF_TEN: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Reads the plain number that starts at `start` — digits with an optional fraction and
/// exponent (`12`, `1.5`, `.5`, `5.`, `1e-3`), as SQL writes one — negated if `negated`:
/// where it ends and its value; `None` when none starts there (or it runs on: `1x`, `1_000`,
/// `0x1F`).
///
/// One pass over the digits, since a query vector has hundreds of numbers and reading them
/// with `str::parse` (after a pass to find each one's end and a try as an integer) took about
/// 20 ns each: at 784 dimensions over a quarter of what a query with a kept plan cost around
/// its search. The value is the one `str::parse` gives: a number of at most 19 digits whose
/// scale is a power of ten that `f64` holds exactly is one correctly rounded multiplication
/// or division (Clinger's fast path, as the standard library takes it too); anything longer
/// is left to `str::parse`.
fn read_number(sql: &str, start: usize, negated: bool) -> Option<(usize, Number)> {
    let bytes = sql.as_bytes();
    let (mut i, mut mantissa, mut digits) = (start, 0u64, 0usize);
    let mut digit_run = |i: &mut usize| {
        while let Some(d) = bytes.get(*i).filter(|b| b.is_ascii_digit()) {
            mantissa = mantissa.wrapping_mul(10).wrapping_add(u64::from(d - b'0'));
            digits += 1;
            *i += 1;
        }
    };
    digit_run(&mut i);
    let whole = i > start;
    let mut fraction = None;
    if bytes.get(i) == Some(&b'.') {
        i += 1;
        let from = i;
        digit_run(&mut i);
        fraction = Some(i - from);
    }
    if !whole && fraction.unwrap_or(0) == 0 {
        return None;
    }
    let mut exponent = None;
    if matches!(bytes.get(i), Some(b'e' | b'E')) {
        let mut j = i + 1;
        let negative = matches!(bytes.get(j), Some(b'-'));
        if matches!(bytes.get(j), Some(b'+' | b'-')) {
            j += 1;
        }
        let from = j;
        let mut e = 0i64;
        while let Some(d) = bytes.get(j).filter(|b| b.is_ascii_digit()) {
            // Far beyond any finite `f64` already; `str::parse` reads such a number.
            e = (e * 10 + i64::from(d - b'0')).min(1 << 20);
            j += 1;
        }
        if j == from {
            return None;
        }
        exponent = Some(if negative { -e } else { e });
        i = j;
    }
    if matches!(bytes.get(i), Some(b) if b.is_ascii_alphanumeric() || *b == b'_' || *b == b'.') {
        return None;
    }
    let text = &sql[start..i];
    let sign = |v: f64| if negated { -v } else { v };
    let number = match (fraction, exponent) {
        // 18 digits stay below `i64::MAX`.
        (None, None) if digits <= 18 => {
            let v = mantissa as i64;
            Number::Int(if negated { -v } else { v })
        }
        (None, None) => match text.parse::<i64>() {
            Ok(v) => Number::Int(if negated { -v } else { v }),
            Err(_) if text.parse::<u64>().is_ok() => Number::Unsigned,
            Err(_) => Number::Float(sign(text.parse::<f64>().ok()?)),
        },
        _ => {
            let scale = exponent.unwrap_or(0) - fraction.unwrap_or(0) as i64;
            let power = EXACT_POWERS_OF_TEN.get(scale.unsigned_abs() as usize);
            match power {
                Some(&p) if digits <= 19 && mantissa <= 1 << 53 => {
                    let m = mantissa as f64;
                    Number::Float(sign(if scale < 0 { m / p } else { m * p }))
                }
                _ => Number::Float(sign(text.parse::<f64>().ok()?)),
            }
        }
    };
    Some((i, number))
}

/// Numbers as a query vector, read as DataFusion's SQL planner reads a list of them —
/// `Int64` when every one is an integer, else `Float64` — then made `f32` as every query
/// vector is. `None` when it reads them otherwise (an integer beyond `i64`, which it reads
/// as `UInt64`).
fn vector_of(numbers: &[Number]) -> Option<Vec<f32>> {
    if numbers.is_empty() {
        return None;
    }
    if let Some(ints) = numbers
        .iter()
        .map(|n| match n {
            Number::Int(v) => Some(*v as f32),
            _ => None,
        })
        .collect::<Option<Vec<f32>>>()
    {
        return Some(ints);
    }
    numbers
        .iter()
        .map(|n| match n {
            Number::Int(v) => Some(*v as f64 as f32),
            Number::Float(v) => Some(*v as f32),
            Number::Unsigned => None,
        })
        .collect()
}

/// Number texts (`(negated, digits)`, as the SQL parser gives them) as a query vector, read
/// as [`vector_of`] reads a list; `None` for a text that is not a plain number (`_`
/// separators).
pub fn vector_from_numbers(texts: &[(bool, &str)]) -> Option<Vec<f32>> {
    let numbers = texts
        .iter()
        .map(|&(negated, text)| match read_number(text, 0, negated)? {
            (end, number) if end == text.len() => Some(number),
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    vector_of(&numbers)
}

#[cfg(test)]
mod tests {
    use super::{
        LiteralQuery, Number, execute_call, literal_query, vector_from_numbers, vector_of,
    };

    /// The planner's reading of number texts: each number with the standard library's
    /// parsers (what `read_number` must agree with, bit for bit), the list by `vector_of`.
    fn planner_reading(texts: &[(bool, &str)]) -> Option<Vec<f32>> {
        let numbers = texts
            .iter()
            .map(|&(negated, n)| {
                Some(if let Ok(v) = n.parse::<i64>() {
                    Number::Int(if negated { -v } else { v })
                } else if n.bytes().all(|b| b.is_ascii_digit()) && n.parse::<u64>().is_ok() {
                    Number::Unsigned
                } else {
                    let v = n.parse::<f64>().ok()?;
                    Number::Float(if negated { -v } else { v })
                })
            })
            .collect::<Option<Vec<_>>>()?;
        vector_of(&numbers)
    }

    #[test]
    fn numbers_read_in_one_pass_are_the_planners_numbers_bit_for_bit() {
        // A small generator (no dependency): texts as people and programs write them.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut texts: Vec<String> = vec![];
        for _ in 0..20_000 {
            let r = next();
            let f = f32::from_bits(r as u32);
            let d = f64::from_bits(next());
            let digits = |n: u64, len: usize| {
                let s = format!("{n:020}{n:020}");
                s[s.len() - len..].to_string()
            };
            texts.push(match r % 9 {
                _ if !f.is_finite() || !d.is_finite() => "1".into(),
                0 => format!("{f:?}"),
                1 => format!("{f:e}"),
                2 => format!("{:?}", (r % 10_000) as f32 / 1000.0),
                3 => format!("{d:?}"),
                4 => digits(next(), 1 + (r >> 8) as usize % 26),
                5 => format!(
                    "{}.{}",
                    digits(next(), (r >> 8) as usize % 12),
                    digits(next(), 1 + (r >> 16) as usize % 24)
                ),
                6 => format!(
                    "{}e{}{}",
                    digits(next(), 1 + (r >> 8) as usize % 20),
                    ["", "+", "-"][(r >> 16) as usize % 3],
                    (r >> 24) % 400
                ),
                7 => format!(".{}", digits(next(), 1 + (r >> 8) as usize % 20)),
                _ => format!("{}.", digits(next(), 1 + (r >> 8) as usize % 20)),
            });
        }
        texts.extend(
            [
                "0",
                "00",
                "0.0",
                "-0",
                "9223372036854775807",
                "9223372036854775808",
                "18446744073709551615",
                "18446744073709551616",
                "9007199254740993",
                "1e22",
                "1e23",
                "4.9e-324",
                "1e-400",
                "1e400",
                "123456789012345678901234567890",
                "0.1",
            ]
            .map(String::from),
        );
        for (i, t) in texts.iter().enumerate() {
            let t = t.trim_start_matches('-');
            for negated in [false, true] {
                let one = [(negated, t)];
                let bits = |v: Option<Vec<f32>>| {
                    v.map(|v| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>())
                };
                assert_eq!(
                    bits(vector_from_numbers(&one)),
                    bits(planner_reading(&one)),
                    "{t}"
                );
                // In a list with a fraction, where integers are read as floats.
                let mixed = [(negated, t), (false, "0.5")];
                assert_eq!(
                    bits(vector_from_numbers(&mixed)),
                    bits(planner_reading(&mixed)),
                    "{t}"
                );
                // And through a query's text, as `literal_query` reads it.
                let sign = if negated { "-" } else { "" };
                let sql = format!("SELECT [{sign}{t}, 1, 2, 3, 4, 5, 6, {}]", i % 7);
                let expected = planner_reading(&[
                    (negated, t),
                    (false, "1"),
                    (false, "2"),
                    (false, "3"),
                    (false, "4"),
                    (false, "5"),
                    (false, "6"),
                    (false, &(i % 7).to_string()),
                ]);
                assert_eq!(
                    bits(literal_query(&sql).map(|q| q.vector)),
                    bits(expected),
                    "{sql}"
                );
            }
        }
    }

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
