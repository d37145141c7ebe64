//! Wake-ups for long-polling claims: a `Notify` per workspace on this host,
//! and the notification channel that carries them across hosts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::sync::Unpoisoned as _;
use tokio::sync::Notify;

/// The notification channel tasks becoming claimable are announced on.
pub const WAKE_CHANNEL: &str = "warden_tasks";

/// Wake-ups for long-polling claims: local, and across hosts through the
/// store's notifications (PostgreSQL `LISTEN/NOTIFY`).
#[derive(Default)]
pub struct Wake {
    workspaces: Mutex<HashMap<String, Arc<Notify>>>,
}

impl Wake {
    /// The notifier of a workspace.
    pub fn of(&self, workspace: &str) -> Arc<Notify> {
        self.workspaces
            .locked()
            .entry(workspace.to_string())
            .or_default()
            .clone()
    }

    /// Wakes the workspace's waiting claims on this host.
    pub fn local(&self, workspace: &str) {
        let n = self.workspaces.locked().get(workspace).cloned();
        if let Some(n) = n {
            n.notify_waiters();
        }
    }

    /// Wakes every waiting claim on this host.
    pub fn all(&self) {
        let all: Vec<_> = self.workspaces.locked().values().cloned().collect();
        for n in all {
            n.notify_waiters();
        }
    }
}
