//! The plugin registry (SPEC LC-1..LC-4, LC-7): every accepted plugin
//! version by digest, where each came from, what was rejected and why, the
//! watched plugin directory, and pin and grant resolution per workspace.
//!
//! Accepted `.wasm` files are copied into a content-addressed directory
//! (`<data_dir>/plugins/sha256/<hex>.wasm`) and indexed in the `plugins`
//! table, so deleting or overwriting the original never breaks a workspace
//! pinned to it. A version is *live* while some source still provides it
//! (a file in the plugin directory, the binary for bundled plugins, an
//! upload); `latest` only considers live versions, explicit pins consider
//! every stored one.
//!
//! The plugin directory and the store are safe to write into: both are
//! opened once as `cap_std::fs::Dir` handles and every file is opened
//! relative to them, so no symbolic link or `..` leads out of them; a
//! file's size is checked before it is read; a `name@version` is immutable
//! (a second build claiming a stored version is rejected, so `latest`
//! never moves to an impostor of a bundled plugin); the store verifies a
//! file's digest when it loads it and before it skips a write, and writes
//! durably, so a file torn by a crash is repaired by the next copy or
//! upload.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use cap_std::fs::Dir;
use serde::Serialize;
use tokio::sync::mpsc;
use warden_meta::CapabilitySet;
use warden_runtime::files::{self, ReadError};
use warden_runtime::{LoadError, Plugin, Runtime, digest_of};
use warden_store::Store;
use warden_store::plugins::PluginRow;

use crate::config::Workspaces;
pub use crate::config::selector::Selector;
use crate::error::{Error, Result};
use crate::sync::UnpoisonedRw as _;

/// One stored plugin version.
#[derive(Clone)]
pub struct Entry {
    /// The compiled plugin.
    pub plugin: Arc<Plugin>,
    /// `bundled`, `directory` or `upload`: how it first arrived.
    pub source: String,
    /// The file it came from, for directory plugins.
    pub source_path: Option<String>,
    /// When it was first accepted.
    pub added_at: i64,
}

impl Entry {
    fn version(&self) -> &semver::Version {
        &self.plugin.meta().version
    }
}

/// A file or upload that was refused, and why (SPEC LC-2).
#[derive(Clone, Debug, Serialize)]
pub struct Rejection {
    /// The file path, or `upload`.
    pub source: String,
    /// Digest of what was refused, when it could be read.
    pub digest: Option<String>,
    /// Why, as `LoadError` says it.
    pub reason: String,
    /// When.
    pub at: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
}

#[derive(Default)]
struct State {
    by_digest: HashMap<String, Entry>,
    /// Which sources currently provide each digest.
    live: HashMap<String, BTreeSet<String>>,
    /// Refusals by source key.
    rejected: BTreeMap<String, Rejection>,
    /// Files of the plugin directory as last processed, by file name: the
    /// watcher and the rescan may spell the directory differently (the
    /// watcher makes a relative one absolute), the name is the same.
    files: HashMap<String, (FileStamp, Option<String>)>,
}

/// A workspace's pins (plugin to selector) and API grants (plugin to
/// capabilities), from [`Registry::assignments`].
#[derive(Debug, Default)]
pub struct Assignments {
    pins: HashMap<String, String>,
    grants: HashMap<String, Vec<String>>,
}

/// The registry. Shared behind an `Arc`.
pub struct Registry {
    runtime: Arc<Runtime>,
    store: Store,
    /// The content-addressed store, `<data_dir>/plugins/sha256`.
    cas: Arc<Dir>,
    cas_dir: PathBuf,
    /// The plugin directory, opened once at start (replacing the directory
    /// itself needs a restart); `None` when it could not be opened.
    plugins: Option<Arc<Dir>>,
    plugin_dir: PathBuf,
    /// The workspaces' plugin settings: pins and grants.
    config: Workspaces,
    state: RwLock<State>,
}

/// What the registry is built with: where plugins are kept and dropped,
/// and the workspaces' plugin settings.
#[derive(Clone, Debug)]
pub struct RegistryConfig {
    /// The data directory; the content-addressed store is
    /// `<data_dir>/plugins/sha256`.
    pub data_dir: PathBuf,
    /// The plugin directory operators drop components into.
    pub plugin_dir: PathBuf,
    /// The `[workspaces.*]` tables: pins and grants.
    pub workspaces: Workspaces,
}

const BUNDLED: &str = "bundled";
const UPLOAD: &str = "upload";

fn source_key_for(name: &str) -> String {
    format!("file:{name}")
}

/// What reading one file of the plugin directory found.
enum FileRead {
    /// No regular file by that name (removed, a directory, a dangling link).
    Gone,
    /// The same size and modification time as when it was last processed.
    Unchanged,
    /// Its bytes.
    Bytes(FileStamp, Vec<u8>),
    /// It cannot be a plugin, and why.
    Refused(Option<FileStamp>, String),
}

fn stamp_of(meta: &cap_std::fs::Metadata) -> FileStamp {
    FileStamp {
        len: meta.len(),
        modified: meta
            .modified()
            .ok()
            .map(cap_std::time::SystemTime::into_std),
    }
}

/// Reads `name` of the plugin directory unless it is unchanged since
/// `known`, refusing a file larger than `limit` without reading it and a
/// symbolic link that leads out of the directory.
fn read_plugin_file(dir: &Dir, name: &str, limit: u64, known: Option<FileStamp>) -> FileRead {
    let escaped = |e: &std::io::Error| {
        files::is_escape(e).then(|| {
            "symbolic link leads outside the plugin directory, and is not followed".to_string()
        })
    };
    let meta = match dir.metadata(name) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return FileRead::Gone,
        Err(e) => {
            let reason = escaped(&e).unwrap_or_else(|| format!("cannot read the file: {e}"));
            return FileRead::Refused(None, reason);
        }
    };
    if !meta.is_file() {
        return FileRead::Gone;
    }
    if known == Some(stamp_of(&meta)) {
        return FileRead::Unchanged;
    }
    match files::read_bounded(dir, name, limit) {
        Ok((meta, bytes)) => FileRead::Bytes(stamp_of(&meta), bytes),
        Err(ReadError::TooLarge { size }) => FileRead::Refused(
            Some(stamp_of(&meta)),
            format!(
                "file of {size} bytes exceeds the {} MiB limit (limits.max_plugin_mib)",
                limit >> 20
            ),
        ),
        Err(ReadError::NotAFile) => FileRead::Gone,
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => FileRead::Gone,
        Err(ReadError::Io(e)) => {
            let reason = escaped(&e).unwrap_or_else(|| format!("cannot read the file: {e}"));
            FileRead::Refused(Some(stamp_of(&meta)), reason)
        }
    }
}

/// The stored file of `digest`, when it is whole and what its name says.
fn load_stored_file(
    cas: &Dir,
    cas_dir: &Path,
    digest: &str,
    limit: u64,
) -> Result<Vec<u8>, String> {
    let name = cas_name(digest);
    let shown = cas_dir.join(&name);
    let bytes = match files::read_bounded(cas, &name, limit) {
        Ok((_, bytes)) => bytes,
        Err(ReadError::TooLarge { size }) => {
            return Err(format!(
                "stored file {} of {size} bytes exceeds the {} MiB limit (limits.max_plugin_mib)",
                shown.display(),
                limit >> 20
            ));
        }
        Err(ReadError::NotAFile) => {
            return Err(format!(
                "stored file {} is not a regular file",
                shown.display()
            ));
        }
        Err(ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("stored file {} is missing: {e}", shown.display()));
        }
        Err(ReadError::Io(e)) => {
            return Err(format!(
                "cannot read the stored file {}: {e}",
                shown.display()
            ));
        }
    };
    let actual = digest_of(&bytes);
    if actual != digest {
        return Err(format!(
            "stored file {} does not match its digest (it holds {actual}); copy or upload the plugin again to repair it",
            shown.display()
        ));
    }
    Ok(bytes)
}

/// Stores `bytes` as the file of `digest` unless a whole, verified copy is
/// there already; a torn or altered one is replaced. Written durably.
fn store_file(cas: &Dir, cas_dir: &Path, digest: &str, bytes: &[u8]) -> std::io::Result<()> {
    if load_stored_file(cas, cas_dir, digest, bytes.len() as u64).is_ok() {
        return Ok(());
    }
    files::write_durable(cas, &cas_name(digest), bytes)
}

fn cas_name(digest: &str) -> String {
    format!("{}.wasm", digest.trim_start_matches("sha256:"))
}

impl Registry {
    /// Opens the registry: creates its directories and loads every stored
    /// plugin (from the compile cache when warm).
    pub async fn open(
        runtime: Arc<Runtime>,
        store: Store,
        config: RegistryConfig,
    ) -> Result<Arc<Self>> {
        let cas_dir = config.data_dir.join("plugins").join("sha256");
        let cas = files::open_root(&cas_dir).map_err(|source| Error::Io {
            doing: format!("cannot open {}", cas_dir.display()),
            source,
        })?;
        let plugins = match files::open_root(&config.plugin_dir) {
            Ok(dir) => Some(Arc::new(dir)),
            Err(e) => {
                tracing::warn!(dir = %config.plugin_dir.display(), error = %e, "cannot open the plugin directory; only bundled and uploaded plugins are loaded");
                None
            }
        };
        let registry = Arc::new(Registry {
            runtime,
            store,
            cas: Arc::new(cas),
            cas_dir,
            plugins,
            plugin_dir: config.plugin_dir,
            config: config.workspaces,
            state: RwLock::default(),
        });
        registry.load_stored().await?;
        Ok(registry)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read_locked()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write_locked()
    }

    /// The largest `.wasm` accepted, in bytes.
    fn max_bytes(&self) -> u64 {
        self.runtime.config().max_wasm_bytes as u64
    }

    /// Loads the versions recorded in the database from the store
    /// directory. A stored file that no longer loads (e.g. after a host
    /// upgrade changed the contract) is listed as rejected.
    async fn load_stored(&self) -> Result<()> {
        let rows = self.store.list_plugins().await?;
        for row in rows {
            let (cas, cas_dir, digest, limit) = (
                self.cas.clone(),
                self.cas_dir.clone(),
                row.digest.clone(),
                self.max_bytes(),
            );
            let read = tokio::task::spawn_blocking(move || {
                load_stored_file(&cas, &cas_dir, &digest, limit)
            })
            .await
            .unwrap_or_else(|e| Err(format!("reading the stored file failed: {e}")));
            let bytes = match read {
                Ok(b) => b,
                Err(reason) => {
                    self.reject(
                        format!("store:{}", row.digest),
                        Some(row.digest.clone()),
                        reason,
                    );
                    continue;
                }
            };
            match self.compile(bytes).await {
                Ok(plugin) => {
                    let mut state = self.write();
                    state.by_digest.insert(
                        row.digest.clone(),
                        Entry {
                            plugin: Arc::new(plugin),
                            source: row.source.clone(),
                            source_path: row.source_path.clone(),
                            added_at: row.added_at,
                        },
                    );
                    if row.source == UPLOAD {
                        state
                            .live
                            .entry(row.digest.clone())
                            .or_default()
                            .insert(UPLOAD.to_string());
                    }
                }
                Err(e) => self.reject(
                    format!("store:{}", row.digest),
                    Some(row.digest),
                    e.to_string(),
                ),
            }
        }
        Ok(())
    }

    async fn compile(&self, bytes: Vec<u8>) -> Result<Plugin, LoadError> {
        let runtime = self.runtime.clone();
        tokio::task::spawn_blocking(move || runtime.load(&bytes))
            .await
            .unwrap_or_else(|e| Err(LoadError::Compile(format!("compiler task failed: {e}"))))
    }

    fn reject(&self, key: String, digest: Option<String>, reason: String) {
        let repeated = self
            .read()
            .rejected
            .get(&key)
            .is_some_and(|r| r.reason == reason && r.digest == digest);
        if repeated {
            // The rescan finds a refused file again every 2 s: it is
            // listed already, and logged once.
            return;
        }
        tracing::warn!(source = %key, reason = %reason, "plugin rejected");
        // A file is shown as the plugin directory (as configured) joined
        // with its name, however the watcher or the rescan spelled it.
        let source = match key.strip_prefix("file:") {
            Some(name) => self.plugin_dir.join(name).display().to_string(),
            None => key.clone(),
        };
        self.write().rejected.insert(
            key,
            Rejection {
                source,
                digest,
                reason,
                at: warden_store::now_ms(),
            },
        );
    }

    /// Validates, stores and indexes a plugin provided by `source_key`.
    async fn add(
        &self,
        bytes: Vec<u8>,
        source_key: String,
        source: &str,
        source_path: Option<String>,
    ) -> Result<Entry, LoadError> {
        let digest = digest_of(&bytes);
        let known = self.read().by_digest.get(&digest).cloned();
        let entry = match known {
            Some(entry) => {
                self.check_immutable(&entry.plugin, source, Some(entry.added_at), &source_key)?;
                entry
            }
            None => {
                let plugin = match self.compile(bytes.clone()).await {
                    Ok(p) => p,
                    Err(e) => {
                        self.reject(source_key, Some(digest), e.to_string());
                        return Err(e);
                    }
                };
                self.check_immutable(&plugin, source, None, &source_key)?;
                let size = bytes.len() as i64;
                let (cas, cas_dir, d) = (self.cas.clone(), self.cas_dir.clone(), digest.clone());
                let stored =
                    tokio::task::spawn_blocking(move || store_file(&cas, &cas_dir, &d, &bytes))
                        .await
                        .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())));
                if let Err(e) = stored {
                    let reason = format!(
                        "cannot store the plugin in {}: {e}",
                        self.cas_dir.join(cas_name(&digest)).display()
                    );
                    self.reject(source_key, Some(digest), reason.clone());
                    return Err(LoadError::Refused(reason));
                }
                let meta = plugin.meta();
                let row = PluginRow {
                    digest: digest.clone(),
                    name: meta.name.clone(),
                    version: meta.version.to_string(),
                    kind: meta.kind.to_string(),
                    meta: serde_json::to_value(meta).unwrap_or_default(),
                    size,
                    source: source.to_string(),
                    source_path: source_path.clone(),
                    added_at: warden_store::now_ms(),
                };
                if let Err(e) = self.store.upsert_plugin(&row).await {
                    let reason = format!("cannot record the plugin: {e}");
                    self.reject(source_key, Some(digest), reason.clone());
                    return Err(LoadError::Refused(reason));
                }
                tracing::info!(plugin = %meta.id(), digest = %digest, source = %source_key, "plugin accepted");
                let entry = Entry {
                    plugin: Arc::new(plugin),
                    source: source.to_string(),
                    source_path,
                    added_at: row.added_at,
                };
                self.write().by_digest.insert(digest.clone(), entry.clone());
                entry
            }
        };
        let mut state = self.write();
        state.rejected.remove(&source_key);
        // A stored file that did not verify at start is whole again.
        state.rejected.remove(&format!("store:{digest}"));
        state.live.entry(digest).or_default().insert(source_key);
        Ok(entry)
    }

    /// A `name@version` is immutable: refuses `plugin` from `source` when
    /// another build of the same name and version owns it. The owner is a
    /// bundled build, else the first one stored (`added_at`: `None` for a
    /// build not stored yet). A bundled plugin is the host's own and is
    /// never refused; a stored build it replaces stays pinnable by digest.
    fn check_immutable(
        &self,
        plugin: &Plugin,
        source: &str,
        added_at: Option<i64>,
        source_key: &str,
    ) -> Result<(), LoadError> {
        let meta = plugin.meta();
        let owner = {
            let state = self.read();
            let bundled = |d: &str| state.live.get(d).is_some_and(|s| s.contains(BUNDLED));
            let mut others: Vec<&Entry> = state
                .by_digest
                .values()
                .filter(|e| {
                    let m = e.plugin.meta();
                    m.name == meta.name
                        && m.version == meta.version
                        && e.plugin.digest() != plugin.digest()
                })
                .collect();
            others.sort_by_key(|e| (!bundled(e.plugin.digest()), e.added_at));
            others
                .into_iter()
                .find(|e| {
                    bundled(e.plugin.digest()) || added_at.is_none_or(|mine| e.added_at < mine)
                })
                .map(|e| e.plugin.digest().to_string())
        };
        if source == BUNDLED {
            if let Some(other) = owner {
                tracing::warn!(plugin = %meta.id(), digest = %plugin.digest(), replaces = %other, "bundled plugin differs from the stored build of the same version; the bundled one is used");
            }
            return Ok(());
        }
        let Some(other) = owner else { return Ok(()) };
        let reason = format!(
            "\"{}\" is already stored with digest {other}; a version is immutable: give this build a new version",
            meta.id()
        );
        self.reject(
            source_key.to_string(),
            Some(plugin.digest().to_string()),
            reason.clone(),
        );
        Err(LoadError::Refused(reason))
    }

    /// Registers a plugin built into the binary.
    pub async fn add_bundled(&self, name: &str, bytes: &[u8]) -> Result<Entry, LoadError> {
        let entry = self
            .add(bytes.to_vec(), BUNDLED.to_string(), BUNDLED, None)
            .await?;
        if entry.plugin.meta().name != name {
            tracing::warn!(expected = name, actual = %entry.plugin.meta().name, "bundled plugin has another name in its metadata");
        }
        Ok(entry)
    }

    /// Accepts an upload (SPEC LC-7).
    pub async fn add_upload(&self, bytes: Vec<u8>) -> Result<Entry, LoadError> {
        self.add(bytes, UPLOAD.to_string(), UPLOAD, None).await
    }

    /// Processes one path of the plugin directory: new, changed or gone.
    /// Only its file name counts: the watcher and the rescan may spell the
    /// directory differently, and the file is opened in the directory's
    /// handle whatever the path says.
    pub async fn sync_file(&self, path: &Path) {
        match path.file_name().and_then(|n| n.to_str()) {
            Some(name) => self.sync_name(name).await,
            None => tracing::debug!(path = %path.display(), "not a plugin file name; ignored"),
        }
    }

    /// Processes the file `name` of the plugin directory.
    async fn sync_name(&self, name: &str) {
        let key = source_key_for(name);
        let is_plugin = name.ends_with(".wasm") && !name.starts_with('.');
        let Some(dir) = self.plugins.clone().filter(|_| is_plugin) else {
            self.forget_file(name, &key);
            return;
        };
        let known = self.read().files.get(name).map(|(stamp, _)| *stamp);
        let (owned, limit) = (name.to_string(), self.max_bytes());
        let read =
            tokio::task::spawn_blocking(move || read_plugin_file(&dir, &owned, limit, known))
                .await
                .unwrap_or_else(|e| {
                    FileRead::Refused(None, format!("reading the file failed: {e}"))
                });
        let previous = self.read().files.get(name).and_then(|(_, d)| d.clone());
        let (stamp, bytes) = match read {
            FileRead::Gone => {
                self.forget_file(name, &key);
                return;
            }
            FileRead::Unchanged => return,
            FileRead::Refused(stamp, reason) => {
                // The file no longer provides what it did.
                if let Some(old) = previous {
                    self.drop_source(&old, &key);
                }
                self.reject(key, None, reason);
                let mut state = self.write();
                match stamp {
                    Some(stamp) => state.files.insert(name.to_string(), (stamp, None)),
                    None => state.files.remove(name),
                };
                return;
            }
            FileRead::Bytes(stamp, bytes) => (stamp, bytes),
        };
        let digest = digest_of(&bytes);
        if previous.as_deref() == Some(digest.as_str()) {
            self.write()
                .files
                .insert(name.to_string(), (stamp, Some(digest)));
            return;
        }
        if let Some(old) = previous {
            self.drop_source(&old, &key);
        }
        let shown = self.plugin_dir.join(name).display().to_string();
        let accepted = self.add(bytes, key, "directory", Some(shown)).await.is_ok();
        self.write()
            .files
            .insert(name.to_string(), (stamp, accepted.then_some(digest)));
    }

    fn drop_source(&self, digest: &str, key: &str) {
        let mut state = self.write();
        if let Some(sources) = state.live.get_mut(digest) {
            sources.remove(key);
        }
    }

    fn forget_file(&self, name: &str, key: &str) {
        let previous = {
            let mut state = self.write();
            state.rejected.remove(key);
            state.files.remove(name)
        };
        if let Some((_, Some(digest))) = previous {
            tracing::info!(file = %self.plugin_dir.join(name).display(), digest = %digest, "plugin file removed; stored copy kept for pins");
            self.drop_source(&digest, key);
        }
    }

    /// Compares the plugin directory with what was processed last and
    /// syncs every difference.
    pub async fn rescan(&self) {
        let mut seen = BTreeSet::new();
        if let Some(dir) = self.plugins.clone() {
            let listed = tokio::task::spawn_blocking(move || -> Vec<String> {
                let Ok(entries) = dir.entries() else {
                    return Vec::new();
                };
                entries
                    .flatten()
                    .filter_map(|e| e.file_name().into_string().ok())
                    .filter(|n| n.ends_with(".wasm"))
                    .collect()
            })
            .await
            .unwrap_or_default();
            for name in listed {
                self.sync_name(&name).await;
                seen.insert(name);
            }
        }
        let gone: Vec<String> = self
            .read()
            .files
            .keys()
            .filter(|n| !seen.contains(*n))
            .cloned()
            .collect();
        for name in gone {
            self.sync_name(&name).await;
        }
    }

    /// Watches the plugin directory until `shutdown` fires: changes are
    /// applied about 100 ms after the last write to a file (SPEC LC-1),
    /// with a full rescan every 2 s in case an event was missed.
    pub fn watch(
        self: Arc<Self>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            let (tx, mut rx) = mpsc::unbounded_channel::<PathBuf>();
            let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
                if let Ok(event) = res {
                    for path in event.paths {
                        let _ = tx.send(path);
                    }
                }
            });
            let _watcher = match watcher {
                Ok(mut w) => {
                    use notify::Watcher as _;
                    match w.watch(&self.plugin_dir, notify::RecursiveMode::NonRecursive) {
                        Ok(()) => Some(w),
                        Err(e) => {
                            tracing::warn!(dir = %self.plugin_dir.display(), error = %e, "cannot watch the plugin directory; rescanning every 2 s instead");
                            None
                        }
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "no file watcher; rescanning every 2 s instead");
                    None
                }
            };
            let debounce = Duration::from_millis(100);
            // By file name: the watcher's paths are the directory made
            // absolute, joined with the name.
            let mut pending: BTreeSet<String> = BTreeSet::new();
            let mut due = tokio::time::Instant::now();
            let mut rescan = tokio::time::interval(Duration::from_secs(2));
            loop {
                tokio::select! {
                    Some(path) = rx.recv() => {
                        if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                            pending.insert(name.to_string());
                            due = tokio::time::Instant::now() + debounce;
                        }
                    }
                    () = tokio::time::sleep_until(due), if !pending.is_empty() => {
                        for name in std::mem::take(&mut pending) {
                            self.sync_name(&name).await;
                        }
                    }
                    _ = rescan.tick() => self.rescan().await,
                    _ = shutdown.changed() => break,
                }
            }
        })
    }

    /// One stored version by digest.
    pub fn by_digest(&self, digest: &str) -> Option<Entry> {
        self.read().by_digest.get(digest).cloned()
    }

    /// True while some source provides the digest.
    pub fn is_live(&self, digest: &str) -> bool {
        self.read().live.get(digest).is_some_and(|s| !s.is_empty())
    }

    fn is_bundled(&self, digest: &str) -> bool {
        self.read()
            .live
            .get(digest)
            .is_some_and(|s| s.contains(BUNDLED))
    }

    /// Every version of `name`, newest first.
    pub fn versions(&self, name: &str) -> Vec<Entry> {
        let state = self.read();
        let mut v: Vec<Entry> = state
            .by_digest
            .values()
            .filter(|e| e.plugin.meta().name == name)
            .cloned()
            .collect();
        v.sort_by(|a, b| {
            b.version()
                .cmp(a.version())
                .then(b.added_at.cmp(&a.added_at))
        });
        v
    }

    /// Every plugin name, sorted.
    pub fn names(&self) -> Vec<String> {
        let state = self.read();
        let names: BTreeSet<String> = state
            .by_digest
            .values()
            .map(|e| e.plugin.meta().name.clone())
            .collect();
        names.into_iter().collect()
    }

    /// Refusals, by source.
    pub fn rejected(&self) -> Vec<Rejection> {
        self.read().rejected.values().cloned().collect()
    }

    /// The version `selector` picks for `name`.
    pub fn resolve(&self, name: &str, selector: &Selector) -> Result<Entry> {
        let versions = self.versions(name);
        if versions.is_empty() {
            return Err(Error::NotFound(format!("plugin \"{name}\" not found")));
        }
        // Newest first; live versions before stored-only ones.
        let live_first = |pred: &dyn Fn(&Entry) -> bool| {
            versions
                .iter()
                .filter(|e| pred(e))
                .max_by_key(|e| {
                    (
                        self.is_live(e.plugin.digest()),
                        e.version().clone(),
                        self.is_bundled(e.plugin.digest()),
                        e.added_at,
                    )
                })
                .cloned()
        };
        let found = match selector {
            // Of two live builds of one version (stored before versions
            // were immutable), the bundled one wins.
            Selector::Latest => versions
                .iter()
                .filter(|e| self.is_live(e.plugin.digest()))
                .max_by_key(|e| {
                    (
                        e.version().clone(),
                        self.is_bundled(e.plugin.digest()),
                        e.added_at,
                    )
                })
                .cloned(),
            Selector::Version(v) => live_first(&|e| e.version() == v),
            Selector::Req(req) => live_first(&|e| req.matches(e.version())),
            Selector::Digest(d) => versions.iter().find(|e| e.plugin.digest() == d).cloned(),
        };
        found.ok_or_else(|| Error::NoVersion {
            plugin: name.to_string(),
            selector: match selector {
                Selector::Latest => None,
                other => Some(other.to_string()),
            },
        })
    }

    /// The selector in force for a workspace: a pin set over the API, else
    /// warden.toml's, else `latest`.
    pub async fn selector_for(
        &self,
        workspace: &str,
        name: &str,
    ) -> Result<(Selector, &'static str)> {
        let pin = self.store.get_pin(workspace, name).await?;
        self.selector_from(workspace, name, pin.map(|p| p.selector))
    }

    /// As `selector_for`, with the API's pin already read.
    fn selector_from(
        &self,
        workspace: &str,
        name: &str,
        api_pin: Option<String>,
    ) -> Result<(Selector, &'static str)> {
        if let Some(pin) = api_pin {
            let s = Selector::parse(&pin).map_err(Error::Internal)?;
            return Ok((s, "api"));
        }
        if let Some(pin) = self.config.plugin(workspace, name).pin {
            let s = Selector::parse(&pin)
                .map_err(|e| Error::Internal(format!("warden.toml pin: {e}")))?;
            return Ok((s, "config"));
        }
        Ok((Selector::Latest, "default"))
    }

    /// The version a workspace uses.
    pub async fn pinned(&self, workspace: &str, name: &str) -> Result<Entry> {
        let (selector, _) = self.selector_for(workspace, name).await?;
        self.resolve(name, &selector)
    }

    /// A workspace's pins and API grants, read at once (two queries in
    /// parallel), for resolving several plugins with
    /// [`Registry::pinned_and_granted`].
    pub async fn assignments(&self, workspace: &str) -> Result<Assignments> {
        let (pins, grants) = tokio::try_join!(
            self.store.list_pins(workspace),
            self.store.list_grants(workspace)
        )?;
        Ok(Assignments {
            pins: pins.into_iter().map(|p| (p.plugin, p.selector)).collect(),
            grants: grants
                .into_iter()
                .map(|g| (g.plugin, g.capabilities))
                .collect(),
        })
    }

    /// Each of `names` as pinned in `workspace` (else its newest version)
    /// with what it is granted there, given the workspace's
    /// [`Registry::assignments`].
    pub fn pinned_and_granted(
        &self,
        workspace: &str,
        names: &[String],
        mut assignments: Assignments,
    ) -> Vec<Result<(Entry, CapabilitySet)>> {
        names
            .iter()
            .map(|name| {
                let pin = assignments.pins.remove(name);
                let (selector, _) = self.selector_from(workspace, name, pin)?;
                let entry = self.resolve(name, &selector)?;
                let granted = self.granted_from(workspace, &entry, assignments.grants.remove(name));
                Ok((entry, granted))
            })
            .collect()
    }

    /// What the operator granted `entry` in `workspace` (SPEC PL-6):
    /// warden.toml grants for the workspace and `"*"`, plus grants set over
    /// the API. A bundled plugin without any grant configuration is
    /// trusted with what it requests.
    pub async fn granted(&self, workspace: &str, entry: &Entry) -> Result<CapabilitySet> {
        let from_api = self
            .store
            .get_grant(workspace, &entry.plugin.meta().name)
            .await?;
        Ok(self.granted_from(workspace, entry, from_api.map(|g| g.capabilities)))
    }

    /// As `granted`, with the API's grant already read.
    fn granted_from(
        &self,
        workspace: &str,
        entry: &Entry,
        from_api: Option<Vec<String>>,
    ) -> CapabilitySet {
        let meta = entry.plugin.meta();
        let from_config = self.config.plugin(workspace, &meta.name).grants;
        if from_api.is_none()
            && !self.config.has_grant_config(workspace, &meta.name)
            && self.is_bundled(entry.plugin.digest())
        {
            return meta.capabilities.clone();
        }
        let names = from_config.into_iter().chain(from_api.unwrap_or_default());
        // Grants were validated when set; a name this host no longer knows
        // is skipped rather than failing every run.
        names.filter_map(|n| n.parse().ok()).collect()
    }
}
