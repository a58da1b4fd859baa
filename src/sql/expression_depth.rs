//! A limit on how deeply a statement's expressions nest.
//!
//! sqlparser bounds recursion for parentheses and function calls, but parses a chain of
//! binary operators (`1 + 1 + ... + 1`) in a loop, so one statement can build an expression
//! thousands of levels deep. DataFusion then plans it recursively and in quadratic time
//! (2,000 terms took 6 s, 8,000 overflowed the stack). Statements deeper than
//! [`MAX_EXPRESSION_DEPTH`] are refused right after parsing, before any planning.

use std::ops::ControlFlow;

use datafusion::common::plan_err;
use datafusion::error::Result;
use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Expr, Visit, Visitor};

/// Deepest expression nesting accepted (Postgres' default stack allows a few thousand;
/// planning time grows with the square of the depth).
pub const MAX_EXPRESSION_DEPTH: usize = 1_000;

/// Fails when an expression of `statement` nests deeper than [`MAX_EXPRESSION_DEPTH`].
pub fn check_expression_depth(statement: &DFStatement) -> Result<()> {
    let mut visitor = DepthLimit;
    let flow = match statement {
        DFStatement::Statement(s) => s.visit(&mut visitor),
        DFStatement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(q) => q.visit(&mut visitor),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        DFStatement::Explain(explain) => return check_expression_depth(&explain.statement),
        _ => ControlFlow::Continue(()),
    };
    match flow {
        ControlFlow::Continue(()) => Ok(()),
        ControlFlow::Break(()) => plan_err!(
            "an expression nests more than {MAX_EXPRESSION_DEPTH} levels deep (e.g. a chain of \
             more than {MAX_EXPRESSION_DEPTH} operators); the limit is {MAX_EXPRESSION_DEPTH}. \
             Split it into several expressions or columns"
        ),
    }
}

/// Breaks at the first expression deeper than the limit, before the visitor descends into
/// it (the visitor's own recursion is then never deeper than the limit either).
struct DepthLimit;

impl Visitor for DepthLimit {
    type Break = ();

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if depth(expr, MAX_EXPRESSION_DEPTH) > MAX_EXPRESSION_DEPTH {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

/// Nesting depth of the operator chains under `expr`, measured without recursion and
/// stopping once it exceeds `cap`. Other expression kinds count as leaves: their nesting is
/// bounded by the parser's recursion limit and checked when the visitor reaches them.
fn depth(expr: &Expr, cap: usize) -> usize {
    let mut stack = vec![(expr, 1usize)];
    let mut deepest = 0;
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        if deepest > cap {
            break;
        }
        match e {
            Expr::BinaryOp { left, right, .. } => {
                stack.push((left, d + 1));
                stack.push((right, d + 1));
            }
            Expr::UnaryOp { expr, .. }
            | Expr::Nested(expr)
            | Expr::Cast { expr, .. }
            | Expr::IsNull(expr)
            | Expr::IsNotNull(expr)
            | Expr::IsTrue(expr)
            | Expr::IsFalse(expr)
            | Expr::Collate { expr, .. } => stack.push((expr, d + 1)),
            _ => {}
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::parse_statements;
    use crate::sql::parser::VfStatement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;

    fn check(sql: &str) -> Result<()> {
        match parse_statements(sql, &GenericDialect {})?.remove(0) {
            VfStatement::DataFusion(s) => check_expression_depth(&s),
            _ => Ok(()),
        }
    }

    #[test]
    fn long_operator_chains_are_refused_and_short_ones_pass() {
        let chain = |n: usize| format!("SELECT 1{}", " + 1".repeat(n));
        assert!(check(&chain(500)).is_ok());
        let err = check(&chain(8000)).unwrap_err().to_string();
        assert!(err.contains("the limit is 1000"), "{err}");
        let err = check(&format!("EXPLAIN {}", chain(5000)))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the limit is 1000"), "{err}");
        let err = check(&format!(
            "SELECT * FROM t WHERE x = 1{}",
            " AND x = 1".repeat(3000)
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("more than 1000 levels deep"), "{err}");
    }
}
