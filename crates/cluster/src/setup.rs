//! The session and codecs every process of a vecfusion cluster installs: the client (to send
//! plans), the scheduler (to decode them and plan physically with vecfusion's planners) and
//! the executors (to decode and run vecfusion's execution plans and call its functions).

use std::sync::Arc;

use ballista_core::extension::SessionConfigExt;
use ballista_core::serde::{BallistaLogicalExtensionCodec, BallistaPhysicalExtensionCodec};
use datafusion::execution::SessionState;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::logical_plan::LogicalExtensionCodec;
use datafusion_proto::physical_plan::{ComposedPhysicalExtensionCodec, PhysicalExtensionCodec};
use vecfusion::codec::{VecfusionLogicalCodec, VecfusionPhysicalCodec};
use vecfusion::session::{register_functions, session_state_builder};

use crate::shared_inputs::SharedInputsOnce;
use crate::task_partitions::{TaskPartitions, TaskPartitionsCodec};

/// vecfusion's logical codec, handing what is not vecfusion's to Ballista's.
pub fn logical_codec() -> Arc<dyn LogicalExtensionCodec> {
    Arc::new(VecfusionLogicalCodec::with_fallback(Arc::new(
        BallistaLogicalExtensionCodec::default(),
    )))
}

/// Ballista's physical codec (its shuffle nodes) composed with vecfusion's. The position of
/// each codec is written into every payload, so the order is part of the wire format:
/// append, never reorder.
pub fn physical_codec() -> Arc<dyn PhysicalExtensionCodec> {
    Arc::new(ComposedPhysicalExtensionCodec::new(vec![
        Arc::new(BallistaPhysicalExtensionCodec::default()),
        Arc::new(VecfusionPhysicalCodec),
        Arc::new(TaskPartitionsCodec),
    ]))
}

/// `config` with Ballista's settings and vecfusion's codecs.
pub fn cluster_config(config: SessionConfig) -> SessionConfig {
    let config = if config
        .options()
        .extensions
        .get::<ballista_core::config::BallistaConfig>()
        .is_none()
    {
        config.with_option_extension(ballista_core::config::BallistaConfig::default())
    } else {
        config
    };
    config
        .with_ballista_logical_extension_codec(logical_codec())
        .with_ballista_physical_extension_codec(physical_codec())
}

/// The Ballista setting that picks its adaptive planner (AQE).
const ADAPTIVE_PLANNER: &str = "ballista.planner.adaptive.enabled";

/// A session state with vecfusion installed (its table factory, planners, rules and
/// functions) and Ballista's settings: what the scheduler plans with, and where executors
/// take their function registry from. Its last physical optimizer rules compute inputs that
/// many tasks read once ([`SharedInputsOnce`]) and hand the partitions of vecfusion's leaves
/// out to tasks ([`TaskPartitions`]).
///
/// Jobs are planned by Ballista's static planner, whatever a client asks: the adaptive one
/// optimizes with a fixed list of its own rules in place of the session's, so vecfusion's
/// physical rules would not run — scans would then be read whole by every task of a stage,
/// and model calls would not be cut into cancellable chunks.
pub fn cluster_session_state(config: SessionConfig) -> SessionState {
    let mut config = cluster_config(config);
    config
        .options_mut()
        .set(ADAPTIVE_PLANNER, "false")
        .expect("Ballista's settings are installed by cluster_config");
    let state = session_state_builder(config)
        .with_physical_optimizer_rule(Arc::new(SharedInputsOnce))
        .with_physical_optimizer_rule(Arc::new(TaskPartitions))
        .build();
    let ctx = SessionContext::new_with_state(state);
    register_functions(&ctx);
    ctx.state()
}
