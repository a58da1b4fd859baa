//! A cluster on this machine: `vecfusion-scheduler` and `vecfusion-executor` started as child
//! processes with free ports, stopped when dropped — on 127.0.0.1, or each on its own
//! [`Host`] (a network namespace with its own address, as separate machines would be). What
//! the tests, the shell's tests and the distributed benchmark run against.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use datafusion::common::exec_datafusion_err;
use datafusion::error::Result;

/// How long a process may take to listen on its port.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Seconds without a heartbeat after which the scheduler declares an executor lost.
pub const EXECUTOR_TIMEOUT_SECONDS: u64 = 5;

/// Where a process runs: the address it binds and advertises, and the network namespace it
/// runs in (`None`: this machine's own network).
#[derive(Debug, Clone)]
pub struct Host {
    pub ip: String,
    pub netns: Option<String>,
}

impl Host {
    pub fn loopback() -> Self {
        Self {
            ip: "127.0.0.1".into(),
            netns: None,
        }
    }

    /// `program`, to be started on this host.
    pub(crate) fn command(&self, program: &Path) -> Command {
        match &self.netns {
            None => Command::new(program),
            Some(ns) => {
                // `ip netns exec` execs the program, so the child is the program itself.
                let mut command = Command::new("ip");
                command.args(["netns", "exec", ns]).arg(program);
                command
            }
        }
    }
}

/// A scheduler and executors as child processes; killed when dropped.
pub struct LocalCluster {
    scheduler: Child,
    executors: Vec<Child>,
    host: Host,
    port: u16,
    work: tempfile::TempDir,
}

impl LocalCluster {
    /// Starts a scheduler and `executors` executors (each with `vcores` task slots) from the
    /// binaries in `bin_dir`, and waits until each listens.
    pub fn start(bin_dir: &Path, executors: usize, vcores: usize) -> Result<Self> {
        let hosts = vec![Host::loopback(); executors];
        Self::start_on(bin_dir, &Host::loopback(), &hosts, vcores)
    }

    /// Starts the scheduler on `scheduler` and one executor on each of `executors`.
    pub fn start_on(
        bin_dir: &Path,
        scheduler: &Host,
        executors: &[Host],
        vcores: usize,
    ) -> Result<Self> {
        let work = tempfile::tempdir()?;
        let port = free_port()?;
        let ip = scheduler.ip.as_str();
        let process = scheduler
            .command(&binary(bin_dir, "vecfusion-scheduler")?)
            .args(["--bind-host", ip, "--external-host", ip])
            .args(["--bind-port", &port.to_string()])
            // A stopped executor is noticed within seconds (Ballista's defaults wait minutes),
            // so that its tasks are retried or its job fails while a test waits.
            .args([
                "--executor-timeout-seconds",
                &EXECUTOR_TIMEOUT_SECONDS.to_string(),
            ])
            .args(["--expire-dead-executor-interval-seconds", "1"])
            .stdout(Stdio::from(log_file(work.path(), "scheduler")?))
            .stderr(Stdio::from(log_file(work.path(), "scheduler.err")?))
            .spawn()?;
        let mut cluster = Self {
            scheduler: process,
            executors: vec![],
            host: scheduler.clone(),
            port,
            work,
        };
        cluster.wait_listening(&scheduler.ip, port, "vecfusion-scheduler")?;
        for host in executors {
            cluster.add_executor(bin_dir, host, vcores)?;
        }
        Ok(cluster)
    }

    /// Starts one more executor, on `host`.
    pub fn add_executor(&mut self, bin_dir: &Path, host: &Host, vcores: usize) -> Result<()> {
        let i = self.executors.len();
        let (flight, grpc, health) = (free_port()?, free_port()?, free_port()?);
        let dir = self.work.path().join(format!("executor-{i}"));
        std::fs::create_dir_all(&dir)?;
        let executor = host
            .command(&binary(bin_dir, "vecfusion-executor")?)
            .args(["--scheduler-host", &self.host.ip])
            .args(["--scheduler-port", &self.port.to_string()])
            .args(["--bind-host", &host.ip, "--external-host", &host.ip])
            .args(["--bind-port", &flight.to_string()])
            .args(["--bind-grpc-port", &grpc.to_string()])
            .args(["--bind-health-port", &health.to_string()])
            .args(["--vcores", &vcores.to_string()])
            .args(["--executor-heartbeat-interval-seconds", "1"])
            .arg("--work-dir")
            .arg(&dir)
            .stdout(Stdio::from(log_file(
                self.work.path(),
                &format!("executor-{i}"),
            )?))
            .stderr(Stdio::from(log_file(
                self.work.path(),
                &format!("executor-{i}.err"),
            )?))
            .spawn()?;
        self.executors.push(executor);
        self.wait_listening(&host.ip, flight, "vecfusion-executor")
    }

    /// The address clients connect to.
    pub fn url(&self) -> String {
        format!("df://{}:{}", self.host.ip, self.port)
    }

    /// Kills executor `i` (SIGKILL), as a machine failing would.
    pub fn kill_executor(&mut self, i: usize) -> Result<()> {
        let executor = self
            .executors
            .get_mut(i)
            .ok_or_else(|| exec_datafusion_err!("there is no executor {i}"))?;
        executor.kill()?;
        executor.wait()?;
        Ok(())
    }

    /// Lines executor `i` has logged so far.
    pub fn executor_log(&self, i: usize) -> String {
        let path = self.work.path().join(format!("executor-{i}.log"));
        std::fs::read_to_string(path).unwrap_or_default()
    }

    /// The last lines each process printed, for an error message.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let Ok(entries) = std::fs::read_dir(self.work.path()) else {
            return out;
        };
        let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths.iter().filter(|p| p.is_file()) {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(20)..].join("\n");
            out += &format!("== {}\n{tail}\n", path.display());
        }
        out
    }

    fn wait_listening(&mut self, ip: &str, port: u16, what: &str) -> Result<()> {
        let start = Instant::now();
        while std::net::TcpStream::connect((ip, port)).is_err() {
            let exited = std::iter::once(&mut self.scheduler)
                .chain(self.executors.iter_mut())
                .any(|p| matches!(p.try_wait(), Ok(Some(_))));
            if exited || start.elapsed() > START_TIMEOUT {
                return Err(exec_datafusion_err!(
                    "{what} did not start listening on {ip}:{port}\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }
}

impl Drop for LocalCluster {
    fn drop(&mut self) {
        for p in self
            .executors
            .iter_mut()
            .chain(std::iter::once(&mut self.scheduler))
        {
            let _ = p.kill();
            let _ = p.wait();
        }
    }
}

/// A port nothing listens on now.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn binary(dir: &Path, name: &str) -> Result<PathBuf> {
    let path = dir.join(name);
    if !path.is_file() {
        return Err(exec_datafusion_err!(
            "{} is missing; build it first (`cargo build -p vecfusion-cluster`)",
            path.display()
        ));
    }
    Ok(path)
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    Ok(std::fs::File::create(dir.join(format!("{name}.log")))?)
}
