//! `vecfusion-scheduler`: Ballista's scheduler with vecfusion inside. It takes Ballista's
//! own flags (`--bind-host`, `--bind-port` (50050), ...; `--help` lists them) and plans
//! every job with vecfusion's session: its table factory, planners, rules and functions,
//! and its codecs to read clients' plans and send executors theirs.

use std::process::ExitCode;
use std::sync::Arc;

use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::{Config, SchedulerConfig};
use ballista_scheduler::scheduler_process::start_server;
use clap::Parser;
use datafusion::prelude::SessionConfig;
use vecfusion_cluster::process::{exit_code, init_logging};
use vecfusion_cluster::{cluster_session_state, logical_codec, physical_codec};

#[tokio::main]
async fn main() -> ExitCode {
    exit_code("vecfusion-scheduler", run().await)
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let opt = Config::parse();
    init_logging(&opt.log_level_setting);
    let address = format!("{}:{}", opt.bind_host, opt.bind_port)
        .parse()
        .map_err(|e| format!("invalid --bind-host/--bind-port: {e}"))?;
    let mut config: SchedulerConfig = opt.try_into()?;
    config.override_logical_codec = Some(logical_codec());
    config.override_physical_codec = Some(physical_codec());
    // Made once: every job asks for it, and a session state registers every function.
    let session_config = cluster_session_state(SessionConfig::new()).config().clone();
    let config = config
        .with_override_config_producer(Arc::new(move || session_config.clone()))
        .with_override_session_builder(Arc::new(|config| Ok(cluster_session_state(config))));
    let cluster = BallistaCluster::new_from_config(&config).await?;
    start_server(cluster, address, Arc::new(config)).await?;
    Ok(())
}
