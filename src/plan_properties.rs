//! `PlanProperties` of vecfusion's execution plans, which come in two shapes, and the one
//! input requirement they declare.

use std::sync::Arc;

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalSortExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::{
    Distribution, InputDistributionRequirements, Partitioning, PlanProperties,
};

/// A plan that produces its whole (small) result at the end, in one partition: DML counts,
/// index builds (a top-k search, whose rows come in order: [`single_final_sorted`]).
pub fn single_final(schema: SchemaRef) -> Arc<PlanProperties> {
    single_final_sorted(schema, vec![])
}

/// [`single_final`] whose rows come sorted by `ordering` (none when empty): DataFusion then
/// drops a sort above the plan that this order already satisfies (keeping its limit).
pub fn single_final_sorted(
    schema: SchemaRef,
    ordering: Vec<PhysicalSortExpr>,
) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new_with_orderings(schema, [ordering]),
        Partitioning::UnknownPartitioning(1),
        EmissionType::Final,
        Boundedness::Bounded,
    ))
}

/// A bounded source streaming batches from `partitions` independent partitions.
pub fn streaming_source(schema: SchemaRef, partitions: usize) -> Arc<PlanProperties> {
    Arc::new(PlanProperties::new(
        EquivalenceProperties::new(schema),
        Partitioning::UnknownPartitioning(partitions),
        EmissionType::Incremental,
        Boundedness::Bounded,
    ))
}

/// Each of `children` inputs read whole, in one partition: what a plan that runs once over
/// all of its input's rows declares (a DELETE or UPDATE, an index build, a search's
/// prefilter). DataFusion then puts the merge (`CoalescePartitionsExec`) below it, which is
/// where a cluster ends one stage and starts the next, and Ballista hands such an input to
/// the task whole instead of restricting it to the task's own partitions.
pub fn whole_inputs(children: usize) -> InputDistributionRequirements {
    InputDistributionRequirements::new(vec![Distribution::SinglePartition; children])
}
