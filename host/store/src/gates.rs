//! Quality gates (SPEC QG-1..QG-4): bindings set over the API, and every
//! gated transition with its verdicts and their categorized reasons, kept
//! for queries per task, per gate and per workspace (approval rates, top
//! rejection reasons).

use serde_json::Value;

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::util::{Sql, clamp_limit, json_text, parse_json};
use crate::{Dialect, Result, Store};

macro_rules! decision_columns {
    () => {
        "id, workspace, task_id, stage, token, quorum, outcome, approvals, rejections, escalations, \
         summary, created_at"
    };
}

macro_rules! verdict_columns {
    () => {
        "id, decision_id, workspace, task_id, stage, gate, version, digest, decision, score, error, \
         relaxed, wall_ms, created_at"
    };
}

/// A binding set over the API for one stage of a workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingRow {
    /// Workspace.
    pub workspace: String,
    /// The stage whose completion the gates judge.
    pub stage: String,
    /// The binding (gates, quorum, reject_to, on_error, relax), as JSON.
    pub binding: Value,
    /// Who set it.
    pub actor: String,
    /// When.
    pub updated_at: i64,
}

/// One gated transition: the quorum's outcome.
#[derive(Clone, Debug, PartialEq)]
pub struct DecisionRow {
    /// Id (UUID v7).
    pub id: String,
    /// Workspace.
    pub workspace: String,
    /// Task.
    pub task_id: String,
    /// The stage completed.
    pub stage: String,
    /// The completing lease's fencing token.
    pub token: i64,
    /// `all`, `majority` or `k-of-n`.
    pub quorum: String,
    /// `approve`, `reject` or `waiting`.
    pub outcome: String,
    /// Verdicts that approved.
    pub approvals: i64,
    /// Verdicts that rejected.
    pub rejections: i64,
    /// Verdicts that escalated (a failed gate's stand-in included).
    pub escalations: i64,
    /// One line.
    pub summary: String,
    /// When.
    pub created_at: i64,
}

/// One gate's verdict on one transition.
#[derive(Clone, Debug, PartialEq)]
pub struct VerdictRow {
    /// Id (UUID v7).
    pub id: String,
    /// Its transition.
    pub decision_id: String,
    /// Workspace.
    pub workspace: String,
    /// Task.
    pub task_id: String,
    /// The stage completed.
    pub stage: String,
    /// Gate (plugin name).
    pub gate: String,
    /// Plugin version.
    pub version: String,
    /// `sha256:<hex>` of the gate's `.wasm`.
    pub digest: String,
    /// `approve`, `reject` or `escalate`.
    pub decision: String,
    /// 0 to 100.
    pub score: i64,
    /// Why the gate gave no verdict of its own (trap, timeout, limit).
    pub error: Option<String>,
    /// True when its breaker's relaxed config applied.
    pub relaxed: bool,
    /// Time the gate took.
    pub wall_ms: i64,
    /// When.
    pub created_at: i64,
    /// Its reasons, in order.
    pub reasons: Vec<ReasonRow>,
}

/// A categorized reason of a verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonRow {
    /// e.g. `size`, `secret`, `tests`, `quality`.
    pub category: String,
    /// What the gate said.
    pub message: String,
}

/// Verdict counts of one gate in a workspace.
#[derive(Clone, Debug, PartialEq)]
pub struct GateStats {
    /// Gate (plugin name).
    pub gate: String,
    /// Verdicts.
    pub total: i64,
    /// Approvals.
    pub approvals: i64,
    /// Rejections.
    pub rejections: i64,
    /// Escalations.
    pub escalations: i64,
    /// Verdicts that stood in for a failed gate.
    pub errors: i64,
    /// Mean score.
    pub mean_score: f64,
}

/// Quorum outcomes of the gated transitions out of one stage.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageGateStats {
    /// The stage completed.
    pub stage: String,
    /// Gated transitions.
    pub decisions: i64,
    /// Passed (`approve`).
    pub approved: i64,
    /// Sent back (`reject`).
    pub rejected: i64,
    /// Left for a human (`waiting`).
    pub waiting: i64,
}

/// A rejection reason and how often it was given.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReasonCount {
    /// Gate.
    pub gate: String,
    /// Category.
    pub category: String,
    /// Message.
    pub message: String,
    /// Times given.
    pub count: i64,
}

impl Store {
    /// Bindings set over the API for a workspace, by stage.
    pub async fn list_gate_bindings(&self, workspace: &str) -> Result<Vec<BindingRow>> {
        let rows = sqlx::query(
            "SELECT workspace, stage, binding, actor, updated_at FROM gate_bindings \
             WHERE workspace = $1 ORDER BY stage",
        )
        .bind(workspace)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(binding_from_row).collect()
    }

    /// The binding set over the API for one stage.
    pub async fn get_gate_binding(
        &self,
        workspace: &str,
        stage: &str,
    ) -> Result<Option<BindingRow>> {
        sqlx::query(
            "SELECT workspace, stage, binding, actor, updated_at FROM gate_bindings \
             WHERE workspace = $1 AND stage = $2",
        )
        .bind(workspace)
        .bind(stage)
        .fetch_optional(&self.pool)
        .await?
        .as_ref()
        .map(binding_from_row)
        .transpose()
    }

    /// Creates or replaces a binding.
    pub async fn put_gate_binding(&self, row: &BindingRow) -> Result<()> {
        sqlx::query(
            "INSERT INTO gate_bindings (workspace, stage, binding, actor, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (workspace, stage) DO UPDATE SET \
             binding = excluded.binding, actor = excluded.actor, updated_at = excluded.updated_at",
        )
        .bind(&row.workspace)
        .bind(&row.stage)
        .bind(json_text(&row.binding))
        .bind(&row.actor)
        .bind(row.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Deletes a binding; true when there was one.
    pub async fn delete_gate_binding(&self, workspace: &str, stage: &str) -> Result<bool> {
        let done = sqlx::query("DELETE FROM gate_bindings WHERE workspace = $1 AND stage = $2")
            .bind(workspace)
            .bind(stage)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a gated transition and its verdicts (with their reasons) in
    /// one transaction (a completion stores its gates' decision in its own,
    /// [`crate::stages::Completing::decision`]). The verdicts'
    /// `decision_id` is set to the decision's id.
    pub async fn record_gate_decision(
        &self,
        decision: &DecisionRow,
        verdicts: &[VerdictRow],
    ) -> Result<()> {
        let mut tx = self.begin_write().await?;
        insert_gate_decision(&mut tx, self.dialect, decision, verdicts, 0).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The gated transitions of a task, oldest first.
    pub async fn list_gate_decisions(
        &self,
        workspace: &str,
        task_id: &str,
    ) -> Result<Vec<DecisionRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            decision_columns!(),
            " FROM gate_decisions WHERE workspace = $1 AND task_id = $2 ORDER BY created_at, id"
        ))
        .bind(workspace)
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decision_from_row).collect()
    }

    /// The verdicts of a task, oldest first, with their reasons.
    pub async fn list_task_verdicts(
        &self,
        workspace: &str,
        task_id: &str,
    ) -> Result<Vec<VerdictRow>> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            verdict_columns!(),
            " FROM gate_verdicts WHERE workspace = $1 AND task_id = $2 ORDER BY created_at, id"
        ))
        .bind(workspace)
        .bind(task_id)
        .fetch_all(&self.pool)
        .await?;
        self.with_reasons(rows.iter().map(verdict_from_row).collect::<Result<_>>()?)
            .await
    }

    /// The newest verdicts of a workspace, newest first, optionally of one
    /// gate; `limit` as for tasks (0 or less: 100, at most 500).
    pub async fn list_gate_verdicts(
        &self,
        workspace: &str,
        gate: Option<&str>,
        limit: i64,
    ) -> Result<Vec<VerdictRow>> {
        let mut sql = Sql::new(concat!(
            "SELECT ",
            verdict_columns!(),
            " FROM gate_verdicts WHERE workspace = "
        ));
        let ws = sql.arg(workspace.to_string());
        sql.push(&ws);
        if let Some(g) = gate {
            let g = sql.arg(g.to_string());
            sql.push(&format!(" AND gate = {g}"));
        }
        let limit = sql.arg(clamp_limit(limit, 100, 500));
        sql.push(&format!(" ORDER BY created_at DESC, id DESC LIMIT {limit}"));
        let rows = sql.build()?.fetch_all(&self.pool).await?;
        self.with_reasons(rows.iter().map(verdict_from_row).collect::<Result<_>>()?)
            .await
    }

    /// The decisions (`approve`, `reject`, `escalate`) of a gate's newest
    /// `n` verdicts in a workspace, newest first: what its breaker looks at.
    pub async fn recent_gate_decisions(
        &self,
        workspace: &str,
        gate: &str,
        n: i64,
    ) -> Result<Vec<String>> {
        let rows = sqlx::query(
            "SELECT decision FROM gate_verdicts WHERE workspace = $1 AND gate = $2 \
             ORDER BY created_at DESC, id DESC LIMIT $3",
        )
        .bind(workspace)
        .bind(gate)
        .bind(n)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("decision")?))
            .collect()
    }

    /// Verdict counts per gate of a workspace since `since` (ms).
    pub async fn gate_stats(&self, workspace: &str, since: i64) -> Result<Vec<GateStats>> {
        let rows = sqlx::query(
            "SELECT gate, CAST(COUNT(*) AS BIGINT) AS total, \
             CAST(SUM(CASE WHEN decision = 'approve' THEN 1 ELSE 0 END) AS BIGINT) AS approvals, \
             CAST(SUM(CASE WHEN decision = 'reject' THEN 1 ELSE 0 END) AS BIGINT) AS rejections, \
             CAST(SUM(CASE WHEN decision = 'escalate' THEN 1 ELSE 0 END) AS BIGINT) AS escalations, \
             CAST(SUM(CASE WHEN error IS NULL THEN 0 ELSE 1 END) AS BIGINT) AS errors, \
             CAST(SUM(score) AS BIGINT) AS score_sum \
             FROM gate_verdicts WHERE workspace = $1 AND created_at >= $2 GROUP BY gate ORDER BY gate",
        )
        .bind(workspace)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let total: i64 = r.try_get("total")?;
                let score_sum: i64 = r.try_get("score_sum")?;
                Ok(GateStats {
                    gate: r.try_get("gate")?,
                    total,
                    approvals: r.try_get("approvals")?,
                    rejections: r.try_get("rejections")?,
                    escalations: r.try_get("escalations")?,
                    errors: r.try_get("errors")?,
                    mean_score: if total > 0 {
                        score_sum as f64 / total as f64
                    } else {
                        0.0
                    },
                })
            })
            .collect()
    }

    /// Quorum outcomes per stage of a workspace's gated transitions since
    /// `since` (ms), by stage name.
    pub async fn gate_stats_by_stage(
        &self,
        workspace: &str,
        since: i64,
    ) -> Result<Vec<StageGateStats>> {
        let rows = sqlx::query(
            "SELECT stage, CAST(COUNT(*) AS BIGINT) AS decisions, \
             CAST(SUM(CASE WHEN outcome = 'approve' THEN 1 ELSE 0 END) AS BIGINT) AS approved, \
             CAST(SUM(CASE WHEN outcome = 'reject' THEN 1 ELSE 0 END) AS BIGINT) AS rejected, \
             CAST(SUM(CASE WHEN outcome = 'waiting' THEN 1 ELSE 0 END) AS BIGINT) AS waiting \
             FROM gate_decisions WHERE workspace = $1 AND created_at >= $2 GROUP BY stage ORDER BY stage",
        )
        .bind(workspace)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(StageGateStats {
                    stage: r.try_get("stage")?,
                    decisions: r.try_get("decisions")?,
                    approved: r.try_get("approved")?,
                    rejected: r.try_get("rejected")?,
                    waiting: r.try_get("waiting")?,
                })
            })
            .collect()
    }

    /// The most frequent reasons of rejections in a workspace since `since`
    /// (ms), optionally of one gate, most frequent first.
    pub async fn top_rejection_reasons(
        &self,
        workspace: &str,
        gate: Option<&str>,
        since: i64,
        limit: i64,
    ) -> Result<Vec<ReasonCount>> {
        let mut sql = Sql::new(
            "SELECT gate, category, message, CAST(COUNT(*) AS BIGINT) AS n FROM gate_reasons WHERE decision = 'reject' \
             AND workspace = ",
        );
        let ws = sql.arg(workspace.to_string());
        let since = sql.arg(since);
        sql.push(&format!("{ws} AND created_at >= {since}"));
        if let Some(g) = gate {
            let g = sql.arg(g.to_string());
            sql.push(&format!(" AND gate = {g}"));
        }
        let limit = sql.arg(clamp_limit(limit, 100, 500));
        sql.push(&format!(
            " GROUP BY gate, category, message ORDER BY n DESC, gate, category, message LIMIT {limit}"
        ));
        let rows = sql.build()?.fetch_all(&self.pool).await?;
        rows.iter()
            .map(|r| {
                Ok(ReasonCount {
                    gate: r.try_get("gate")?,
                    category: r.try_get("category")?,
                    message: r.try_get("message")?,
                    count: r.try_get("n")?,
                })
            })
            .collect()
    }

    /// Fills in the reasons of `verdicts`.
    async fn with_reasons(&self, mut verdicts: Vec<VerdictRow>) -> Result<Vec<VerdictRow>> {
        for chunk in verdicts.chunks_mut(200) {
            let mut sql = Sql::new(
                "SELECT verdict_id, seq, category, message FROM gate_reasons WHERE verdict_id IN (",
            );
            let ids = sql.args(chunk.iter().map(|v| v.id.clone()));
            sql.push(&format!("{ids}) ORDER BY verdict_id, seq"));
            let rows = sql.build()?.fetch_all(&self.pool).await?;
            for row in &rows {
                let id: String = row.try_get("verdict_id")?;
                if let Some(v) = chunk.iter_mut().find(|v| v.id == id) {
                    v.reasons.push(ReasonRow {
                        category: row.try_get("category")?,
                        message: row.try_get("message")?,
                    });
                }
            }
        }
        Ok(verdicts)
    }
}

fn binding_from_row(row: &AnyRow) -> Result<BindingRow> {
    Ok(BindingRow {
        workspace: row.try_get("workspace")?,
        stage: row.try_get("stage")?,
        binding: parse_json(
            "gate_bindings.binding",
            &row.try_get::<String, _>("binding")?,
        )?,
        actor: row.try_get("actor")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn decision_from_row(row: &AnyRow) -> Result<DecisionRow> {
    Ok(DecisionRow {
        id: row.try_get("id")?,
        workspace: row.try_get("workspace")?,
        task_id: row.try_get("task_id")?,
        stage: row.try_get("stage")?,
        token: row.try_get("token")?,
        quorum: row.try_get("quorum")?,
        outcome: row.try_get("outcome")?,
        approvals: row.try_get("approvals")?,
        rejections: row.try_get("rejections")?,
        escalations: row.try_get("escalations")?,
        summary: row.try_get("summary")?,
        created_at: row.try_get("created_at")?,
    })
}

fn verdict_from_row(row: &AnyRow) -> Result<VerdictRow> {
    Ok(VerdictRow {
        id: row.try_get("id")?,
        decision_id: row.try_get("decision_id")?,
        workspace: row.try_get("workspace")?,
        task_id: row.try_get("task_id")?,
        stage: row.try_get("stage")?,
        gate: row.try_get("gate")?,
        version: row.try_get("version")?,
        digest: row.try_get("digest")?,
        decision: row.try_get("decision")?,
        score: row.try_get("score")?,
        error: row.try_get("error")?,
        relaxed: row.try_get::<i64, _>("relaxed")? != 0,
        wall_ms: row.try_get("wall_ms")?,
        created_at: row.try_get("created_at")?,
        reasons: Vec::new(),
    })
}

/// Inserts a gated transition and its verdicts (with their reasons) inside
/// `conn`'s transaction in one round trip (beyond 500 reasons, one more per
/// 500): on PostgreSQL one statement of data-modifying CTEs; on SQLite the
/// statements in one string, which it runs in turn, each binding its own
/// numbered placeholders.
///
/// With a `window` above 0, the same round trip reads each verdict's
/// gate's newest verdicts from before, and the answer is, per verdict, its
/// gate's `window` newest decisions with the new one first (its breaker's
/// window, SPEC QG-4); otherwise it is empty.
pub(crate) async fn insert_gate_decision(
    conn: &mut AnyConnection,
    dialect: Dialect,
    decision: &DecisionRow,
    verdicts: &[VerdictRow],
    window: i64,
) -> Result<Vec<Vec<String>>> {
    let reasons: Vec<(&VerdictRow, usize, &ReasonRow)> = verdicts
        .iter()
        .flat_map(|v| v.reasons.iter().enumerate().map(move |(k, r)| (v, k, r)))
        .collect();
    // A statement's placeholders are bounded (SQLite: 32766): chunks.
    let mut chunks = reasons.chunks(500);
    let mut sql = Sql::new("");
    let d = decision;
    let values = [
        sql.arg(d.id.as_str()),
        sql.arg(d.workspace.as_str()),
        sql.arg(d.task_id.as_str()),
        sql.arg(d.stage.as_str()),
        sql.arg(d.token),
        sql.arg(d.quorum.as_str()),
        sql.arg(d.outcome.as_str()),
        sql.arg(d.approvals),
        sql.arg(d.rejections),
        sql.arg(d.escalations),
        sql.arg(d.summary.as_str()),
        sql.arg(d.created_at),
    ];
    let mut statements = vec![format!(
        concat!(
            "INSERT INTO gate_decisions (",
            decision_columns!(),
            ") VALUES ({})"
        ),
        values.join(", ")
    )];
    if !verdicts.is_empty() {
        let rows: Vec<String> = verdicts
            .iter()
            .map(|v| {
                let values = [
                    sql.arg(v.id.as_str()),
                    sql.arg(d.id.as_str()),
                    sql.arg(v.workspace.as_str()),
                    sql.arg(v.task_id.as_str()),
                    sql.arg(v.stage.as_str()),
                    sql.arg(v.gate.as_str()),
                    sql.arg(v.version.as_str()),
                    sql.arg(v.digest.as_str()),
                    sql.arg(v.decision.as_str()),
                    sql.arg(v.score),
                    sql.arg(v.error.as_deref()),
                    sql.arg(i64::from(v.relaxed)),
                    sql.arg(v.wall_ms),
                    sql.arg(v.created_at),
                ];
                format!("({})", values.join(", "))
            })
            .collect();
        statements.push(format!(
            concat!(
                "INSERT INTO gate_verdicts (",
                verdict_columns!(),
                ") VALUES {}"
            ),
            rows.join(", ")
        ));
    }
    if let Some(first) = chunks.next() {
        statements.push(reasons_insert(&mut sql, first));
    }
    let gates: Vec<String> = verdicts.iter().map(|v| v.gate.clone()).collect();
    let read = (window > 0 && !gates.is_empty())
        .then(|| windows_select(&mut sql, &d.workspace, &gates, window));
    let text = match (dialect, read) {
        // The query first: it sees the verdicts from before.
        (Dialect::Sqlite, Some(select)) => format!("{select}; {}", statements.join("; ")),
        (Dialect::Sqlite, None) => statements.join("; "),
        // The main statement sees the snapshot from before its CTEs write.
        (Dialect::Postgres, read) => {
            let main = match read {
                Some(select) => select,
                None => statements.pop().unwrap_or_default(),
            };
            let ctes: Vec<String> = statements
                .iter()
                .enumerate()
                .map(|(i, s)| format!("w{i} AS ({s})"))
                .collect();
            if ctes.is_empty() {
                main
            } else {
                format!("WITH {} {main}", ctes.join(", "))
            }
        }
    };
    sql.push(&text);
    let rows = sql.build()?.fetch_all(&mut *conn).await?;
    for chunk in chunks {
        let mut sql = Sql::new("");
        let text = reasons_insert(&mut sql, chunk);
        sql.push(&text);
        sql.build()?.execute(&mut *conn).await?;
    }
    if window <= 0 || gates.is_empty() {
        return Ok(Vec::new());
    }
    let before = windows_from(&rows, &gates)?;
    Ok(verdicts
        .iter()
        .zip(before)
        .map(|(v, mut recent)| {
            recent.insert(0, v.decision.clone());
            recent.truncate(window as usize);
            recent
        })
        .collect())
}

/// The insert of `reasons` (verdict, its index, reason), binding into `sql`.
fn reasons_insert(sql: &mut Sql, reasons: &[(&VerdictRow, usize, &ReasonRow)]) -> String {
    let rows: Vec<String> = reasons
        .iter()
        .map(|(v, k, r)| {
            let values = [
                sql.arg(v.id.as_str()),
                sql.arg(*k as i64),
                sql.arg(v.workspace.as_str()),
                sql.arg(v.gate.as_str()),
                sql.arg(v.decision.as_str()),
                sql.arg(r.category.as_str()),
                sql.arg(r.message.as_str()),
                sql.arg(v.created_at),
            ];
            format!("({})", values.join(", "))
        })
        .collect();
    format!(
        "INSERT INTO gate_reasons (verdict_id, seq, workspace, gate, decision, category, message, \
         created_at) VALUES {}",
        rows.join(", ")
    )
}

/// The query of each gate's newest `n` verdicts in a workspace, binding
/// into `sql`: in index order only (no sort of equal times, so verdicts of
/// the same millisecond come in either order); a LIMIT inside a compound
/// SELECT needs its own subquery.
fn windows_select(sql: &mut Sql, workspace: &str, gates: &[String], n: i64) -> String {
    let (ws, limit) = (sql.arg(workspace), sql.arg(n));
    let parts: Vec<String> = gates
        .iter()
        .map(|g| {
            format!(
                "SELECT * FROM (SELECT gate, decision, created_at FROM gate_verdicts \
                 WHERE workspace = {ws} AND gate = {} ORDER BY created_at DESC LIMIT {limit}) g",
                sql.arg(g.as_str())
            )
        })
        .collect();
    parts.join(" UNION ALL ")
}

/// The rows of [`windows_select`] as each gate's decisions, newest first,
/// per gate in the order of `gates`.
fn windows_from(rows: &[AnyRow], gates: &[String]) -> Result<Vec<Vec<String>>> {
    let mut found: Vec<(String, i64, String)> = rows
        .iter()
        .map(|row| {
            Ok((
                row.try_get("gate")?,
                row.try_get("created_at")?,
                row.try_get("decision")?,
            ))
        })
        .collect::<Result<_>>()?;
    // Newest first (stable: the index order stays for equal times).
    found.sort_by_key(|(_, at, _)| std::cmp::Reverse(*at));
    let mut out = vec![Vec::new(); gates.len()];
    for (gate, _, decision) in found {
        for (i, g) in gates.iter().enumerate() {
            if *g == gate {
                out[i].push(decision.clone());
            }
        }
    }
    Ok(out)
}
