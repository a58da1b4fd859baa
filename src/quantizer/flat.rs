//! IVF_FLAT: the code of a row is the row (`dim` little-endian `f32`), so distances inside a
//! probed partition are exact.

use datafusion::arrow::buffer::{Buffer, ScalarBuffer};
use datafusion::error::Result;
use vecfusion_kernels::distance::l2_squared_batch;
use vecfusion_kernels::scan::neg_dot_batch;

use super::{Quantizer, QuantizerParams, QueryTables};
use crate::kmeans::Backend;
use crate::metric::Metric;

#[derive(Debug)]
pub struct FlatQuantizer {
    params: QuantizerParams,
}

impl FlatQuantizer {
    pub fn new(params: QuantizerParams) -> Self {
        Self { params }
    }
}

impl Quantizer for FlatQuantizer {
    fn params(&self) -> &QuantizerParams {
        &self.params
    }

    fn code_size(&self) -> usize {
        self.params.dim * 4
    }

    fn sections(&self) -> Vec<(&'static str, &[f32])> {
        vec![]
    }

    fn encode(&self, _backend: &dyn Backend, rows: &[f32], _partitions: &[u32]) -> Result<Vec<u8>> {
        Ok(rows.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn prepare(&self, _query: &[f32]) -> QueryTables {
        QueryTables::new(())
    }

    fn scan(
        &self,
        _partition: usize,
        _coarse: f32,
        query: &[f32],
        _tables: &QueryTables,
        codes: &Buffer,
        scores: &mut [f32],
        _scratch: &mut Vec<f32>,
    ) {
        let values: ScalarBuffer<f32> =
            ScalarBuffer::new(codes.clone(), 0, scores.len() * self.params.dim);
        match self.params.metric {
            Metric::Dot => neg_dot_batch(&values, query, scores),
            Metric::L2 | Metric::Cosine => {
                l2_squared_batch(&values, self.params.dim, query, scores)
            }
        }
    }
}
