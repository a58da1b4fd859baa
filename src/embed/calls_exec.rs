//! `ModelCallsExec`: evaluates a projection's embedding-model calls ahead of it, a whole input
//! batch at a time, and appends their results as columns.
//!
//! A model call evaluated as a scalar function runs inside the poll of its projection, on
//! whatever rows it is given: to stay cancellable it must be given few (see
//! [`super::chunks_exec`]), and few rows mean padding. A model batch is padded to its
//! longest text; texts sorted by length within 256 rows still pad 1.5× more tokens than
//! texts sorted across a DataFusion batch of 8,192 (measured on the docstring corpus of
//! `bench/run.py embed`; a 10k-text INSERT took 1.8× as long as embedding the texts alone).
//! Here the texts of a whole batch are tokenized, sorted and run through the model
//! [`SentenceEmbedder::step`] by step, with a yield to the runtime after each model batch
//! (32 texts), so a cancelled statement stops within one of them.
//!
//! The output is the input's columns followed by one column per call; the projection above
//! reads them instead of calling the model (see [`super::chunks_rule`]).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::internal_err;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::ScalarUDFImpl;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr, ScalarFunctionExpr};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, PlanProperties,
    SendableRecordBatchStream,
};
use futures::TryStreamExt;

use super::function::EmbeddingFunction;

/// One model call: the function and the expression of its text argument.
#[derive(Debug, Clone)]
pub struct ModelCall {
    /// The whole call (`minilm(text)`), as the projection wrote it.
    pub expr: Arc<dyn PhysicalExpr>,
    function: Arc<EmbeddingFunction>,
    text: Arc<dyn PhysicalExpr>,
}

impl ModelCall {
    /// `expr` as a model call, if it is one (one text argument, as the function's signature
    /// requires).
    pub fn of(expr: &Arc<dyn PhysicalExpr>) -> Option<Self> {
        let call = expr.downcast_ref::<ScalarFunctionExpr>()?;
        let inner: Arc<dyn ScalarUDFImpl> = Arc::clone(call.fun().inner());
        let inner: Arc<dyn Any + Send + Sync> = inner;
        let function = inner.downcast::<EmbeddingFunction>().ok()?;
        let [text] = call.args() else {
            return None;
        };
        Some(Self {
            expr: Arc::clone(expr),
            function,
            text: Arc::clone(text),
        })
    }

    /// The text argument.
    pub fn text(&self) -> &Arc<dyn PhysicalExpr> {
        &self.text
    }
}

#[derive(Debug)]
pub struct ModelCallsExec {
    input: Arc<dyn ExecutionPlan>,
    calls: Vec<ModelCall>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ModelCallsExec {
    /// `input` with the results of `calls` appended, named `names` (one each).
    pub fn try_new(
        input: Arc<dyn ExecutionPlan>,
        calls: Vec<ModelCall>,
        names: &[String],
    ) -> Result<Self> {
        if calls.len() != names.len() {
            return internal_err!(
                "ModelCallsExec: {} calls, {} names",
                calls.len(),
                names.len()
            );
        }
        let input_schema = input.schema();
        let mut fields = input_schema.fields().to_vec();
        for (call, name) in calls.iter().zip(names) {
            let field = call.expr.return_field(&input_schema)?;
            fields.push(Arc::new(Field::clone(&field).with_name(name)));
        }
        let schema: SchemaRef = Arc::new(Schema::new_with_metadata(
            fields,
            input_schema.metadata().clone(),
        ));
        // The input's columns keep their positions, so its orderings still hold.
        let orderings = input.equivalence_properties().oeq_class().iter().cloned();
        let properties = PlanProperties::new(
            EquivalenceProperties::new_with_orderings(Arc::clone(&schema), orderings),
            input.output_partitioning().clone(),
            input.pipeline_behavior(),
            input.boundedness(),
        );
        Ok(Self {
            input,
            calls,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    fn names(&self) -> Vec<String> {
        let first = self.input.schema().fields().len();
        let schema = self.schema();
        schema.fields()[first..]
            .iter()
            .map(|f| f.name().clone())
            .collect()
    }
}

impl DisplayAs for ModelCallsExec {
    fn fmt_as(&self, _t: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        let calls: Vec<String> = self
            .calls
            .iter()
            .zip(self.names())
            .map(|(c, name)| format!("{} as {name}", c.expr))
            .collect();
        write!(f, "ModelCallsExec: calls=[{}]", calls.join(", "))
    }
}

impl ExecutionPlan for ModelCallsExec {
    fn name(&self) -> &str {
        "ModelCallsExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        for call in &self.calls {
            if f(&call.expr)? == TreeNodeRecursion::Stop {
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        match (children.pop(), children.is_empty()) {
            (Some(input), true) => Ok(Arc::new(Self::try_new(
                input,
                self.calls.clone(),
                &self.names(),
            )?)),
            _ => internal_err!("ModelCallsExec takes one child"),
        }
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let input = self.input.execute(partition, context)?;
        let schema = self.schema();
        let calls = self.calls.clone();
        let texts = MetricBuilder::new(&self.metrics).counter("texts", partition);
        let model_time = MetricBuilder::new(&self.metrics).subset_time("model_time", partition);
        let out_schema = Arc::clone(&schema);
        let stream = input.and_then(move |batch| {
            let (calls, schema) = (calls.clone(), Arc::clone(&out_schema));
            let (texts, model_time) = (texts.clone(), model_time.clone());
            async move {
                let mut columns = batch.columns().to_vec();
                for call in &calls {
                    let arg = call.text.evaluate(&batch)?.into_array(batch.num_rows())?;
                    let arg = EmbeddingFunction::texts(&arg)?;
                    let present = EmbeddingFunction::present(&arg);
                    let embedder = call.function.embedder();
                    let mut run = {
                        let _timer = model_time.timer();
                        embedder.start(&present)?
                    };
                    loop {
                        let more = {
                            let _timer = model_time.timer();
                            embedder.step(&mut run)?
                        };
                        // Where a cancelled statement stops: between model batches.
                        tokio::task::yield_now().await;
                        if !more {
                            break;
                        }
                    }
                    texts.add(present.len());
                    let (values, _) = run.finish();
                    columns.push(call.function.vector_array(&arg, values)?);
                }
                Ok(RecordBatch::try_new(schema, columns)?)
            }
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}
