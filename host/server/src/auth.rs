//! Bearer tokens, roles and workspace scopes (SPEC SE-1), and per-token
//! rate limits (SPEC SE-2).
//!
//! A token is confined to one workspace and one role; only the hash of its
//! secret is stored. The bootstrap admin token (from the configuration, the
//! environment, or generated at first start) is the operator's root: it
//! may act in every workspace and manage plugins.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rand::RngCore;
use sha2::{Digest, Sha256};
use warden_store::Store;
use warden_store::tokens::TokenRow;

use crate::error::{Error, Result};

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

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Authentication and rate limiting.
pub struct Auth {
    store: Store,
    admin_hash: String,
    cache: Mutex<HashMap<String, (Principal, Instant)>>,
    buckets: Mutex<HashMap<String, Bucket>>,
    rate_per_sec: f64,
}

impl Auth {
    /// `admin_secret` is the bootstrap admin token.
    pub fn new(store: Store, admin_secret: &str, rate_per_sec: u32) -> Self {
        Auth {
            store,
            admin_hash: hash_token(admin_secret),
            cache: Mutex::default(),
            buckets: Mutex::default(),
            rate_per_sec: f64::from(rate_per_sec.max(1)),
        }
    }

    /// Checks an `Authorization` header value.
    pub async fn authenticate(&self, header: Option<&str>) -> Result<Principal> {
        let Some(header) = header else {
            return Err(Error::Unauthenticated(
                "missing bearer token: send Authorization: Bearer <token>".to_string(),
            ));
        };
        let secret = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::Unauthenticated(
                    "the Authorization header must be \"Bearer <token>\"".to_string(),
                )
            })?;
        let hash = hash_token(secret);
        let principal = self.lookup(&hash).await?;
        self.take(&principal.token_id)?;
        Ok(principal)
    }

    async fn lookup(&self, hash: &str) -> Result<Principal> {
        if constant_time_eq(hash.as_bytes(), self.admin_hash.as_bytes()) {
            return Ok(Principal {
                name: "bootstrap-admin".to_string(),
                role: Role::Admin,
                workspace: None,
                token_id: "bootstrap".to_string(),
            });
        }
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
            .filter(|(_, at)| at.elapsed() < CACHE_TTL)
            .map(|(p, _)| p.clone());
        if let Some(p) = cached {
            return Ok(p);
        }
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
            let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
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

    /// Token bucket per token: `rate_per_sec`, bursts of twice that.
    fn take(&self, key: &str) -> Result<()> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        let capacity = self.rate_per_sec * 2.0;
        let now = Instant::now();
        let bucket = buckets.entry(key.to_string()).or_insert(Bucket {
            tokens: capacity,
            at: now,
        });
        let refill = now.duration_since(bucket.at).as_secs_f64() * self.rate_per_sec;
        bucket.tokens = (bucket.tokens + refill).min(capacity);
        bucket.at = now;
        if bucket.tokens < 1.0 {
            return Err(Error::ResourceExhausted(format!(
                "rate limit of {} requests per second for this token exceeded; retry shortly",
                self.rate_per_sec
            )));
        }
        bucket.tokens -= 1.0;
        Ok(())
    }

    /// Forgets cached lookups (after a revocation).
    pub fn forget_cache(&self) {
        self.cache.lock().unwrap_or_else(|p| p.into_inner()).clear();
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
            return Ok((existing, path.display().to_string()));
        }
    }
    let secret = new_secret();
    std::fs::create_dir_all(data_dir)
        .map_err(|e| Error::Internal(format!("cannot create {}: {e}", data_dir.display())))?;
    write_private(&path, &secret)
        .map_err(|e| Error::Internal(format!("cannot write {}: {e}", path.display())))?;
    Ok((secret, path.display().to_string()))
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
        assert_eq!(e.code(), "PERMISSION_DENIED");
        assert!(p.require_root().is_err());
    }
}
