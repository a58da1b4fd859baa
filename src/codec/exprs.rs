//! Expressions inside vecfusion's payloads, in DataFusion's own protobuf form. Functions
//! travel by name and are looked up in the receiving task's registry, so every process of a
//! cluster registers vecfusion's functions (the cluster binaries do).

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::common::plan_datafusion_err;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::PhysicalExpr;
use datafusion_proto::logical_plan::from_proto::parse_exprs;
use datafusion_proto::logical_plan::to_proto::serialize_exprs;
use datafusion_proto::logical_plan::{DefaultLogicalExtensionCodec, LogicalExtensionCodec};
use datafusion_proto::physical_plan::PhysicalExtensionCodec;
use datafusion_proto::physical_plan::from_proto::parse_physical_expr;
use datafusion_proto::physical_plan::to_proto::serialize_physical_expr;
use datafusion_proto::protobuf::{LogicalExprList, PhysicalExprNode};
use prost::Message;

/// `exprs` as bytes; `codec` encodes what DataFusion's protobuf form does not cover.
pub fn logical_to_bytes(exprs: &[Expr], codec: &dyn LogicalExtensionCodec) -> Result<Vec<u8>> {
    let list = LogicalExprList {
        expr: serialize_exprs(exprs, codec)?,
    };
    Ok(list.encode_to_vec())
}

pub fn logical_from_bytes(
    bytes: &[u8],
    ctx: &TaskContext,
    codec: &dyn LogicalExtensionCodec,
) -> Result<Vec<Expr>> {
    let list = LogicalExprList::decode(bytes)
        .map_err(|e| plan_datafusion_err!("cannot decode expressions of a vecfusion node: {e}"))?;
    Ok(parse_exprs(&list.expr, ctx, codec)?)
}

/// Logical expressions inside physical nodes (a scan's filters) need no extension codec.
pub fn scan_filters_to_bytes(exprs: &[Expr]) -> Result<Vec<u8>> {
    logical_to_bytes(exprs, &DefaultLogicalExtensionCodec {})
}

pub fn scan_filters_from_bytes(bytes: &[u8], ctx: &TaskContext) -> Result<Vec<Expr>> {
    logical_from_bytes(bytes, ctx, &DefaultLogicalExtensionCodec {})
}

pub fn physical_to_bytes(
    expr: &Arc<dyn PhysicalExpr>,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<Vec<u8>> {
    Ok(serialize_physical_expr(expr, codec)?.encode_to_vec())
}

pub fn physical_from_bytes(
    bytes: &[u8],
    ctx: &TaskContext,
    schema: &Schema,
    codec: &dyn PhysicalExtensionCodec,
) -> Result<Arc<dyn PhysicalExpr>> {
    let node = PhysicalExprNode::decode(bytes).map_err(|e| {
        plan_datafusion_err!("cannot decode an expression of a vecfusion node: {e}")
    })?;
    parse_physical_expr(&node, ctx, schema, codec)
}
