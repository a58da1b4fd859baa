//! `vecfusion-executor`: Ballista's executor with vecfusion inside. It takes Ballista's own
//! flags (`--scheduler-host`, `--scheduler-port`, `--bind-port`, `--vcores`, `--work-dir`,
//! ...; `--help` lists them), decodes vecfusion's execution plans and calls its functions.

use std::process::ExitCode;
use std::sync::Arc;

use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::config::Config;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use clap::Parser;
use datafusion::prelude::SessionConfig;
use vecfusion_cluster::process::{exit_code, init_logging};
use vecfusion_cluster::{cluster_session_state, logical_codec, physical_codec};

#[tokio::main]
async fn main() -> ExitCode {
    exit_code("vecfusion-executor", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let opt = Config::parse();
    init_logging(&opt.log_level_setting);
    let mut config: ExecutorProcessConfig = opt.try_into()?;
    let state = cluster_session_state(SessionConfig::new());
    config.override_function_registry = Some(Arc::new(BallistaFunctionRegistry::from(&state)));
    config.override_logical_codec = Some(logical_codec());
    config.override_physical_codec = Some(physical_codec());
    // Made once: every task asks for it, and a session state registers every function.
    let session_config = state.config().clone();
    config.override_config_producer = Some(Arc::new(move || session_config.clone()));
    start_executor_process(Arc::new(config)).await?;
    Ok(())
}
