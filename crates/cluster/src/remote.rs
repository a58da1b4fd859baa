//! The client: a `SessionContext` whose statements run on a vecfusion cluster.

use std::time::Duration;

use ballista::prelude::SessionContextExt;
use datafusion::common::plan_err;
use datafusion::error::Result;
use datafusion::prelude::{SessionConfig, SessionContext};
use tokio::net::TcpStream;
use url::Url;
use vecfusion::session::register_functions;

use crate::setup::cluster_session_state;

/// The port `vecfusion-scheduler` listens on unless told otherwise (Ballista's).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;

/// How long [`remote_session_context`] waits for the scheduler to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A session with vecfusion installed whose queries and statements are planned and run by
/// the vecfusion cluster whose scheduler is at `url` (`df://HOST:PORT`; the port defaults
/// to 50050). The Rust spelling of `vecfusion --remote df://HOST:PORT`; use it with
/// `VecfusionContext::vf_sql` as a local session.
///
/// Tables are registered in this session and sent with each plan, so the datasets must be
/// where every executor sees them: `s3://...`, or a local path when the whole cluster runs
/// on one machine. Fails with a clear error when nothing listens at the address.
pub async fn remote_session_context(url: &str) -> Result<SessionContext> {
    remote_session_context_with_config(url, SessionConfig::new()).await
}

/// [`remote_session_context`] with session settings.
pub async fn remote_session_context_with_config(
    url: &str,
    config: SessionConfig,
) -> Result<SessionContext> {
    let (host, port) = scheduler_address(url)?;
    check_reachable(url, &host, port).await?;
    let state = cluster_session_state(config);
    let ctx = SessionContext::remote_with_state(&format!("df://{host}:{port}"), state).await?;
    // Ballista's upgrade replaces the session's functions by its defaults.
    register_functions(&ctx);
    Ok(ctx)
}

/// Host and port of a `df://HOST[:PORT]` URL.
pub fn scheduler_address(url: &str) -> Result<(String, u16)> {
    let parsed = match Url::parse(url) {
        Ok(u) if u.scheme() == "df" => u,
        _ => {
            return plan_err!(
                "'{url}' is not a cluster address; write df://HOST:PORT (the address of \
                 vecfusion-scheduler, port {DEFAULT_SCHEDULER_PORT} by default)"
            );
        }
    };
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return plan_err!("'{url}' names no host; write df://HOST:PORT");
    };
    if !parsed.path().trim_matches('/').is_empty() || parsed.query().is_some() {
        return plan_err!("'{url}' has a path or query; write df://HOST:PORT");
    }
    Ok((
        host.to_string(),
        parsed.port().unwrap_or(DEFAULT_SCHEDULER_PORT),
    ))
}

/// Fails, naming `url`, unless something accepts a connection at `host:port` in time.
async fn check_reachable(url: &str, host: &str, port: u16) -> Result<()> {
    let why = match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect((host, port))).await {
        Ok(Ok(_)) => return Ok(()),
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} s", CONNECT_TIMEOUT.as_secs()),
    };
    plan_err!(
        "cannot reach the vecfusion scheduler at {url} ({why}); start one with \
         `vecfusion-scheduler --bind-port {port}` and executors with `vecfusion-executor \
         --scheduler-host {host} --scheduler-port {port}`"
    )
}
