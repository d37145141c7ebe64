//! Evidence files and the disk guard (SPEC RL-3, PB-6).
//!
//! The database is the source of truth; evidence files are the bulky copy
//! for humans and auditors: each finished playbook run's report, actions
//! and events as JSON under `<evidence_dir>/<workspace>/runs/<run id>.json`.
//! Every file is written atomically (a temporary file, synced, then
//! renamed), so a reader never sees half a file.
//!
//! The disk guard measures the file system holding the evidence directory
//! every `check_every_ms`. Above `pause_above_pct` used it pauses recording,
//! raises a critical `disk_low` alert (dedup key `disk:<dir>`) and compresses
//! evidence older than `compress_after_secs` with zstd; below
//! `resume_below_pct` it resumes recording and resolves the alert; in
//! between nothing changes (hysteresis, so that the guard does not flap
//! around one threshold). The thresholds can be changed at run time
//! (`PUT /v1/disk-guard`).
//!
//! The compression code is shared with the playbook host interface
//! `evidence` (bundled playbook `disk-cleanup`): [`Evidence::compress`] and
//! [`Evidence::list_old`] work inside one workspace's directory.
//!
//! All file work goes through the evidence root opened once as a
//! `cap_std::fs::Dir`, and each workspace's directory opened from it: a
//! path cannot lead out of the handle it is resolved in (cap-std refuses
//! `..` above it, absolute paths and symbolic links out of it), so an
//! escape is impossible by construction rather than checked by hand.

use std::io::{self, Write as _};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cap_std::fs::{Dir, Metadata};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::watch;
use warden_runtime::files;

use crate::alerts::{Alerts, Severity};
use crate::sync::Unpoisoned as _;

/// Suffix of a compressed evidence file.
pub const ZST: &str = ".zst";

/// zstd level: 3 is zstd's default, a good ratio at a speed that keeps a
/// check short even with thousands of JSON files.
const LEVEL: i32 = 3;

/// Most files one `list_old` returns.
pub const MAX_LIST: usize = 1000;

/// `[disk_guard]` in warden.toml.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiskGuardConfig {
    /// Where evidence files go; default `<data_dir>/evidence`.
    pub evidence_dir: Option<PathBuf>,
    /// Pause recording when the file system is more than this % used.
    pub pause_above_pct: f64,
    /// Resume recording when it is less than this % used.
    pub resume_below_pct: f64,
    /// While paused, compress evidence files older than this.
    pub compress_after_secs: u64,
    /// How often the guard measures.
    pub check_every_ms: u64,
}

impl Default for DiskGuardConfig {
    fn default() -> Self {
        DiskGuardConfig {
            evidence_dir: None,
            pause_above_pct: 90.0,
            resume_below_pct: 75.0,
            compress_after_secs: 3600,
            check_every_ms: 5000,
        }
    }
}

impl DiskGuardConfig {
    /// The thresholds it starts with.
    pub fn thresholds(&self) -> Thresholds {
        Thresholds {
            pause_above_pct: self.pause_above_pct,
            resume_below_pct: self.resume_below_pct,
            compress_after_secs: self.compress_after_secs,
        }
    }

    /// The evidence directory in force.
    pub fn evidence_dir(&self, data_dir: &Path) -> PathBuf {
        self.evidence_dir
            .clone()
            .unwrap_or_else(|| data_dir.join("evidence"))
    }

    /// Checks the thresholds and the interval.
    pub fn validate(&self) -> Result<(), String> {
        self.thresholds().validate()?;
        if self.check_every_ms < 100 {
            return Err(format!(
                "check_every_ms {} is too short (at least 100)",
                self.check_every_ms
            ));
        }
        Ok(())
    }
}

/// What the guard compares usage with; adjustable at run time.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Thresholds {
    /// Pause above this % used.
    pub pause_above_pct: f64,
    /// Resume below this % used.
    pub resume_below_pct: f64,
    /// Compress files older than this while paused.
    pub compress_after_secs: u64,
}

impl Thresholds {
    /// `0 <= resume_below_pct < pause_above_pct <= 100`.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [
            ("pause_above_pct", self.pause_above_pct),
            ("resume_below_pct", self.resume_below_pct),
        ] {
            if !v.is_finite() || !(0.0..=100.0).contains(&v) {
                return Err(format!("{name} {v} must be between 0 and 100"));
            }
        }
        if self.resume_below_pct >= self.pause_above_pct {
            return Err(format!(
                "resume_below_pct {} must be below pause_above_pct {} (the gap keeps the guard from flapping)",
                self.resume_below_pct, self.pause_above_pct
            ));
        }
        Ok(())
    }
}

/// A change of thresholds (`PUT /v1/disk-guard`); what is left out stays.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdsUpdate {
    /// New pause threshold.
    pub pause_above_pct: Option<f64>,
    /// New resume threshold.
    pub resume_below_pct: Option<f64>,
    /// New age of files to compress.
    pub compress_after_secs: Option<u64>,
}

/// Use of the file system holding the evidence directory.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Usage {
    /// Size of the file system.
    pub total_bytes: u64,
    /// Bytes an unprivileged writer can still use.
    pub free_bytes: u64,
    /// % used, as `df` computes it: used / (used + available).
    pub used_pct: f64,
}

/// What `GET /v1/disk-guard` shows.
#[derive(Clone, Debug, Serialize)]
pub struct GuardStatus {
    /// The evidence directory.
    pub evidence_dir: String,
    /// The last measurement; `None` before the first or when it failed.
    pub usage: Option<Usage>,
    /// Thresholds in force.
    pub thresholds: Thresholds,
    /// True while recording is paused.
    pub paused: bool,
    /// Evidence files compressed since start (by the guard or a playbook).
    pub files_compressed: u64,
    /// Bytes those compressions saved.
    pub bytes_saved: u64,
    /// Recordings skipped while paused, since start.
    pub skipped_recordings: u64,
    /// Why the last measurement or compression failed, if it did.
    pub last_error: Option<String>,
}

/// An evidence file as `list_old` reports it.
#[derive(Clone, Debug, Serialize)]
pub struct OldFile {
    /// Relative to the workspace's evidence directory, `/`-separated.
    pub path: String,
    /// Size.
    pub bytes: u64,
    /// Seconds since it was last modified.
    pub age_secs: u64,
}

/// The outcome of one compression.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Compressed {
    /// Size before.
    pub original_bytes: u64,
    /// Size of the `.zst` file.
    pub compressed_bytes: u64,
}

/// Why a host call on evidence was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum EvidenceError {
    /// The path is absolute, has `..`, goes through a symlink or is not a
    /// regular uncompressed file.
    #[error("{0}")]
    Invalid(String),
    /// No such file.
    #[error("no evidence file \"{0}\"")]
    NotFound(String),
    /// The file system failed.
    #[error("{0}")]
    Io(String),
}

#[derive(Default)]
struct Inner {
    usage: Option<Usage>,
    files_compressed: u64,
    bytes_saved: u64,
    last_error: Option<String>,
    /// Whether the `disk_low` alert is known to be open; kept apart from
    /// `paused` so that a failed raise or resolve is retried next check.
    alert_open: bool,
}

/// The evidence recorder and its disk guard.
pub struct Evidence {
    dir: PathBuf,
    /// `dir`, opened once: every file is reached through it.
    root: Arc<Dir>,
    paused: AtomicBool,
    skipped: AtomicU64,
    skipped_this_pause: AtomicU64,
    thresholds: Mutex<Thresholds>,
    inner: Mutex<Inner>,
    /// One check at a time: the loop and `PUT /v1/disk-guard` both check.
    checking: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded data are counters and settings that stay consistent
    // even if a holder panicked; keep going rather than poison the host.
    m.locked()
}

impl Evidence {
    /// A recorder over `dir` (created if missing).
    pub fn new(dir: PathBuf, thresholds: Thresholds) -> io::Result<Self> {
        let root = files::open_root(&dir)?;
        Ok(Evidence {
            dir,
            root: Arc::new(root),
            paused: AtomicBool::new(false),
            skipped: AtomicU64::new(0),
            skipped_this_pause: AtomicU64::new(0),
            thresholds: Mutex::new(thresholds),
            inner: Mutex::new(Inner::default()),
            checking: tokio::sync::Mutex::new(()),
        })
    }

    /// The evidence directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// True while recording is paused.
    pub fn paused(&self) -> bool {
        self.paused.load(Ordering::Acquire)
    }

    /// The dedup key of this directory's `disk_low` alert.
    pub fn alert_key(&self) -> String {
        format!("disk:{}", self.dir.display())
    }

    /// Writes `value` as `<dir>/<rel>` unless recording is paused; best
    /// effort, since the database already holds the truth. Returns whether
    /// the file was written.
    pub async fn record(&self, rel: &Path, value: &Value) -> bool {
        if self.paused() {
            self.skip(rel);
            return false;
        }
        let bytes = match serde_json::to_vec_pretty(value) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(file = %rel.display(), error = %e, "cannot serialize evidence");
                return false;
            }
        };
        let shown = self.dir.join(rel);
        let (root, rel) = (self.root.clone(), rel.to_path_buf());
        match tokio::task::spawn_blocking(move || write_atomic(&root, &rel, &bytes)).await {
            Ok(Ok(())) => true,
            Ok(Err(e)) => {
                tracing::warn!(file = %shown.display(), error = %e, "cannot write evidence");
                false
            }
            Err(e) => {
                tracing::warn!(file = %shown.display(), error = %e, "evidence writer failed");
                false
            }
        }
    }

    /// Counts a recording skipped while paused; logs only the first of
    /// each pause, so that a full disk does not also flood the log.
    pub fn skip(&self, rel: &Path) {
        self.skipped.fetch_add(1, Ordering::Relaxed);
        if self.skipped_this_pause.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                dir = %self.dir.display(),
                file = %rel.display(),
                "evidence recording is paused by the disk guard; skipped recordings are counted in GET /v1/disk-guard, not logged one by one"
            );
        }
    }

    /// Records a finished playbook run: row, actions and events.
    pub async fn record_run(
        &self,
        row: &warden_store::runs::RunRow,
        actions: &[warden_store::actions::ActionRow],
        events: &[warden_store::run_events::RunEventRow],
    ) -> bool {
        let value = json!({
            "run_id": row.id,
            "workspace": row.workspace,
            "plugin": row.plugin,
            "version": row.version,
            "digest": row.digest,
            "mode": row.mode,
            "status": row.status,
            "actor": row.actor,
            "trigger": row.trigger,
            "input": row.input,
            "report": row.report,
            "error": row.error,
            "error_code": row.error_code,
            "usage": row.usage,
            "limits": row.limits,
            "actions": actions.iter().map(|a| json!({
                "seq": a.seq, "call": a.call, "target": a.target, "args": a.args,
                "status": a.status, "before": a.before, "after": a.after,
                "detail": a.detail, "at_ms": a.at,
            })).collect::<Vec<_>>(),
            "events": events.iter().map(|e| json!({
                "seq": e.seq, "kind": e.kind, "data": e.data, "at_ms": e.at,
            })).collect::<Vec<_>>(),
        });
        let rel = Path::new(&row.workspace)
            .join("runs")
            .join(format!("{}.json", row.id));
        self.record(&rel, &value).await
    }

    /// The thresholds in force.
    pub fn thresholds(&self) -> Thresholds {
        *lock(&self.thresholds)
    }

    /// Changes the thresholds; refuses an invalid combination and keeps
    /// the old one then.
    pub fn set_thresholds(&self, update: &ThresholdsUpdate) -> Result<Thresholds, String> {
        let mut t = lock(&self.thresholds);
        let new = Thresholds {
            pause_above_pct: update.pause_above_pct.unwrap_or(t.pause_above_pct),
            resume_below_pct: update.resume_below_pct.unwrap_or(t.resume_below_pct),
            compress_after_secs: update.compress_after_secs.unwrap_or(t.compress_after_secs),
        };
        new.validate()?;
        *t = new;
        Ok(new)
    }

    /// What the guard knows now.
    pub fn status(&self) -> GuardStatus {
        let inner = lock(&self.inner);
        GuardStatus {
            evidence_dir: self.dir.display().to_string(),
            usage: inner.usage,
            thresholds: self.thresholds(),
            paused: self.paused(),
            files_compressed: inner.files_compressed,
            bytes_saved: inner.bytes_saved,
            skipped_recordings: self.skipped.load(Ordering::Relaxed),
            last_error: inner.last_error.clone(),
        }
    }

    /// One measurement and what follows from it (pause, compress, alert,
    /// resume). Returns the status after it.
    pub async fn check(&self, alerts: &Alerts) -> GuardStatus {
        let _one = self.checking.lock().await;
        let t = self.thresholds();
        let dir = self.dir.clone();
        let usage = match tokio::task::spawn_blocking(move || usage_of(&dir)).await {
            Ok(Ok(u)) => u,
            Ok(Err(e)) => {
                self.note_error(format!(
                    "cannot measure the file system of {}: {e}",
                    self.dir.display()
                ));
                return self.status();
            }
            Err(e) => {
                self.note_error(format!("disk measurement failed: {e}"));
                return self.status();
            }
        };
        lock(&self.inner).usage = Some(usage);
        let was = self.paused();
        let paused = if usage.used_pct > t.pause_above_pct {
            true
        } else if usage.used_pct < t.resume_below_pct {
            false
        } else {
            was
        };
        if paused && !was {
            self.skipped_this_pause.store(0, Ordering::Relaxed);
            self.paused.store(true, Ordering::Release);
            tracing::warn!(
                dir = %self.dir.display(),
                used_pct = usage.used_pct,
                pause_above_pct = t.pause_above_pct,
                "disk guard: evidence recording paused"
            );
        } else if !paused && was {
            self.paused.store(false, Ordering::Release);
            tracing::info!(
                dir = %self.dir.display(),
                used_pct = usage.used_pct,
                skipped = self.skipped_this_pause.load(Ordering::Relaxed),
                "disk guard: evidence recording resumed"
            );
        }
        self.sync_alert(alerts, paused, usage, t).await;
        if paused {
            self.compress_all_old(t.compress_after_secs).await;
        }
        self.status()
    }

    /// Brings the `disk_low` alert in line with `paused`: raised on every
    /// check while paused (one alert, its count and usage kept current),
    /// resolved once recording resumes.
    async fn sync_alert(&self, alerts: &Alerts, paused: bool, usage: Usage, t: Thresholds) {
        let open = lock(&self.inner).alert_open;
        let key = self.alert_key();
        if paused {
            let free_pct = 100.0 - usage.used_pct;
            let summary = format!(
                "disk low: {:.1} % used ({:.1} % free) on the file system of {}; evidence recording paused",
                usage.used_pct,
                free_pct,
                self.dir.display()
            );
            let detail = json!({
                "dir": self.dir.display().to_string(),
                "used_pct": usage.used_pct,
                "free_bytes": usage.free_bytes,
                "total_bytes": usage.total_bytes,
                "pause_above_pct": t.pause_above_pct,
                "resume_below_pct": t.resume_below_pct,
            });
            match alerts
                .raise(None, "disk_low", Severity::Critical, &key, &summary, detail)
                .await
            {
                Ok(_) => lock(&self.inner).alert_open = true,
                Err(e) => {
                    tracing::error!(error = %e, "cannot raise the disk_low alert; retrying next check")
                }
            }
        } else if !paused && open {
            match alerts.resolve(&key).await {
                Ok(_) => lock(&self.inner).alert_open = false,
                Err(e) => {
                    tracing::error!(error = %e, "cannot resolve the disk_low alert; retrying next check")
                }
            }
        }
    }

    /// Compresses every file of every workspace older than `age_secs`.
    async fn compress_all_old(&self, age_secs: u64) {
        let root = self.root.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut done = Vec::new();
            let mut errors = Vec::new();
            for (rel, _) in old_files(&root, age_secs, usize::MAX) {
                match compress_file(&root, &rel) {
                    Ok(c) => done.push(c),
                    Err(e) => errors.push(format!("{}: {e}", rel.display())),
                }
            }
            (done, errors)
        })
        .await;
        match result {
            Ok((done, errors)) => {
                if !done.is_empty() {
                    let saved: u64 = done
                        .iter()
                        .map(|c| c.original_bytes.saturating_sub(c.compressed_bytes))
                        .sum();
                    tracing::info!(
                        files = done.len(),
                        bytes_saved = saved,
                        "disk guard: compressed old evidence"
                    );
                }
                for c in &done {
                    self.count(c);
                }
                if let Some(first) = errors.first() {
                    self.note_error(format!(
                        "cannot compress {} evidence file(s), first: {first}",
                        errors.len()
                    ));
                }
            }
            Err(e) => self.note_error(format!("evidence compression failed: {e}")),
        }
    }

    fn count(&self, c: &Compressed) {
        let mut inner = lock(&self.inner);
        inner.files_compressed += 1;
        inner.bytes_saved += c.original_bytes.saturating_sub(c.compressed_bytes);
    }

    fn note_error(&self, message: String) {
        let mut inner = lock(&self.inner);
        if inner.last_error.as_deref() != Some(message.as_str()) {
            tracing::warn!("disk guard: {message}");
        }
        inner.last_error = Some(message);
    }

    /// Runs [`Evidence::check`] every `every` until `shutdown` fires.
    pub fn start(
        self: std::sync::Arc<Self>,
        alerts: Alerts,
        every: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return,
                }
                self.check(&alerts).await;
            }
        });
    }

    /// The evidence directory of `workspace`, opened from the root; `None`
    /// when it does not exist yet. A workspace name is one plain path
    /// component, and a symbolic link in its place is not followed.
    fn workspace_dir(&self, workspace: &str) -> Result<Option<Dir>, EvidenceError> {
        let mut parts = Path::new(workspace).components();
        let plain = matches!(parts.next(), Some(Component::Normal(_))) && parts.next().is_none();
        if !plain {
            return Err(EvidenceError::Invalid(format!(
                "invalid workspace \"{}\"",
                crate::validate::truncate(workspace, 200)
            )));
        }
        match self.root.symlink_metadata(workspace) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(EvidenceError::Io(e.to_string())),
        }
        match self.root.open_dir(workspace) {
            Ok(dir) => Ok(Some(dir)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EvidenceError::Io(e.to_string())),
        }
    }

    /// Uncompressed files of `workspace` older than `age_secs`, oldest
    /// first, at most [`MAX_LIST`].
    pub async fn list_old(
        &self,
        workspace: &str,
        age_secs: u64,
    ) -> Result<Vec<OldFile>, EvidenceError> {
        let Some(root) = self.workspace_dir(workspace)? else {
            return Ok(Vec::new());
        };
        tokio::task::spawn_blocking(move || {
            let mut files: Vec<OldFile> = old_files(&root, age_secs, MAX_LIST)
                .into_iter()
                .map(|(rel, meta)| {
                    let rel: Vec<String> = rel
                        .components()
                        .map(|c| c.as_os_str().to_string_lossy().into_owned())
                        .collect();
                    OldFile {
                        path: rel.join("/"),
                        bytes: meta.len(),
                        age_secs: age_of(&meta),
                    }
                })
                .collect();
            files.sort_by(|a, b| b.age_secs.cmp(&a.age_secs).then(a.path.cmp(&b.path)));
            files
        })
        .await
        .map_err(|e| EvidenceError::Io(format!("listing evidence failed: {e}")))
    }

    /// The directory of `workspace` and the checked `rel` in it.
    fn locate(&self, workspace: &str, rel: &str) -> Result<(Dir, PathBuf), EvidenceError> {
        let root = self.workspace_dir(workspace)?.ok_or_else(|| {
            EvidenceError::NotFound(crate::validate::truncate(rel, 200).to_string())
        })?;
        resolve(&root, rel)?;
        Ok((root, PathBuf::from(rel)))
    }

    /// Size and age of one file of `workspace`, after the same checks as
    /// [`Evidence::compress`]: what an audited action records as before.
    pub fn stat(&self, workspace: &str, rel: &str) -> Result<OldFile, EvidenceError> {
        let (root, path) = self.locate(workspace, rel)?;
        let meta = root
            .symlink_metadata(&path)
            .map_err(|e| EvidenceError::Io(e.to_string()))?;
        Ok(OldFile {
            path: rel.to_string(),
            bytes: meta.len(),
            age_secs: age_of(&meta),
        })
    }

    /// Compresses one file of `workspace` (`rel` relative to its evidence
    /// directory) to `<rel>.zst`, removing the original.
    pub async fn compress(&self, workspace: &str, rel: &str) -> Result<Compressed, EvidenceError> {
        let (root, path) = self.locate(workspace, rel)?;
        let shown = rel.to_string();
        let c = tokio::task::spawn_blocking(move || compress_file(&root, &path))
            .await
            .map_err(|e| EvidenceError::Io(format!("compression failed: {e}")))?
            .map_err(|e| EvidenceError::Io(format!("cannot compress \"{shown}\": {e}")))?;
        self.count(&c);
        Ok(c)
    }
}

/// Checks that `rel` names an existing regular, uncompressed file inside
/// `root`. The syntax is checked so that a plugin gets a clear message;
/// that nothing outside `root` is reached is cap-std's doing: `..` above
/// it, an absolute path and a symbolic link out of it are refused while
/// the path is resolved.
pub fn resolve(root: &Dir, rel: &str) -> Result<(), EvidenceError> {
    let shown = crate::validate::truncate(rel, 200);
    if rel.is_empty() || rel.len() > 1024 || rel.contains('\0') || rel.contains('\\') {
        return Err(EvidenceError::Invalid(format!(
            "invalid evidence path \"{shown}\": expected a relative path like runs/<id>.json"
        )));
    }
    if !Path::new(rel)
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(EvidenceError::Invalid(format!(
            "invalid evidence path \"{shown}\": only plain relative names are allowed (no \"..\", \".\" or leading \"/\")"
        )));
    }
    let meta = match root.symlink_metadata(rel) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(EvidenceError::NotFound(shown.to_string()));
        }
        Err(e) if files::is_escape(&e) => {
            return Err(EvidenceError::Invalid(format!(
                "evidence path \"{shown}\" leads outside the workspace's evidence directory through a symbolic link, which is refused"
            )));
        }
        Err(e) => return Err(EvidenceError::Io(format!("cannot read \"{shown}\": {e}"))),
    };
    if meta.is_symlink() {
        return Err(EvidenceError::Invalid(format!(
            "evidence path \"{shown}\" is a symbolic link, which is refused"
        )));
    }
    if !meta.is_file() {
        return Err(EvidenceError::Invalid(format!(
            "evidence path \"{shown}\" is not a regular file"
        )));
    }
    if rel.ends_with(ZST) {
        return Err(EvidenceError::Invalid(format!(
            "evidence file \"{shown}\" is already compressed"
        )));
    }
    Ok(())
}

/// The directory holding `rel` inside `root` (created when `create`), and
/// `rel`'s file name.
fn parent_of(root: &Dir, rel: &Path, create: bool) -> io::Result<(Dir, String)> {
    let name = rel
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
    let dir = match rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => {
            if create {
                root.create_dir_all(parent)?;
            }
            root.open_dir(parent)?
        }
        None => root.try_clone()?,
    };
    Ok((dir, name))
}

/// Writes `bytes` as `rel` inside `root` through a synced temporary file, a
/// rename and a synced directory.
pub fn write_atomic(root: &Dir, rel: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, name) = parent_of(root, rel, true)?;
    files::write_durable(&dir, &name, bytes)
}

/// Compresses `rel` inside `root` to `<rel>.zst`: the compressed copy is
/// written to a temporary file, synced and renamed into place, and only
/// then is the original removed, so a crash at any point leaves at least
/// one whole copy.
pub fn compress_file(root: &Dir, rel: &Path) -> io::Result<Compressed> {
    let (dir, name) = parent_of(root, rel, false)?;
    if name.ends_with(ZST) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "already compressed",
        ));
    }
    let meta = dir.symlink_metadata(&name)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let target = format!("{name}{ZST}");
    let tmp = format!(".{target}.{}.tmp", files::unique());
    let result = (|| {
        let mut src = dir.open(&name)?;
        let out = files::create_new(&dir, &tmp)?;
        let mut enc = zstd::Encoder::new(out, LEVEL)?;
        io::copy(&mut src, &mut enc)?;
        let mut out = enc.finish()?;
        out.flush()?;
        out.sync_all()?;
        dir.rename(&tmp, &dir, &target)
    })();
    if let Err(e) = result {
        let _ = dir.remove_file(&tmp);
        return Err(e);
    }
    // The rename must be durable before the original goes; a directory
    // that cannot be synced (some file systems) is not a reason to keep
    // both copies.
    let _ = files::sync_dir(&dir);
    dir.remove_file(&name)?;
    let compressed_bytes = dir.metadata(&target)?.len();
    Ok(Compressed {
        original_bytes: meta.len(),
        compressed_bytes,
    })
}

fn age_of(meta: &Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m.into_std()).ok())
        .map_or(0, |d| d.as_secs())
}

/// Regular, uncompressed, non-temporary files under `root` (symbolic
/// links are neither listed nor followed) older than `age_secs`, at most
/// `limit`, relative to `root`.
fn old_files(root: &Dir, age_secs: u64, limit: usize) -> Vec<(PathBuf, Metadata)> {
    let mut found = Vec::new();
    let Ok(start) = root.try_clone() else {
        return found;
    };
    let mut stack = vec![(start, PathBuf::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = dir.entries() else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_dir() {
                if let Ok(sub) = entry.open_dir() {
                    stack.push((sub, prefix.join(&name)));
                }
            } else if kind.is_file()
                && !name.starts_with('.')
                && !name.ends_with(ZST)
                && let Ok(meta) = entry.metadata()
                && age_of(&meta) >= age_secs
            {
                found.push((prefix.join(&name), meta));
                if found.len() >= limit {
                    return found;
                }
            }
        }
    }
    found
}

/// Use of the file system holding `dir`.
pub fn usage_of(dir: &Path) -> io::Result<Usage> {
    let s = rustix::fs::statvfs(dir).map_err(io::Error::from)?;
    let frsize = s.f_frsize.max(1);
    let total = s.f_blocks.saturating_mul(frsize);
    let used = s.f_blocks.saturating_sub(s.f_bfree).saturating_mul(frsize);
    let avail = s.f_bavail.saturating_mul(frsize);
    let used_pct = if used + avail == 0 {
        0.0
    } else {
        used as f64 * 100.0 / (used + avail) as f64
    };
    Ok(Usage {
        total_bytes: total,
        free_bytes: avail,
        used_pct,
    })
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn thresholds_need_a_gap() {
        let mut t = DiskGuardConfig::default().thresholds();
        t.validate().unwrap();
        t.resume_below_pct = 90.0;
        assert!(t.validate().unwrap_err().contains("must be below"));
        t.resume_below_pct = f64::NAN;
        assert!(t.validate().unwrap_err().contains("between 0 and 100"));
    }

    #[test]
    fn compression_round_trips_and_removes_the_original() {
        let dir = tempfile::tempdir().unwrap();
        let root = files::open_root(dir.path()).unwrap();
        let body = b"{\"x\": 1}".repeat(1000);
        write_atomic(&root, Path::new("a.json"), &body).unwrap();
        let c = compress_file(&root, Path::new("a.json")).unwrap();
        assert!(!dir.path().join("a.json").exists());
        assert_eq!(c.original_bytes, body.len() as u64);
        assert!(c.compressed_bytes < c.original_bytes);
        let back =
            zstd::decode_all(std::fs::File::open(dir.path().join("a.json.zst")).unwrap()).unwrap();
        assert_eq!(back, body);
        // Nothing temporary is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn paths_that_leave_the_directory_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let root_path = base.path().join("ws");
        fs::create_dir_all(root_path.join("runs")).unwrap();
        fs::write(root_path.join("runs/a.json"), "{}").unwrap();
        fs::write(base.path().join("secret"), "s").unwrap();
        std::os::unix::fs::symlink(base.path(), root_path.join("link")).unwrap();
        std::os::unix::fs::symlink("../..", root_path.join("runs/up")).unwrap();
        std::os::unix::fs::symlink(base.path().join("secret"), root_path.join("runs/s.json"))
            .unwrap();
        let root = files::open_root(&root_path).unwrap();
        assert!(resolve(&root, "runs/a.json").is_ok());
        for bad in [
            "../secret",
            "/etc/passwd",
            "runs/../../secret",
            "./runs/a.json",
            "link/secret",
            "runs/up/secret",
            "runs/s.json",
            "runs",
        ] {
            assert!(
                matches!(resolve(&root, bad), Err(EvidenceError::Invalid(_))),
                "{bad} was not refused"
            );
        }
        assert!(matches!(
            resolve(&root, "runs/none.json"),
            Err(EvidenceError::NotFound(_))
        ));
    }

    /// The host call's own path (`Evidence::compress`, `Evidence::stat`)
    /// stays inside the workspace: another workspace's file and a file
    /// outside the evidence directory are refused, and stay as they were.
    #[tokio::test]
    async fn host_calls_stay_inside_the_workspace() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("evidence");
        let ev = Evidence::new(dir.clone(), DiskGuardConfig::default().thresholds()).unwrap();
        write_atomic(&ev.root, Path::new("a/runs/x.json"), b"{}").unwrap();
        write_atomic(&ev.root, Path::new("b/runs/y.json"), b"{}").unwrap();
        fs::write(base.path().join("outside.json"), "{}").unwrap();
        for bad in ["../b/runs/y.json", "../../outside.json", "/etc/hostname"] {
            assert!(
                matches!(ev.compress("a", bad).await, Err(EvidenceError::Invalid(_))),
                "{bad} was not refused"
            );
            assert!(matches!(ev.stat("a", bad), Err(EvidenceError::Invalid(_))));
        }
        assert!(dir.join("b/runs/y.json").exists());
        assert!(base.path().join("outside.json").exists());
        let c = ev.compress("a", "runs/x.json").await.unwrap();
        assert_eq!(c.original_bytes, 2);
        assert!(matches!(
            ev.compress("a", "runs/x.json.zst").await,
            Err(EvidenceError::Invalid(_))
        ));
        assert_eq!(ev.status().files_compressed, 1);
        let old = ev.list_old("a", 0).await.unwrap();
        assert!(
            old.is_empty(),
            "a compressed file is not listed again: {old:?}"
        );
    }
}
