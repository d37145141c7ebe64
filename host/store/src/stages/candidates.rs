//! The tasks a claim may take, as the common table expressions every claim
//! starts from.

use super::ClaimRequest;
use crate::Dialect;
use crate::util::Sql;

/// A task's dependencies are all done (for `FROM tasks t`). A dependency
/// that does not exist (it never does: creation checks) would not block.
pub(super) const DEPS_DONE: &str = " AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks dt ON dt.id = d.depends_on \
     WHERE d.task_id = t.id AND dt.state <> 'done')";

/// The candidate part of a claim: `WITH q AS (...), e AS (...)`, up to
/// `need` queued tasks (`q`) and up to `need` tasks with an expired lease
/// (`e`, whose `took_over` is that lease's token), each in claim order and
/// locked with SKIP LOCKED on PostgreSQL. Two selects rather than one with
/// an OR, so that each reads an index in order instead of sorting every
/// queued task. Columns: id, workspace, stage, attempts, priority_rank,
/// created_at, took_over; on PostgreSQL they are the locked (newest)
/// versions of the rows.
pub(super) fn candidates_cte(
    sql: &mut Sql,
    dialect: Dialect,
    req: &ClaimRequest,
    full: &[String],
    need: i64,
) -> CandidatesCte {
    let workspace = sql.arg(req.workspace.as_str());
    let now = sql.arg(req.now);
    let limit = sql.arg(need);
    let mut filters = String::new();
    if !req.stages.is_empty() {
        let list = sql.args(req.stages.iter().map(String::as_str));
        filters.push_str(&format!(" AND t.stage IN ({list})"));
    }
    if !full.is_empty() {
        let list = sql.args(full.iter().map(String::as_str));
        filters.push_str(&format!(" AND t.stage NOT IN ({list})"));
    }
    filters.push_str(DEPS_DONE);
    if !req.open_breakers.is_empty() {
        let list = sql.args(req.open_breakers.iter().map(String::as_str));
        let elements = match dialect {
            Dialect::Sqlite => "json_each(t.requires) r",
            Dialect::Postgres => "json_array_elements_text(t.requires::json) r(value)",
        };
        filters.push_str(&format!(
            " AND (t.requires = '[]' OR NOT EXISTS (SELECT 1 FROM {elements} WHERE r.value IN ({list})))"
        ));
    }
    let lock = match dialect {
        Dialect::Sqlite => "",
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
    };
    let columns = "t.id, t.workspace, t.stage, t.attempts, t.priority_rank, t.created_at";
    let order = "ORDER BY t.priority_rank, t.created_at, t.id";
    let text = format!(
        "WITH q AS (SELECT {columns}, CAST(NULL AS BIGINT) AS took_over FROM tasks t \
         WHERE t.workspace = {workspace} AND t.state = 'queued' AND t.next_attempt_at <= {now}{filters} \
         {order} LIMIT {limit}{lock}), \
         e AS (SELECT {columns}, t.lease_token AS took_over FROM tasks t \
         WHERE t.workspace = {workspace} AND t.state = 'running' AND t.lease_expires_at < {now}{filters} \
         {order} LIMIT {limit}{lock})"
    );
    CandidatesCte {
        text,
        workspace,
        now,
        limit,
    }
}

/// [`candidates_cte`]'s text and the placeholders it bound.
pub(super) struct CandidatesCte {
    pub(super) text: String,
    pub(super) workspace: String,
    pub(super) now: String,
    pub(super) limit: String,
}
