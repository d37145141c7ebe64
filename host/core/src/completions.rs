//! Completions without gates on PostgreSQL, written together: each waits
//! in a queue, and a writer takes everything queued at once and completes
//! it with [`Store::complete_stages`] (two statements and one commit for
//! the lot). Alone, a completion is written at once; under load, the
//! completions that arrive while a batch is being written go together in
//! the next one. Round trips and commits are what a stage costs under load
//! (docs/architecture.md), so this is what lets one host complete
//! thousands of stages a second.
//!
//! A completion's outcome is its own: a refused token or a missing task
//! fails only that one. Once queued, a completion is written even if its
//! request goes away; completing is idempotent per token, so the worker's
//! retry is answered `completed: false`.

use std::sync::Arc;

use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};
use warden_store::Store;
use warden_store::settings::SettingsRow;
use warden_store::stages::{AfterComplete, Also, Completing, Completion, Written};
use warden_store::tasks::TaskRow;

use crate::error::{Error, Result};

/// At most this many completions in one batch.
const MAX_BATCH: usize = 128;

/// Batches being written at once. While they are, the next completions
/// queue up and go together.
const BATCHES_IN_FLIGHT: usize = 1;

/// Completions waiting for a writer; a full queue makes callers wait.
const QUEUE: usize = 4096;

/// What follows a completed stage, from the task and its workspace's
/// settings (the scheduler's rules).
pub type Decide = fn(&TaskRow, Option<&SettingsRow>) -> AfterComplete;

/// What a completion writes with it, from the task as it ends up and the
/// lease's token.
pub type AlsoWrite = fn(&TaskRow, i64) -> Also;

/// One completion to write.
pub struct Job {
    pub workspace: String,
    pub task_id: String,
    pub token: i64,
    pub output: Value,
    pub now: i64,
}

struct Queued {
    job: Job,
    reply: oneshot::Sender<Result<(Completion, Written)>>,
}

/// The queue and its writer.
pub struct Completions {
    queue: mpsc::Sender<Queued>,
}

impl Completions {
    /// Starts the writer (on the current Tokio runtime).
    pub fn start(store: Store, decide: Decide, also: AlsoWrite) -> Completions {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, rx, decide, also));
        Completions { queue }
    }

    /// Completes `job`, together with whatever else is queued.
    pub async fn complete(&self, job: Job) -> Result<(Completion, Written)> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Queued { job, reply })
            .await
            .map_err(|_| Error::Unavailable("the completion writer has stopped".into()))?;
        answer.await.map_err(|_| {
            Error::Unavailable("the completion writer stopped before answering".into())
        })?
    }
}

async fn write_batches(
    store: Store,
    mut rx: mpsc::Receiver<Queued>,
    decide: Decide,
    also: AlsoWrite,
) {
    let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        // A free slot first, then everything queued by then.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = rx.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(q) => batch.push(q),
                Err(_) => break,
            }
        }
        let store = store.clone();
        tokio::spawn(async move {
            write(&store, batch, decide, also).await;
            drop(slot);
        });
    }
}

async fn write(store: &Store, batch: Vec<Queued>, decide: Decide, also: AlsoWrite) {
    let items: Vec<Completing<'_>> = batch
        .iter()
        .map(|q| Completing {
            workspace: &q.job.workspace,
            task_id: &q.job.task_id,
            token: q.job.token,
            output: &q.job.output,
            now: q.job.now,
            decision: None,
        })
        .collect();
    let decide_one = |_: usize, t: &TaskRow, s: Option<&SettingsRow>| decide(t, s);
    let also_one = |i: usize, t: &TaskRow| also(t, items.get(i).map_or(0, |c| c.token));
    let outcomes = match store.complete_stages(&items, &decide_one, &also_one).await {
        Ok(outcomes) => outcomes,
        Err(e) => {
            // The batch as a whole failed (the database went away, say):
            // each completion on its own, so each gets its own answer.
            tracing::warn!(error = %e, completions = items.len(), "a batch of completions failed; completing them one by one");
            let mut outcomes = Vec::with_capacity(items.len());
            for c in &items {
                outcomes.push(
                    store
                        .complete_stage_with(c, &decide, &|t| also(t, c.token))
                        .await,
                );
            }
            outcomes
        }
    };
    drop(items);
    for (q, outcome) in batch.into_iter().zip(outcomes) {
        // A caller that went away does not need its answer.
        let _ = q.reply.send(outcome.map_err(Error::from));
    }
}
