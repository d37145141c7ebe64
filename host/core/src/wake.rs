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

/// Follows the store's notification `channel` (PostgreSQL `LISTEN`) until
/// `shutdown` fires, handing each payload to `notice`. A lost connection
/// calls `lost` (a notification may have been missed, so whoever waits
/// should look again) and reconnects; a failed connect is retried every
/// second. Returns at once on SQLite: one host, where local wake-ups
/// suffice. `what` names the notifications in the log.
pub async fn follow(
    store: &warden_store::Store,
    channel: &str,
    what: &str,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
    mut notice: impl FnMut(String),
    mut lost: impl FnMut(),
) {
    loop {
        let mut listener = match store.listen(channel).await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for {what}; retrying in 1 s");
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    _ = shutdown.changed() => return,
                }
            }
        };
        loop {
            tokio::select! {
                got = listener.recv() => match got {
                    Ok(payload) => notice(payload),
                    Err(e) => {
                        tracing::warn!(error = %e, "the {what} listener lost its connection; reconnecting");
                        lost();
                        break;
                    }
                },
                _ = shutdown.changed() => return,
            }
        }
    }
}
