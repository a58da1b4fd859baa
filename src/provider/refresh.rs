//! Bringing a session's vecfusion tables up to date before a statement is planned.
//!
//! A table provider's schema is fixed, and DataFusion's SQL planning is synchronous, while
//! the columns of a dataset change with `ALTER TABLE` (possibly in another session or
//! process) and reading which columns a version has means reading its manifest. So before a
//! statement is planned, every vecfusion table it names is checked: a live table whose
//! newest version has other columns is registered again with them, and each `VERSION AS OF` /
//! `TIMESTAMP AS OF` version is loaded so that the view planned for it has that version's
//! columns. Errors are left to planning and execution, which report them in context.

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::catalog::TableProvider;
use datafusion::common::{DFSchema, TableReference};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DFStatement;
use datafusion::sql::planner::object_name_to_table_reference;
use datafusion::sql::sqlparser::ast::{ObjectName, TableFactor, TableVersion, Visit, Visitor};

use super::time_travel::{timestamp_ms, version_number};
use super::{VecfusionTable, VersionTarget};

/// The table names of a statement, and the versions it asks of them.
#[derive(Default)]
struct Relations {
    names: Vec<ObjectName>,
    versions: Vec<(ObjectName, TableVersion)>,
}

impl Visitor for Relations {
    type Break = ();

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        if !self.names.contains(relation) {
            self.names.push(relation.clone());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name,
            version: Some(version),
            ..
        } = factor
        {
            self.versions.push((name.clone(), version.clone()));
        }
        ControlFlow::Continue(())
    }
}

/// Refreshes the vecfusion tables `statement` names (see the module documentation).
pub async fn refresh_tables(ctx: &SessionContext, statement: &DFStatement) {
    let mut relations = Relations::default();
    let _ = match statement {
        DFStatement::Statement(s) => s.visit(&mut relations),
        DFStatement::Explain(e) => match e.statement.as_ref() {
            DFStatement::Statement(s) => s.visit(&mut relations),
            _ => ControlFlow::Continue(()),
        },
        _ => ControlFlow::Continue(()),
    };
    let normalize = ident_normalization(ctx);
    for name in relations.names {
        if let Ok(reference) = object_name_to_table_reference(name, normalize) {
            refresh_table(ctx, reference).await;
        }
    }
    for (name, version) in relations.versions {
        resolve_version(ctx, name, &version).await;
    }
}

/// Registers table `name` again when its newest version has other columns than the
/// registered table.
pub async fn refresh_table(ctx: &SessionContext, reference: TableReference) {
    let Ok(provider) = ctx.table_provider(reference.clone()).await else {
        return;
    };
    let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
        return;
    };
    if table.target() != VersionTarget::Latest {
        return;
    }
    let Ok(latest) = table.cached().checkout_latest().await else {
        return;
    };
    if latest.schema().fields() != table.schema().fields()
        && ctx.deregister_table(reference.clone()).is_ok()
    {
        let _ = ctx.register_table(reference, Arc::new(VecfusionTable::new(latest)));
    }
}

/// Whether the session lower-cases unquoted identifiers, as DataFusion's planner does.
pub fn ident_normalization(ctx: &SessionContext) -> bool {
    ctx.state()
        .config()
        .options()
        .sql_parser
        .enable_ident_normalization
}

async fn resolve_version(ctx: &SessionContext, name: ObjectName, version: &TableVersion) {
    let Ok(reference) = object_name_to_table_reference(name, ident_normalization(ctx)) else {
        return;
    };
    let Ok(provider) = ctx.table_provider(reference).await else {
        return;
    };
    let Some(table) = provider.downcast_ref::<VecfusionTable>() else {
        return;
    };
    let state = ctx.state();
    let target = match version {
        TableVersion::VersionAsOf(e) => state
            .create_logical_expr(&e.to_string(), &DFSchema::empty())
            .and_then(|e| version_number(&e))
            .map(VersionTarget::Version),
        TableVersion::TimestampAsOf(e) => state
            .create_logical_expr(&e.to_string(), &DFSchema::empty())
            .and_then(|e| timestamp_ms(&e))
            .map(VersionTarget::Timestamp),
        _ => return,
    };
    if let Ok(target) = target {
        let _ = table.resolve_view(target).await;
    }
}
