//! `actions`: every mutating host call of every run, audited with actor,
//! digest and before/after (SPEC PB-4). Applied task actions are written by
//! [`Store::apply_task_change`] in the same transaction as the change.

use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::util::{
    clamp_limit, is_unique_violation, json_text, json_text_opt, parse_json, parse_json_opt,
};
use crate::{Error, Result, Store};

/// One audited action.
#[derive(Clone, Debug, PartialEq)]
pub struct ActionRow {
    /// The run.
    pub run_id: String,
    /// Order within the run, from 1; unique per run.
    pub seq: i64,
    /// Workspace.
    pub workspace: String,
    /// Plugin name.
    pub plugin: String,
    /// Digest of the plugin that acted.
    pub digest: String,
    /// Who triggered the run.
    pub actor: String,
    /// The host call, e.g. `tasks.requeue`.
    pub call: String,
    /// The object acted on.
    pub target: Option<String>,
    /// The call's arguments.
    pub args: Value,
    /// `applied`, `planned`, `denied`, `over_budget` or `failed`.
    pub status: String,
    /// Object state before (applied actions).
    pub before: Option<Value>,
    /// Object state after.
    pub after: Option<Value>,
    /// Created id, or the error of a failed call.
    pub detail: Option<String>,
    /// When.
    pub at: i64,
}

impl Store {
    /// Records an action that changed nothing (planned, denied, over budget,
    /// failed). A duplicate (run, seq) is an `Error::AlreadyExists`.
    pub async fn insert_action(&self, action: &ActionRow) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        insert_action_in(&mut conn, action).await
    }

    /// Actions of a run with `seq > after`, in order, at most `limit`.
    ///
    /// A `limit` of 0 or less means 100; at most 1000 are returned.
    pub async fn list_actions_after(
        &self,
        run_id: &str,
        after: i64,
        limit: i64,
    ) -> Result<Vec<ActionRow>> {
        sqlx::query(
            "SELECT run_id, seq, workspace, plugin, digest, actor, call, target, args, status, before, after, \
             detail, at FROM actions WHERE run_id = $1 AND seq > $2 ORDER BY seq LIMIT $3",
        )
        .bind(run_id)
        .bind(after)
        .bind(clamp_limit(limit, 100, 1000))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(action_from_row)
        .collect()
    }

    /// How many actions a run has.
    pub async fn count_actions(&self, run_id: &str) -> Result<i64> {
        let n: i64 =
            sqlx::query_scalar("SELECT CAST(COUNT(*) AS BIGINT) FROM actions WHERE run_id = $1")
                .bind(run_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(n)
    }

    /// Every action of a run, in order.
    pub async fn list_actions(&self, run_id: &str) -> Result<Vec<ActionRow>> {
        sqlx::query(
            "SELECT run_id, seq, workspace, plugin, digest, actor, call, target, args, status, before, after, \
             detail, at FROM actions WHERE run_id = $1 ORDER BY seq",
        )
        .bind(run_id)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(action_from_row)
        .collect()
    }
}

/// Inserts `action` on `conn` (a pooled connection or an open
/// transaction), so that task changes can record theirs atomically.
pub(crate) async fn insert_action_in(conn: &mut AnyConnection, action: &ActionRow) -> Result<()> {
    let inserted = sqlx::query(
        "INSERT INTO actions (run_id, seq, workspace, plugin, digest, actor, call, target, args, status, \
         before, after, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(&action.run_id)
    .bind(action.seq)
    .bind(&action.workspace)
    .bind(&action.plugin)
    .bind(&action.digest)
    .bind(&action.actor)
    .bind(&action.call)
    .bind(action.target.as_deref())
    .bind(json_text(&action.args))
    .bind(&action.status)
    .bind(json_text_opt(action.before.as_ref()))
    .bind(json_text_opt(action.after.as_ref()))
    .bind(action.detail.as_deref())
    .bind(action.at)
    .execute(conn)
    .await;
    match inserted {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(Error::AlreadyExists(format!(
            "action {} of run \"{}\"",
            action.seq, action.run_id
        ))),
        Err(e) => Err(e.into()),
    }
}

fn action_from_row(row: &AnyRow) -> Result<ActionRow> {
    Ok(ActionRow {
        run_id: row.try_get("run_id")?,
        seq: row.try_get("seq")?,
        workspace: row.try_get("workspace")?,
        plugin: row.try_get("plugin")?,
        digest: row.try_get("digest")?,
        actor: row.try_get("actor")?,
        call: row.try_get("call")?,
        target: row.try_get("target")?,
        args: parse_json("actions.args", &row.try_get::<String, _>("args")?)?,
        status: row.try_get("status")?,
        before: parse_json_opt("actions.before", row.try_get("before")?)?,
        after: parse_json_opt("actions.after", row.try_get("after")?)?,
        detail: row.try_get("detail")?,
        at: row.try_get("at")?,
    })
}
