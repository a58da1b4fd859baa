//! The exact distance functions of SQL (`l2_distance`, `cosine_distance`, `inner_product`,
//! `negative_inner_product`) as values: their names, their arithmetic, which index metric
//! answers them and which direction is "closest". The SQL functions themselves are in
//! `crate::udf::distance`; search and the optimizer rule use this type without depending on
//! the SQL layer.

use vecfusion_kernels::distance as k;

use super::Metric;

/// The distance functions vecfusion registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DistanceFunction {
    /// Euclidean distance `‖a − b‖`.
    L2,
    /// `1 − cos(a, b)`.
    Cosine,
    /// `a · b` (larger is closer; order by it descending).
    InnerProduct,
    /// `−(a · b)` (smaller is closer, like the other two).
    NegativeInnerProduct,
}

impl DistanceFunction {
    pub const ALL: [DistanceFunction; 4] = [
        DistanceFunction::L2,
        DistanceFunction::Cosine,
        DistanceFunction::InnerProduct,
        DistanceFunction::NegativeInnerProduct,
    ];

    pub fn name(self) -> &'static str {
        match self {
            DistanceFunction::L2 => "l2_distance",
            DistanceFunction::Cosine => "cosine_distance",
            DistanceFunction::InnerProduct => "inner_product",
            DistanceFunction::NegativeInnerProduct => "negative_inner_product",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.name() == name)
    }

    /// The distance between two equally long vectors.
    #[inline]
    pub fn eval(self, a: &[f32], b: &[f32]) -> f32 {
        match self {
            DistanceFunction::L2 => k::l2_squared(a, b).sqrt(),
            DistanceFunction::Cosine => k::cosine_distance(a, b),
            DistanceFunction::InnerProduct => k::dot(a, b),
            DistanceFunction::NegativeInnerProduct => -k::dot(a, b),
        }
    }

    /// The metric an index must have to answer this function.
    pub fn metric(self) -> Metric {
        match self {
            DistanceFunction::L2 => Metric::L2,
            DistanceFunction::Cosine => Metric::Cosine,
            DistanceFunction::InnerProduct | DistanceFunction::NegativeInnerProduct => Metric::Dot,
        }
    }

    /// The function searches use for an index of `metric` when none is named
    /// (`vector_search`, Python's `search`): its own distance, larger-is-closer for dot.
    pub fn for_metric(metric: Metric) -> Self {
        match metric {
            Metric::L2 => DistanceFunction::L2,
            Metric::Cosine => DistanceFunction::Cosine,
            Metric::Dot => DistanceFunction::InnerProduct,
        }
    }

    /// Whether `ORDER BY function ASC` puts the closest rows first (`inner_product` is the
    /// one ordered descending).
    pub fn ascending_is_closest(self) -> bool {
        self != DistanceFunction::InnerProduct
    }

    /// An ordering key of a value of this function: smaller is closer; NaN (e.g. cosine of a
    /// zero vector) sorts after every number, as in `ORDER BY`.
    pub fn closeness_key(self, value: f32) -> f32 {
        let key = if self.ascending_is_closest() {
            value
        } else {
            -value
        };
        if key.is_nan() { f32::INFINITY } else { key }
    }
}
