//! SQL functions: exact vector distances, table functions, and the statements that manage
//! embedding models (which are SQL functions).

pub mod cleanup;
pub mod computed;
pub mod distance;
pub mod embedding_models;
pub mod lookup;
pub mod random_vectors;
pub mod vector_search;
pub mod versions;

pub use cleanup::CleanupFunction;
pub use distance::distance_udf;
pub use random_vectors::{RandomVectorsFunction, RandomVectorsSpec};
pub use vector_search::VectorSearchFunction;
pub use versions::VersionsFunction;
