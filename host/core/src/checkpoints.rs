//! Agent checkpoints (SPEC TS-9): an agent stores its state blob before it
//! sleeps and gets the newest one that verifies when it wakes. Every
//! version is written atomically with its SHA-256; a blob whose bytes no
//! longer match (a torn or corrupted write) is never returned.

use sha2::{Digest, Sha256};
use warden_store::Store;
use warden_store::checkpoints::PutCheckpoint;

use crate::error::{Error, Result};

/// Versions kept per agent.
pub const KEEP: i64 = 20;
/// Largest blob.
pub const MAX_BYTES: usize = 8 << 20;

/// `[checkpoints]`
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CheckpointsConfig {
    /// Agents with checkpoints per workspace. Agent ids are the client's
    /// choice and each may keep [`KEEP`] versions of up to [`MAX_BYTES`],
    /// so without a cap one token could fill the database.
    pub max_agents_per_workspace: u32,
}

impl Default for CheckpointsConfig {
    fn default() -> Self {
        CheckpointsConfig {
            max_agents_per_workspace: 1_000,
        }
    }
}

/// A stored or returned checkpoint.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Checkpoint {
    /// 1, 2, 3, ...
    pub version: i64,
    /// Hex SHA-256 of the blob.
    pub sha256: String,
    /// Size in bytes.
    pub size: usize,
    /// Versions skipped on wake because they did not verify.
    pub skipped_corrupt: Vec<i64>,
}

/// Stores a checkpoint. `declared` is the client's SHA-256 (header
/// `x-checksum-sha256`): when given and different from the bytes received,
/// the upload was torn or corrupted on the way and nothing is stored. A
/// new agent is refused (RESOURCE_EXHAUSTED) when the workspace has
/// checkpoints of `config.max_agents_per_workspace` agents already.
pub async fn sleep(
    store: &Store,
    config: &CheckpointsConfig,
    workspace: &str,
    agent: &str,
    data: &[u8],
    declared: Option<&str>,
) -> Result<Checkpoint> {
    crate::validate::id("agent", agent).map_err(Error::InvalidArgument)?;
    if data.len() > MAX_BYTES {
        return Err(Error::invalid(format!(
            "checkpoint of {} bytes is over the {} MiB limit",
            data.len(),
            MAX_BYTES >> 20
        )));
    }
    let sha = hex::encode(Sha256::digest(data));
    if let Some(d) = declared
        && !d.trim().eq_ignore_ascii_case(&sha)
    {
        return Err(Error::invalid(format!(
            "checksum mismatch: the body hashes to {sha}, the x-checksum-sha256 header says {}; the upload was torn or corrupted, nothing was stored",
            crate::validate::truncate(d, 80)
        )));
    }
    let max = i64::from(config.max_agents_per_workspace);
    let version = match store
        .put_checkpoint(workspace, agent, &sha, data, warden_store::now_ms(), max)
        .await?
    {
        PutCheckpoint::Stored(version) => version,
        PutCheckpoint::TooManyAgents(n) => {
            return Err(Error::ResourceExhausted(format!(
                "workspace \"{workspace}\" has checkpoints of {n} agents, the limit ([checkpoints] max_agents_per_workspace); agent \"{agent}\" cannot add one (delete an agent's checkpoints with DELETE /v1/workspaces/{workspace}/agents/<id>/checkpoints)"
            )));
        }
    };
    if let Err(e) = store.prune_checkpoints(workspace, agent, KEEP).await {
        tracing::warn!(agent, error = %e, "cannot prune old checkpoints");
    }
    Ok(Checkpoint {
        version,
        sha256: sha,
        size: data.len(),
        skipped_corrupt: Vec::new(),
    })
}

/// Deletes every checkpoint of an agent; returns how many versions there
/// were (NOT_FOUND when none).
pub async fn forget(store: &Store, workspace: &str, agent: &str) -> Result<i64> {
    crate::validate::id("agent", agent).map_err(Error::InvalidArgument)?;
    match store.delete_checkpoints(workspace, agent).await? {
        0 => Err(Error::NotFound(format!(
            "agent \"{agent}\" has no checkpoint in workspace \"{workspace}\""
        ))),
        n => Ok(n),
    }
}

/// The newest checkpoint whose bytes match its recorded SHA-256.
pub async fn wake(store: &Store, workspace: &str, agent: &str) -> Result<(Checkpoint, Vec<u8>)> {
    crate::validate::id("agent", agent).map_err(Error::InvalidArgument)?;
    let mut skipped = Vec::new();
    for row in store.list_checkpoints(workspace, agent, KEEP).await? {
        let actual = hex::encode(Sha256::digest(&row.data));
        if actual == row.sha256 {
            if !skipped.is_empty() {
                tracing::warn!(agent, versions = ?skipped, "skipped checkpoints that do not verify");
            }
            let meta = Checkpoint {
                version: row.version,
                sha256: actual,
                size: row.data.len(),
                skipped_corrupt: skipped,
            };
            return Ok((meta, row.data));
        }
        skipped.push(row.version);
    }
    Err(Error::NotFound(if skipped.is_empty() {
        format!("agent \"{agent}\" has no checkpoint in workspace \"{workspace}\"")
    } else {
        format!("agent \"{agent}\" has no checkpoint that verifies (corrupt versions: {skipped:?})")
    }))
}
