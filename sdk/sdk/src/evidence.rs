//! Evidence files of the run's workspace: the JSON copies of run reports
//! the host keeps under its evidence directory (SPEC RL-3).
//!
//! [`usage`] and [`list_old`] need `artifacts:read`. [`compress`] needs
//! `artifacts:compact`: it is an audited action that spends one step of the
//! run's budget, is denied in `diagnose` mode and only recorded (not
//! applied) in `plan` mode. Paths are relative to the workspace's evidence
//! directory; the host refuses `..`, absolute paths and symbolic links.

use crate::HostError;
use crate::wit::playbook::warden::plugin::evidence as wit;

pub use wit::{Compressed, EvidenceFile as File, EvidenceUsage as Usage};

/// The file system holding the evidence directory, and whether the disk
/// guard pauses recording.
pub fn usage() -> Result<Usage, HostError> {
    wit::usage().map_err(Into::into)
}

/// Uncompressed evidence files at least `older_than_secs` old, oldest
/// first (at most 1000).
pub fn list_old(older_than_secs: u64) -> Result<Vec<File>, HostError> {
    wit::list_old(older_than_secs).map_err(Into::into)
}

/// Compresses one file to `<path>.zst` with zstd and removes the original.
/// `None` in `plan` mode, where nothing is compressed.
pub fn compress(path: &str) -> Result<Option<Compressed>, HostError> {
    wit::compress(path).map_err(Into::into)
}
