//! Managed processes (SPEC RL-2): programs the agents depend on, such as an
//! MCP server, that Warden starts, health-checks and restarts with backoff.
//!
//! One supervisor task per process. Death is seen through `wait()` on the
//! child (milliseconds after it happens), unhealthiness through the health
//! check (the pid alone, or an HTTP probe). Restarts are paced by the
//! circuit breaker of `breaker.rs` (SPEC RL-1: one breaker type), named
//! `process:<name>`: each death opens it for the next backoff, the restart
//! is its probe, and a restart that stays healthy for `stable_after_ms`
//! closes it. After `alert_after_restarts` failed restarts in a row a
//! critical `process_down` alert is raised; it is resolved once the process
//! has stayed healthy again. Workspaces that `need` a process stop getting
//! claims while it is not healthy (see `Scheduler::claim`).

use std::collections::BTreeMap;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::json;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use warden_store::Store;

use crate::alerts::{Alerts, Severity};
use crate::breaker::{Admit, Breaker, BreakerPolicy, State as BreakerState};
pub use crate::config::processes::{HealthCheck, ProcessConfig, validate};
use crate::sync::Unpoisoned as _;
use crate::wake::Wake;

/// A running process that fails this many health probes in a row is
/// killed and restarted: one lost probe (a slow GC, a busy moment) should
/// not cost a restart.
const UNHEALTHY_AFTER_PROBES: u32 = 3;
/// How long a process gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(2);

/// What a managed process is doing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProcessState {
    /// Started, not through its first health check yet: for `pid`, up for
    /// `check_every_ms`; for `http`, a 2xx answer. Not healthy.
    Starting,
    /// Healthy.
    Running,
    /// Exited or killed as unhealthy; waits for its restart.
    BackingOff,
    /// As `BackingOff`, after `alert_after_restarts` failed restarts in a
    /// row: the critical alert is open. Restarts go on at the last backoff.
    Down,
}

impl ProcessState {
    /// As the API shows it.
    pub fn name(self) -> &'static str {
        match self {
            ProcessState::Starting => "starting",
            ProcessState::Running => "running",
            ProcessState::BackingOff => "backing-off",
            ProcessState::Down => "down",
        }
    }
}

/// A snapshot of one process.
#[derive(Clone, Debug, Serialize)]
pub struct ProcessStatus {
    /// Its name.
    pub name: String,
    /// What it is doing.
    pub state: ProcessState,
    /// The running child's pid.
    pub pid: Option<u32>,
    /// Restarts since Warden started.
    pub restarts: u64,
    /// Restarts in a row that died before staying healthy.
    pub failed_restarts: u32,
    /// How the last child ended (`exited with exit status: 3`, ...).
    pub last_exit: Option<String>,
    /// When the state last changed, ms since the epoch.
    pub since: i64,
    /// When the next restart is due, ms since the epoch.
    pub next_restart_at: Option<i64>,
    /// The state of its breaker, `process:<name>`.
    pub breaker: &'static str,
}

struct Entry {
    config: ProcessConfig,
    status: Mutex<ProcessStatus>,
}

impl Entry {
    fn status(&self) -> ProcessStatus {
        self.status.locked().clone()
    }

    fn update(&self, f: impl FnOnce(&mut ProcessStatus)) {
        f(&mut self.status.locked());
    }
}

/// Every managed process of this host.
pub struct Processes {
    entries: Vec<Arc<Entry>>,
    /// Per workspace (and `"*"`), the processes it needs.
    needs: BTreeMap<String, Vec<String>>,
    stop: watch::Sender<bool>,
    supervisors: tokio::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Processes {
    /// Starts a supervisor for every `[[processes]]` entry, probing health
    /// URLs through clients of `connector`; `workspaces` says which
    /// processes each workspace `needs`.
    pub fn start(
        processes: &[ProcessConfig],
        workspaces: &crate::config::Workspaces,
        connector: &dyn crate::outbound::Connector,
        store: Store,
        alerts: Alerts,
        wake: Arc<Wake>,
    ) -> Result<Arc<Self>, crate::outbound::Error> {
        let (stop, rx) = watch::channel(false);
        let now = warden_store::now_ms();
        let entries: Vec<Arc<Entry>> = processes
            .iter()
            .map(|c| {
                Arc::new(Entry {
                    config: c.clone(),
                    status: Mutex::new(ProcessStatus {
                        name: c.name.clone(),
                        state: ProcessState::Starting,
                        pid: None,
                        restarts: 0,
                        failed_restarts: 0,
                        last_exit: None,
                        since: now,
                        next_restart_at: None,
                        breaker: BreakerState::Closed.name(),
                    }),
                })
            })
            .collect();
        let mut supervisors = Vec::with_capacity(entries.len());
        for e in &entries {
            let s = Supervisor {
                policy: BreakerPolicy {
                    failures: 1,
                    backoff_ms: e.config.restart_backoff_ms.clone(),
                    window: crate::breaker::RateWindow::default(),
                },
                client: connector.client(&crate::outbound::Options {
                    timeout: Some(Duration::from_millis(e.config.health_timeout_ms)),
                    ..Default::default()
                })?,
                entry: e.clone(),
                store: store.clone(),
                alerts: alerts.clone(),
                wake: wake.clone(),
                breaker: Breaker::default(),
            };
            supervisors.push(tokio::spawn(s.run(rx.clone())));
        }
        let needs = workspaces
            .iter()
            .filter(|(_, w)| !w.needs.is_empty())
            .map(|(ws, w)| (ws.clone(), w.needs.clone()))
            .collect();
        Ok(Arc::new(Processes {
            entries,
            needs,
            stop,
            supervisors: tokio::sync::Mutex::new(supervisors),
        }))
    }

    /// A snapshot of every process, in configuration order.
    pub fn list(&self) -> Vec<ProcessStatus> {
        self.entries.iter().map(|e| e.status()).collect()
    }

    /// Why `workspace` may not claim: a process it needs (itself or
    /// through `"*"`) is not running; `None` when all are.
    pub fn paused_by(&self, workspace: &str) -> Option<String> {
        let needed = [workspace, "*"]
            .into_iter()
            .filter_map(|ws| self.needs.get(ws))
            .flatten();
        let now = warden_store::now_ms();
        for name in needed {
            let Some(entry) = self.entries.iter().find(|e| &e.config.name == name) else {
                continue;
            };
            let s = entry.status();
            let next = || {
                s.next_restart_at
                    .map(|at| format!("in {} s", ((at - now).max(0) + 999) / 1000))
                    .unwrap_or_else(|| "now".to_string())
            };
            let why = match s.state {
                ProcessState::Running => continue,
                ProcessState::Starting => format!(
                    "managed process \"{name}\" is starting and not healthy yet{}",
                    s.pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
                ),
                ProcessState::BackingOff => format!(
                    "managed process \"{name}\" is down (restart {} {})",
                    s.failed_restarts + 1,
                    next()
                ),
                ProcessState::Down => format!(
                    "managed process \"{name}\" is down after {} failed restarts (next attempt {})",
                    s.failed_restarts,
                    next()
                ),
            };
            return Some(why);
        }
        None
    }

    /// Stops every supervisor and its child (SIGTERM, then SIGKILL after
    /// a grace period); returns once they are gone.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let handles = std::mem::take(&mut *self.supervisors.lock().await);
        for h in handles {
            let _ = h.await;
        }
    }
}

struct Supervisor {
    entry: Arc<Entry>,
    store: Store,
    alerts: Alerts,
    wake: Arc<Wake>,
    breaker: Breaker,
    policy: BreakerPolicy,
    client: Arc<dyn crate::outbound::Client>,
}

impl Supervisor {
    fn name(&self) -> &str {
        &self.entry.config.name
    }

    fn breaker_name(&self) -> String {
        format!("process:{}", self.name())
    }

    fn alert_key(&self) -> String {
        format!("process:{}", self.name())
    }

    async fn run(mut self, mut stop: watch::Receiver<bool>) {
        // A row left open by an earlier run of Warden would otherwise
        // hold back tasks that require this breaker until the first death.
        self.persist().await;
        loop {
            let reason = match self.spawn() {
                Ok(child) => match self.watch(child, &mut stop).await {
                    Some(reason) => reason,
                    None => return,
                },
                Err(e) => format!(
                    "cannot start \"{}\": {e}",
                    self.entry.config.command.first().map_or("", String::as_str)
                ),
            };
            self.died(&reason).await;
            loop {
                let now = warden_store::now_ms();
                match self.breaker.admit(now) {
                    Admit::Pass | Admit::Probe => break,
                    Admit::Refuse { retry_at } => {
                        let wait = Duration::from_millis((retry_at - now).clamp(1, 60_000) as u64);
                        tokio::select! {
                            _ = tokio::time::sleep(wait) => {}
                            _ = stop.changed() => return,
                        }
                    }
                }
            }
            if *stop.borrow() {
                return;
            }
            let breaker = self.breaker.state().name();
            self.entry.update(|s| {
                s.restarts += 1;
                s.breaker = breaker;
            });
            self.persist().await;
        }
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let c = &self.entry.config;
        let (program, args) = c
            .command
            .split_first()
            .ok_or_else(|| std::io::Error::other("the command is empty"))?;
        let mut cmd = Command::new(program);
        // A clean environment: Warden's holds its secrets (the admin
        // token, provider API keys, the database URL with its password),
        // which a managed process has no business reading.
        cmd.env_clear();
        for name in &c.inherit_env {
            if let Some(value) = std::env::var_os(name) {
                cmd.env(name, value);
            }
        }
        cmd.args(args)
            .envs(&c.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // Its own group, so that stopping it also stops what it
            // started, and a Ctrl-C meant for Warden does not reach it
            // before Warden's own orderly shutdown does.
            .process_group(0);
        if let Some(cwd) = &c.cwd {
            cmd.current_dir(cwd);
        }
        cmd.spawn()
    }

    /// Watches a started child until it dies (the reason) or Warden stops
    /// (`None`, after stopping the child).
    async fn watch(
        &mut self,
        mut child: Child,
        stop: &mut watch::Receiver<bool>,
    ) -> Option<String> {
        let c = self.entry.config.clone();
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            forward(c.name.clone(), "stdout", out, c.max_line_bytes);
        }
        if let Some(err) = child.stderr.take() {
            forward(c.name.clone(), "stderr", err, c.max_line_bytes);
        }
        let started = Instant::now();
        let pid_only = c.health == HealthCheck::Pid;
        self.entry.update(|s| {
            s.state = ProcessState::Starting;
            s.pid = pid;
            s.since = warden_store::now_ms();
            s.next_restart_at = None;
        });
        tracing::info!(process = %c.name, pid, "managed process started");
        let mut healthy_since = None;
        let mut settled = false;
        let mut failed_probes = 0u32;
        // A pid-checked process passes its first check only once it has
        // stayed up for one interval: one that dies at once (a missing
        // file, a taken port) must not look healthy, even briefly, or the
        // workspaces that need it would get claims between its restarts.
        let every = Duration::from_millis(c.check_every_ms);
        let first = if pid_only {
            tokio::time::Instant::now() + every
        } else {
            tokio::time::Instant::now()
        };
        let mut tick = tokio::time::interval_at(first, every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let check = async {
                tick.tick().await;
                match (&c.health_url, pid_only) {
                    (Some(url), false) => probe(self.client.as_ref(), url).await,
                    _ => Ok(()),
                }
            };
            let outcome = tokio::select! {
                status = child.wait() => {
                    kill_group(pid, rustix::process::Signal::KILL);
                    return Some(match status {
                        Ok(status) => describe(status),
                        Err(e) => format!("cannot wait for it: {e}"),
                    });
                }
                _ = stop.changed() => {
                    terminate(&mut child, pid).await;
                    tracing::info!(process = %c.name, pid, "managed process stopped");
                    return None;
                }
                outcome = check => outcome,
            };
            match outcome {
                Ok(()) => {
                    failed_probes = 0;
                    if healthy_since.is_none() {
                        healthy_since = Some(Instant::now());
                        self.entry.update(|s| {
                            s.state = ProcessState::Running;
                            s.since = warden_store::now_ms();
                        });
                        tracing::info!(process = %c.name, pid, "managed process is healthy");
                        self.wake.all();
                    }
                    if !settled
                        && healthy_since.is_some_and(|h| {
                            h.elapsed() >= Duration::from_millis(c.stable_after_ms)
                        })
                    {
                        settled = true;
                        self.stable().await;
                    }
                }
                Err(why) if healthy_since.is_none() => {
                    if started.elapsed() >= Duration::from_millis(c.startup_grace_ms) {
                        terminate(&mut child, pid).await;
                        return Some(format!(
                            "not healthy within startup_grace_ms ({} ms): {why}",
                            c.startup_grace_ms
                        ));
                    }
                }
                Err(why) => {
                    failed_probes += 1;
                    if failed_probes >= UNHEALTHY_AFTER_PROBES {
                        terminate(&mut child, pid).await;
                        return Some(format!(
                            "{failed_probes} health probes failed in a row, the last: {why}"
                        ));
                    }
                }
            }
        }
    }

    /// The child is gone: open the breaker for the next backoff, count a
    /// failed restart when the child was one, alert past the threshold.
    async fn died(&mut self, reason: &str) {
        let now = warden_store::now_ms();
        let was_restart = self.breaker.state() == BreakerState::HalfOpen;
        self.breaker.failure(now, &self.policy, reason);
        let next = self.breaker.retry_at();
        let threshold = self.entry.config.alert_after_restarts;
        let breaker = self.breaker.state().name();
        let failed = {
            let before = self.entry.status().failed_restarts;
            if was_restart {
                before.saturating_add(1)
            } else {
                before
            }
        };
        let wait_ms = next.map_or(0, |n| (n - now).max(0));
        tracing::warn!(
            process = %self.name(),
            failed_restarts = failed,
            restart_in_ms = wait_ms,
            "managed process died: {reason}"
        );
        self.persist().await;
        if failed >= threshold {
            let name = self.name().to_string();
            self.alerts
                .raise_logged(
                    None,
                    "process_down",
                    Severity::Critical,
                    &self.alert_key(),
                    &format!(
                        "managed process \"{name}\" is down: {failed} restarts in a row failed, the last: {reason}"
                    ),
                    json!({
                        "process": name,
                        "failed_restarts": failed,
                        "last_exit": reason,
                    }),
                )
                .await;
        }
        // Last, so that whoever sees the new count also sees the breaker
        // and the alert that go with it.
        self.entry.update(|s| {
            s.failed_restarts = failed;
            s.state = if failed >= threshold {
                ProcessState::Down
            } else {
                ProcessState::BackingOff
            };
            s.pid = None;
            s.last_exit = Some(reason.to_string());
            s.since = now;
            s.next_restart_at = next;
            s.breaker = breaker;
        });
    }

    /// The child has stayed healthy for `stable_after_ms`: the restart
    /// worked.
    async fn stable(&mut self) {
        let change = self.breaker.success(warden_store::now_ms());
        if change != crate::breaker::Change::None {
            self.persist().await;
        }
        match self.alerts.resolve(&self.alert_key()).await {
            Ok(Some(_)) => {
                tracing::info!(process = %self.name(), "managed process is up again; alert resolved")
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(process = %self.name(), error = %e, "cannot resolve the process_down alert")
            }
        }
        // Last, so that whoever sees the count reset also sees the alert
        // resolved.
        let breaker = self.breaker.state().name();
        self.entry.update(|s| {
            s.failed_restarts = 0;
            s.breaker = breaker;
        });
    }

    async fn persist(&self) {
        let mut row = self.breaker.row(&self.breaker_name());
        row.updated_at = warden_store::now_ms();
        if let Err(e) = self.store.put_breaker(&row).await {
            tracing::warn!(breaker = %row.name, error = %e, "cannot persist the breaker");
        }
    }
}

/// One HTTP probe: 2xx within the client's timeout is healthy.
async fn probe(client: &dyn crate::outbound::Client, url: &str) -> Result<(), String> {
    let request = crate::outbound::Request::new(http::Method::GET, url);
    match client.send(request).await {
        Ok(r) if r.status.is_success() => Ok(()),
        Ok(r) => Err(format!("{url} answered {}", r.status)),
        Err(e) => Err(format!("{url}: {e}")),
    }
}

fn describe(status: ExitStatus) -> String {
    format!("exited with {status}")
}

fn kill_group(pid: Option<u32>, signal: rustix::process::Signal) {
    let group = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw);
    if let Some(g) = group {
        // ESRCH (the group is already gone) is the usual, harmless answer.
        let _ = rustix::process::kill_process_group(g, signal);
    }
}

/// SIGTERM to the child's group, SIGKILL after `TERM_GRACE`.
async fn terminate(child: &mut Child, pid: Option<u32>) {
    kill_group(pid, rustix::process::Signal::TERM);
    if tokio::time::timeout(TERM_GRACE, child.wait())
        .await
        .is_err()
    {
        kill_group(pid, rustix::process::Signal::KILL);
        let _ = child.kill().await;
    }
    kill_group(pid, rustix::process::Signal::KILL);
}

/// Forwards the child's output to the log, line by line, under its name.
/// A line longer than `max` bytes is cut: a process that writes without
/// newlines must not make Warden buffer its output without end.
fn forward(
    name: String,
    stream: &'static str,
    out: impl AsyncRead + Unpin + Send + 'static,
    max: usize,
) {
    tokio::spawn(async move {
        let mut reader = BufReader::new(out);
        let mut line = Vec::new();
        loop {
            match read_line_capped(&mut reader, &mut line, max).await {
                Ok(None) | Err(_) => return,
                Ok(Some(0)) => {
                    let text = String::from_utf8_lossy(&line);
                    tracing::info!(process = %name, stream, "{}", text.trim_end());
                }
                Ok(Some(cut)) => {
                    let text = String::from_utf8_lossy(&line);
                    tracing::info!(
                        process = %name,
                        stream,
                        "{} [line cut: {cut} more bytes dropped]",
                        text.trim_end()
                    );
                }
            }
        }
    });
}

/// Reads one line (without its newline) into `line`, keeping its first
/// `max` bytes and dropping the rest as it arrives. Returns how many bytes
/// were dropped, or `None` at the end of the output.
async fn read_line_capped(
    reader: &mut (impl AsyncBufRead + Unpin),
    line: &mut Vec<u8>,
    max: usize,
) -> std::io::Result<Option<usize>> {
    line.clear();
    let mut dropped = 0usize;
    let mut read_any = false;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(read_any.then_some(dropped));
        }
        read_any = true;
        let (chunk, used, done) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        let keep = chunk.len().min(room);
        line.extend_from_slice(&chunk[..keep]);
        dropped = dropped.saturating_add(chunk.len() - keep);
        reader.consume(used);
        if done {
            return Ok(Some(dropped));
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn invalid(text: &str) -> String {
        Config::parse(text)
            .and_then(|c| c.validate())
            .expect_err("the configuration should be refused")
    }

    #[test]
    fn a_valid_process_and_need_with_defaults() {
        let c = Config::parse(
            "[[processes]]\nname = \"mcp\"\ncommand = [\"sleep\", \"3600\"]\n[workspaces.acme]\nneeds = [\"mcp\"]\n",
        )
        .unwrap();
        c.validate().unwrap();
        let p = &c.processes[0];
        assert_eq!(p.check_every_ms, 1_000);
        assert_eq!(p.alert_after_restarts, 3);
        assert_eq!(
            p.restart_backoff_ms,
            vec![1_000, 2_000, 4_000, 8_000, 30_000]
        );
        assert_eq!(p.health, super::HealthCheck::Pid);
    }

    #[test]
    fn bad_processes_are_named_with_the_key() {
        assert_eq!(
            invalid("[[processes]]\nname = \"mcp\"\ncommand = []\n"),
            "[[processes]] \"mcp\": command must name a program, e.g. command = [\"mcp-server\", \"--port\", \"7000\"]"
        );
        assert_eq!(
            invalid(
                "[[processes]]\nname = \"mcp\"\ncommand = [\"a\"]\n[[processes]]\nname = \"mcp\"\ncommand = [\"b\"]\n"
            ),
            "[[processes]] \"mcp\": name is declared twice"
        );
        assert_eq!(
            invalid("[[processes]]\nname = \"mcp\"\ncommand = [\"a\"]\nhealth = \"http\"\n"),
            "[[processes]] \"mcp\": health = \"http\" needs health_url"
        );
        assert!(
            invalid("[[processes]]\nname = \"mcp\"\ncommand = [\"a\"]\nrestart_backoff_ms = []\n")
                .contains("restart_backoff_ms must list")
        );
        assert!(
            invalid("[[processes]]\nname = \"Bad Name\"\ncommand = [\"a\"]\n")
                .starts_with("[[processes]] \"Bad Name\": name must be")
        );
        let unknown =
            Config::parse("[[processes]]\nname = \"m\"\ncommand = [\"a\"]\nhealth_uri = \"x\"\n")
                .unwrap_err();
        assert!(unknown.contains("unknown field `health_uri`"), "{unknown}");
    }

    #[tokio::test]
    async fn long_lines_are_cut_as_they_are_read() {
        let text = format!("short\n{}\ntail", "x".repeat(100_000));
        let mut reader = tokio::io::BufReader::with_capacity(1024, text.as_bytes());
        let mut line = Vec::new();
        let got = super::read_line_capped(&mut reader, &mut line, 300).await;
        assert_eq!(got.unwrap(), Some(0));
        assert_eq!(line, b"short");
        let got = super::read_line_capped(&mut reader, &mut line, 300).await;
        assert_eq!(got.unwrap(), Some(100_000 - 300));
        assert_eq!(line.len(), 300);
        assert!(line.capacity() < 4096, "the line was buffered whole");
        let got = super::read_line_capped(&mut reader, &mut line, 300).await;
        assert_eq!(got.unwrap(), Some(0));
        assert_eq!(line, b"tail");
        let got = super::read_line_capped(&mut reader, &mut line, 300).await;
        assert_eq!(got.unwrap(), None);
    }

    #[test]
    fn a_need_must_name_a_declared_process() {
        assert_eq!(
            invalid(
                "[[processes]]\nname = \"mcp\"\ncommand = [\"a\"]\n[workspaces.acme]\nneeds = [\"mpc\"]\n"
            ),
            "[workspaces.acme] needs: no managed process \"mpc\" (declared: mcp)"
        );
        assert_eq!(
            invalid("[workspaces.acme]\nneeds = [\"mcp\"]\n"),
            "[workspaces.acme] needs: no managed process \"mcp\" (declared: none; add a [[processes]] entry)"
        );
    }
}
