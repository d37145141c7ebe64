//! Bearer tokens, roles and workspace scopes (SPEC SE-1), per-token rate
//! limits (SPEC SE-2), and a rate limit per client address on requests
//! that are not authenticated yet, checked before any database lookup.
//!
//! A token is confined to one workspace and one role; only the hash of its
//! secret is stored. The bootstrap admin token (from the configuration, the
//! environment, or generated at first start) is the operator's root: it
//! may act in every workspace and manage plugins.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use rand::RngCore;
use sha2::{Digest, Sha256};
use warden_store::Store;
use warden_store::tokens::TokenRow;

use crate::error::{Error, Result};
use crate::sync::Unpoisoned as _;

/// What a token may do, weakest first. Each role includes the ones before.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Read everything in the workspace.
    Viewer,
    /// A worker: read, create and work tasks, run playbooks in `diagnose`.
    Agent,
    /// Run playbooks in any mode, pin plugin versions, manage tasks.
    Operator,
    /// Also grant capabilities and manage the workspace's tokens.
    Admin,
}

impl Role {
    /// Parses a role name.
    pub fn parse(s: &str) -> Result<Role> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "agent" => Ok(Role::Agent),
            "operator" => Ok(Role::Operator),
            "admin" => Ok(Role::Admin),
            other => Err(Error::invalid(format!(
                "invalid role \"{}\": expected viewer, agent, operator or admin",
                crate::validate::truncate(other, 40)
            ))),
        }
    }

    /// The role's name.
    pub fn name(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Agent => "agent",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Who is calling.
#[derive(Clone, Debug)]
pub struct Principal {
    /// For audit records: the token's name, or `bootstrap-admin`.
    pub name: String,
    /// The role.
    pub role: Role,
    /// `None` for the bootstrap admin (every workspace).
    pub workspace: Option<String>,
    /// The token id, for rate limiting and revocation.
    pub token_id: String,
}

impl Principal {
    /// Allows the call when the principal may act in `workspace` with at
    /// least `role`.
    pub fn require(&self, workspace: &str, role: Role) -> Result<()> {
        if let Some(own) = &self.workspace
            && own != workspace
        {
            return Err(Error::PermissionDenied(format!(
                "this token is scoped to workspace \"{own}\" and cannot access workspace \"{workspace}\""
            )));
        }
        if self.role < role {
            return Err(Error::PermissionDenied(format!(
                "this needs the {role} role; the token has {}",
                self.role
            )));
        }
        Ok(())
    }

    /// Allows only the bootstrap admin (plugin uploads and other actions
    /// that span workspaces).
    pub fn require_root(&self) -> Result<()> {
        if self.workspace.is_none() {
            Ok(())
        } else {
            Err(Error::PermissionDenied(
                "this needs the bootstrap admin token: it acts on every workspace".to_string(),
            ))
        }
    }

    /// The workspace to show by default.
    pub fn home(&self) -> &str {
        self.workspace.as_deref().unwrap_or("default")
    }
}

/// Hex SHA-256 of a token secret.
pub fn hash_token(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// A new random token secret.
pub fn new_secret() -> String {
    let mut bytes = [0u8; 24];
    rand::rng().fill_bytes(&mut bytes);
    format!("wdn_{}", hex::encode(bytes))
}

/// How long a looked-up token is trusted before asking the database again
/// (so a revocation takes effect within this time).
const CACHE_TTL: Duration = Duration::from_secs(10);

/// A rate limiter per key (a token, an address): `per_sec`, bursts of
/// twice that. Keys that have been quiet long enough to be full again are
/// forgotten every [`FORGET_EVERY`] checks, so that a flood of new keys
/// (random tokens, many addresses) does not grow the map without end.
struct Limiter {
    per_sec: u32,
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicU64,
}

/// How many checks of a limiter pass between two sweeps of its idle keys.
const FORGET_EVERY: u64 = 1024;

impl Limiter {
    fn new(per_sec: u32) -> Self {
        let per_sec = per_sec.max(1);
        let rate = NonZeroU32::new(per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(per_sec.saturating_mul(2)).unwrap_or(rate);
        Limiter {
            per_sec,
            limiter: RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// True when `key` may make one more request now.
    fn allow(&self, key: &str) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&key.to_string()).is_ok()
    }
}

/// Authentication and rate limiting.
pub struct Auth {
    store: Store,
    admin_hash: String,
    cache: Mutex<HashMap<String, (Principal, Instant)>>,
    per_token: Limiter,
    per_addr: Limiter,
}

impl Auth {
    /// `admin_secret` is the bootstrap admin token; `rate_per_sec` the
    /// requests per second of each token, `unauthenticated_per_sec` those
    /// of each address before its token is known.
    pub fn new(
        store: Store,
        admin_secret: &str,
        rate_per_sec: u32,
        unauthenticated_per_sec: u32,
    ) -> Self {
        Auth {
            store,
            admin_hash: hash_token(admin_secret),
            cache: Mutex::default(),
            per_token: Limiter::new(rate_per_sec),
            per_addr: Limiter::new(unauthenticated_per_sec),
        }
    }

    /// Checks an `Authorization` header value sent from `peer` (`None`
    /// when the request did not come through the server's accept loop:
    /// such requests share one address bucket).
    pub async fn authenticate(
        &self,
        header: Option<&str>,
        peer: Option<IpAddr>,
    ) -> Result<Principal> {
        let principal = self.identify(header, peer).await?;
        if !self.per_token.allow(&principal.token_id) {
            return Err(Error::ResourceExhausted(format!(
                "rate limit of {} requests per second for this token exceeded; retry shortly",
                self.per_token.per_sec
            )));
        }
        Ok(principal)
    }

    /// Who sent the request. Anything that is not answered from memory
    /// (no token, a malformed one, one not in the cache) first takes from
    /// the address's bucket: a client that sends random tokens gets 429s,
    /// not one database lookup per request.
    async fn identify(&self, header: Option<&str>, peer: Option<IpAddr>) -> Result<Principal> {
        let secret = header.and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        });
        let hash = secret.map(hash_token);
        if let Some(hash) = &hash
            && let Some(p) = self.known(hash)
        {
            return Ok(p);
        }
        let addr = peer.map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        if !self.per_addr.allow(&addr) {
            return Err(Error::ResourceExhausted(format!(
                "too many unauthenticated requests from {addr} (limit {} per second); retry shortly",
                self.per_addr.per_sec
            )));
        }
        let Some(hash) = hash else {
            return Err(Error::Unauthenticated(match header {
                None => "missing bearer token: send Authorization: Bearer <token>".to_string(),
                Some(_) => "the Authorization header must be \"Bearer <token>\"".to_string(),
            }));
        };
        self.lookup(&hash).await
    }

    /// The bootstrap admin, or a token looked up less than [`CACHE_TTL`]
    /// ago: answered without the database.
    fn known(&self, hash: &str) -> Option<Principal> {
        if constant_time_eq(hash.as_bytes(), self.admin_hash.as_bytes()) {
            return Some(Principal {
                name: "bootstrap-admin".to_string(),
                role: Role::Admin,
                workspace: None,
                token_id: "bootstrap".to_string(),
            });
        }
        self.cache
            .locked()
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(p, _)| p.clone())
    }

    async fn lookup(&self, hash: &str) -> Result<Principal> {
        let row = self
            .store
            .find_token(hash)
            .await?
            .ok_or_else(|| Error::Unauthenticated("unknown or revoked token".to_string()))?;
        let principal = Principal {
            name: row.name.clone(),
            role: Role::parse(&row.role)
                .map_err(|_| Error::Internal(format!("token {} has role {}", row.id, row.role)))?,
            workspace: Some(row.workspace.clone()),
            token_id: row.id.clone(),
        };
        {
            let mut cache = self.cache.locked();
            if cache.len() > 10_000 {
                cache.clear();
            }
            cache.insert(hash.to_string(), (principal.clone(), Instant::now()));
        }
        if row
            .last_used_at
            .is_none_or(|t| warden_store::now_ms() - t > 60_000)
        {
            let _ = self
                .store
                .touch_token(&row.id, warden_store::now_ms())
                .await;
        }
        Ok(principal)
    }

    /// Forgets cached lookups (after a revocation).
    pub fn forget_cache(&self) {
        self.cache.locked().clear();
    }

    /// Creates a token; returns the row and the secret (shown once).
    pub async fn create_token(
        &self,
        workspace: &str,
        name: &str,
        role: Role,
    ) -> Result<(TokenRow, String)> {
        let secret = new_secret();
        let row = TokenRow {
            id: warden_store::new_id(),
            name: name.to_string(),
            workspace: workspace.to_string(),
            role: role.name().to_string(),
            hash: hash_token(&secret),
            created_at: warden_store::now_ms(),
            last_used_at: None,
            revoked_at: None,
        };
        self.store.insert_token(&row).await?;
        Ok((row, secret))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The bootstrap admin token: the configured one, or the one in
/// `<data_dir>/admin.token`, or a new one written there (mode 0600).
/// Returns the secret and where it came from.
pub fn bootstrap_secret(configured: Option<&str>, data_dir: &Path) -> Result<(String, String)> {
    if let Some(s) = configured {
        return Ok((s.to_string(), "configuration".to_string()));
    }
    let path = data_dir.join("admin.token");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim().to_string();
        if existing.len() >= 16 {
            // The file may have been copied, restored from a backup or
            // edited with a umask that let others read it: whoever reads
            // it is the operator's root, so it is made private again on
            // every start.
            restrict(&path, 0o600)?;
            return Ok((existing, path.display().to_string()));
        }
    }
    let secret = new_secret();
    std::fs::create_dir_all(data_dir).map_err(|source| Error::Io {
        doing: format!("cannot create {}", data_dir.display()),
        source,
    })?;
    write_private(&path, &secret).map_err(|source| Error::Io {
        doing: format!("cannot write {}", path.display()),
        source,
    })?;
    // `mode` applies only when the file is created; one that existed (too
    // short to be a token) keeps its bits otherwise.
    restrict(&path, 0o600)?;
    Ok((secret, path.display().to_string()))
}

/// Makes the data directory private to Warden's user (mode 0700), on
/// every start: it holds the database, the admin token and the plugins a
/// workspace is pinned to. Created when missing.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| Error::Io {
            doing: format!("cannot create {}", dir.display()),
            source,
        })?;
    restrict(dir, 0o700)
}

/// Sets `path`'s permission bits to `mode` unless they are already; logs
/// the change. An error names the path (a file owned by another user).
fn restrict(path: &Path, mode: u32) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        doing: format!("cannot read {}", path.display()),
        source,
    })?;
    let was = meta.permissions().mode() & 0o7777;
    if was == mode {
        return Ok(());
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        Error::Io {
            doing: format!(
                "cannot set the permissions of {} to {mode:o} (they are {was:o})",
                path.display()
            ),
            source,
        }
    })?;
    tracing::warn!(
        path = %path.display(),
        "permissions were {was:o}; set to {mode:o} so that only Warden's user can read it"
    );
    Ok(())
}

fn write_private(path: &Path, secret: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(secret.as_bytes())?;
    f.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_and_role_checks() {
        let p = Principal {
            name: "ci".into(),
            role: Role::Operator,
            workspace: Some("a".into()),
            token_id: "t".into(),
        };
        assert!(p.require("a", Role::Viewer).is_ok());
        assert!(p.require("a", Role::Operator).is_ok());
        let e = p.require("a", Role::Admin).unwrap_err();
        assert_eq!(
            e.to_string(),
            "this needs the admin role; the token has operator"
        );
        let e = p.require("b", Role::Viewer).unwrap_err();
        assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
        assert!(p.require_root().is_err());
    }
}
