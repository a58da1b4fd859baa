//! vecfusion on Apache DataFusion Ballista: what a cluster's processes share, and the client.
//!
//! Ballista's stock scheduler and executor cannot decode vecfusion's plan nodes or call its
//! functions, so the cluster runs `vecfusion-scheduler` and `vecfusion-executor` (Ballista's
//! own processes, flags and protocol, with vecfusion's session and codecs installed: see
//! [`setup`]), and clients connect with [`remote_session_context`].

pub mod local;
pub mod local_s3;
pub mod process;
pub mod remote;
pub mod setup;
pub mod shared_inputs;
pub mod task_partitions;

pub use remote::{
    DEFAULT_SCHEDULER_PORT, remote_session_context, remote_session_context_with_config,
};
pub use setup::{cluster_config, cluster_session_state, logical_codec, physical_codec};
