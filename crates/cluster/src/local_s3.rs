//! An S3-compatible server on this machine for tests and benchmarks: SeaweedFS (`weed mini`,
//! from `scripts/fetch-s3-server.sh`) with one bucket, on 127.0.0.1 or on a [`Host`] of its
//! own, stopped when dropped.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::common::exec_datafusion_err;
use datafusion::error::Result;
use futures::TryStreamExt;
use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;

use crate::local::Host;

pub const BUCKET: &str = "testbucket";
pub const KEY: &str = "testkey";
pub const SECRET: &str = "testsecret";

/// How long the server may take until its bucket lists.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Servers started, each on other ports, before giving up on ones that exit at once.
const START_ATTEMPTS: usize = 3;

/// The last lines of a server's log, for an error that says why it did not start.
fn log_tail(log: &std::path::Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

/// A SeaweedFS server with one bucket ([`BUCKET`]), stopped when dropped.
pub struct LocalS3 {
    child: Child,
    /// `http://IP:PORT` of its S3 API.
    pub endpoint: String,
    _data: tempfile::TempDir,
}

/// A base port whose five HTTP ports (base + 1..=5) and their gRPC twins (+ 10000) are free.
fn free_base_port() -> Result<u16> {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    for attempt in 0..200u32 {
        let base = 20_000 + ((seed / 7 + attempt * 7919) % 25_000) as u16;
        let free = (1..=5u16)
            .flat_map(|i| [base + i, base + i + 10_000])
            .all(|p| TcpListener::bind(("127.0.0.1", p)).is_ok());
        if free {
            return Ok(base);
        }
    }
    Err(exec_datafusion_err!("no free ports for the S3 server"))
}

/// The `weed` binary: `$VECFUSION_S3_SERVER`, else where `scripts/fetch-s3-server.sh` puts it.
fn weed() -> Result<PathBuf> {
    let path = std::env::var_os("VECFUSION_S3_SERVER")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .map(|h| PathBuf::from(h).join(".cache/vecfusion/s3-server/venv/bin/weed"))
        })
        .ok_or_else(|| exec_datafusion_err!("set VECFUSION_S3_SERVER or HOME"))?;
    if !path.is_file() {
        return Err(exec_datafusion_err!(
            "{} is missing: run scripts/fetch-s3-server.sh (or set VECFUSION_S3_SERVER)",
            path.display()
        ));
    }
    Ok(path)
}

impl LocalS3 {
    /// Starts the server on 127.0.0.1 and waits until its bucket lists.
    pub async fn start() -> Result<Self> {
        Self::start_on(&Host::loopback()).await
    }

    /// Starts the server on `host` and waits until its bucket lists. A server that exits
    /// before it lists — a port taken, between the check and its bind, by a server another
    /// test started at the same moment — is started again on other ports.
    pub async fn start_on(host: &Host) -> Result<Self> {
        let weed = weed()?;
        let mut exits = vec![];
        for _ in 0..START_ATTEMPTS {
            let data = tempfile::tempdir()?;
            let base = free_base_port()?;
            let port = |i: u16| (base + i).to_string();
            let log = data.path().join("weed.log");
            let child = host
                .command(&weed)
                .arg("mini")
                .arg(format!("-dir={}", data.path().display()))
                .arg(format!("-ip={}", host.ip))
                .arg(format!("-ip.bind={}", host.ip))
                .arg("-master.telemetry=false")
                .arg(format!("-master.port={}", port(1)))
                .arg(format!("-volume.port={}", port(2)))
                .arg(format!("-filer.port={}", port(3)))
                .arg(format!("-s3.port={}", port(4)))
                .arg(format!("-admin.port={}", port(5)))
                .args(["-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0"])
                .args(["-s3.port.lance=0", &format!("-bucket={BUCKET}")])
                .env("AWS_ACCESS_KEY_ID", KEY)
                .env("AWS_SECRET_ACCESS_KEY", SECRET)
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log)?)
                .spawn()
                .map_err(|e| exec_datafusion_err!("starting {}: {e}", weed.display()))?;
            let mut server = Self {
                child,
                endpoint: format!("http://{}:{}", host.ip, port(4)),
                _data: data,
            };
            let store = server.store()?;
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                let listed: std::result::Result<Vec<_>, _> = store.list(None).try_collect().await;
                let error = match listed {
                    Ok(_) => return Ok(server),
                    Err(e) => e,
                };
                if let Some(status) = server.child.try_wait()? {
                    exits.push(format!("exited ({status}): {}", log_tail(&log)));
                    break;
                }
                if Instant::now() > deadline {
                    return Err(exec_datafusion_err!(
                        "S3 server not ready after {START_TIMEOUT:?}: {error}; its log ends: {}",
                        log_tail(&log)
                    ));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Err(exec_datafusion_err!(
            "the S3 server did not start in {START_ATTEMPTS} attempts: {}",
            exits.join("; ")
        ))
    }

    /// A client of the bucket.
    pub fn store(&self) -> Result<Arc<dyn ObjectStore>> {
        Ok(Arc::new(
            AmazonS3Builder::new()
                .with_bucket_name(BUCKET)
                .with_endpoint(&self.endpoint)
                .with_allow_http(true)
                .with_region("us-east-1")
                .with_access_key_id(KEY)
                .with_secret_access_key(SECRET)
                .build()?,
        ))
    }

    /// Storage options as table `OPTIONS` keys.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws.endpoint", self.endpoint.as_str()),
            ("aws.allow_http", "true"),
            ("aws.region", "us-east-1"),
            ("aws.access_key_id", KEY),
            ("aws.secret_access_key", SECRET),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    /// `OPTIONS (...)` of a `CREATE EXTERNAL TABLE` on this server.
    pub fn sql_options(&self) -> String {
        let pairs: Vec<String> = self
            .options()
            .iter()
            .map(|(k, v)| format!("'{k}' '{v}'"))
            .collect();
        format!("OPTIONS ({})", pairs.join(", "))
    }

    /// `CREATE EXTERNAL TABLE name columns STORED AS VECFUSION` at `s3://BUCKET/prefix`.
    pub fn create_table(&self, name: &str, prefix: &str, columns: &str) -> String {
        format!(
            "CREATE EXTERNAL TABLE {name} {columns} STORED AS VECFUSION \
             LOCATION 's3://{BUCKET}/{prefix}' {}",
            self.sql_options()
        )
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
