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

/// Executors' log filter: Ballista's default, with the executor server's debug lines, which
/// give each task's output (see [`LocalCluster::finished_tasks`]).
const TASK_LOG_LEVEL: &str = "INFO,datafusion=INFO,ballista_executor::executor_server=DEBUG";

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
            // Ballista logs what each task wrote for the next stage at debug level.
            .args(["--log-level-setting", TASK_LOG_LEVEL])
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

    /// Every task the executors have finished so far, from their logs: its time (`Finished
    /// task : [TID job/stage.attempt/task.attempt] in 1.2ms`) and the bytes it wrote for the
    /// next stage (`Task [TID ...], execution statistics: Ok([ShuffleWritePartition { ...,
    /// num_bytes: n, ... }])`).
    pub fn finished_tasks(&self) -> Vec<FinishedTask> {
        (0..self.executors.len())
            .flat_map(|i| {
                let log = self.executor_log(i);
                let mut tasks: Vec<FinishedTask> = vec![];
                for line in log.lines() {
                    if let Some(task) = FinishedTask::parse(i, line) {
                        tasks.push(task);
                    } else if let Some((id, bytes)) = task_output_bytes(line)
                        && let Some(task) = tasks.iter_mut().rev().find(|t| t.id == id)
                    {
                        task.bytes_out = bytes;
                    }
                }
                tasks
            })
            .collect()
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

/// A task an executor finished, as its log tells it.
#[derive(Debug, Clone, PartialEq)]
pub struct FinishedTask {
    pub executor: usize,
    /// `job/stage.attempt/task.attempt`.
    pub id: String,
    pub job: String,
    pub stage: usize,
    pub seconds: f64,
    /// Bytes it wrote for the next stage (0 until its statistics line is read).
    pub bytes_out: u64,
}

impl FinishedTask {
    fn parse(executor: usize, line: &str) -> Option<Self> {
        let rest = line.split("Finished task : [TID ").nth(1)?;
        let (id, took) = rest.split_once("] in ")?;
        let mut parts = id.split('/');
        let job = parts.next()?.to_string();
        let stage = parts.next()?.split('.').next()?.parse().ok()?;
        Some(Self {
            executor,
            id: id.to_string(),
            job,
            stage,
            seconds: debug_duration_seconds(took.trim())?,
            bytes_out: 0,
        })
    }
}

/// The task and the bytes it wrote, from its statistics line.
fn task_output_bytes(line: &str) -> Option<(String, u64)> {
    let rest = line.split("Task [TID ").nth(1)?;
    let (id, stats) = rest.split_once("], execution statistics: ")?;
    let bytes = stats
        .split("num_bytes: ")
        .skip(1)
        .filter_map(|s| {
            s.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .sum();
    Some((id.to_string(), bytes))
}

/// Seconds of a `Duration` printed with `{:?}` (`1.5s`, `3.2ms`, `12µs`, `800ns`).
fn debug_duration_seconds(text: &str) -> Option<f64> {
    for (unit, scale) in [("ns", 1e-9), ("µs", 1e-6), ("ms", 1e-3), ("s", 1.0)] {
        if let Some(number) = text.strip_suffix(unit) {
            return number.parse::<f64>().ok().map(|n| n * scale);
        }
    }
    None
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

#[cfg(test)]
mod tests {
    use super::{FinishedTask, debug_duration_seconds, task_output_bytes};

    #[test]
    fn finished_tasks_are_read_from_executor_log_lines() {
        let line = "2026-12-07T01:53:10.333624Z  INFO ballista_executor::executor_server: \
                    Finished task : [TID 038JE6HTAJ000/3.0/1.0] in 3.5ms";
        let task = FinishedTask::parse(1, line).unwrap();
        assert_eq!(task.id, "038JE6HTAJ000/3.0/1.0");
        assert_eq!(task.job, "038JE6HTAJ000");
        assert_eq!(task.stage, 3);
        assert!((task.seconds - 0.0035).abs() < 1e-12);
        assert_eq!(
            FinishedTask::parse(0, "Execute task  : [TID x/1.0/0.0]"),
            None
        );
        assert_eq!(debug_duration_seconds("2.25s"), Some(2.25));
        assert!((debug_duration_seconds("800ns").unwrap() - 8e-7).abs() < 1e-15);
        assert!((debug_duration_seconds("12µs").unwrap() - 1.2e-5).abs() < 1e-15);
        assert_eq!(debug_duration_seconds("soon"), None);
        let stats = "DEBUG ballista_executor::executor_server: Task [TID j/1.0/0.0], execution \
                     statistics: Ok([ShuffleWritePartition { partition_id: 0, num_batches: 2, \
                     num_rows: 9, num_bytes: 1200, file_id: None }, ShuffleWritePartition { \
                     partition_id: 1, num_batches: 1, num_rows: 1, num_bytes: 34, file_id: None }])";
        assert_eq!(task_output_bytes(stats), Some(("j/1.0/0.0".into(), 1234)));
    }
}
