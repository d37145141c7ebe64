//! The minimal task API of the foundation: create, list, get. The
//! scheduler issue adds claims, leases, stages and the rest.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_store::tasks::{NewTask, PRIORITIES, STATES, TaskQuery, TaskRow};

use crate::api::{AppState, Json, Path, Query, check_ws, opt_time, time};
use crate::auth::{Principal, Role};
use crate::error::{Error, Result};

fn task_view(t: &TaskRow) -> Value {
    json!({
        "id": t.id,
        "workspace": t.workspace,
        "title": t.title,
        "body": t.body,
        "stage": t.stage,
        "state": t.state,
        "priority": t.priority,
        "attempts": t.attempts,
        "last_error": t.last_error,
        "dedup_key": t.dedup_key,
        "lease_owner": t.lease_owner,
        "lease_expires_at": opt_time(t.lease_expires_at),
        "created_at": time(t.created_at),
        "updated_at": time(t.updated_at),
        "last_event_at": time(t.last_event_at),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    title: String,
    #[serde(default)]
    body: String,
    priority: Option<String>,
    stage: Option<String>,
    dedup_key: Option<String>,
}

/// `POST /v1/workspaces/{ws}/tasks`
pub async fn create(
    State(state): State<AppState>,
    principal: Principal,
    Path(ws): Path<String>,
    Json(b): Json<CreateBody>,
) -> Result<Response> {
    check_ws(&ws)?;
    principal.require(&ws, Role::Agent)?;
    if b.title.trim().is_empty() {
        return Err(Error::invalid("title must not be empty"));
    }
    crate::validate::text("title", &b.title, 500).map_err(Error::InvalidArgument)?;
    crate::validate::text("body", &b.body, 64 * 1024).map_err(Error::InvalidArgument)?;
    let priority = b.priority.unwrap_or_else(|| "normal".to_string());
    if !PRIORITIES.contains(&priority.as_str()) {
        return Err(Error::invalid(format!(
            "invalid priority \"{}\": expected urgent, normal or low",
            crate::validate::truncate(&priority, 40)
        )));
    }
    let stage = b.stage.unwrap_or_else(|| "spec".to_string());
    crate::validate::id("stage", &stage).map_err(Error::InvalidArgument)?;
    if let Some(k) = &b.dedup_key {
        crate::validate::text("dedup_key", k, 200).map_err(Error::InvalidArgument)?;
    }
    let new = NewTask {
        id: warden_store::new_id(),
        workspace: ws.clone(),
        title: b.title,
        body: b.body,
        stage,
        priority,
        dedup_key: b.dedup_key,
    };
    let (task, created) = state.app.store.create_task(&new).await?;
    if created {
        state
            .app
            .audit(
                &principal,
                Some(&ws),
                "task.create",
                &task.id,
                json!({ "title": task.title }),
            )
            .await;
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(task_view(&task))).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    state: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/workspaces/{ws}/tasks[?state=&limit=]`
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Path(ws): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    check_ws(&ws)?;
    principal.require(&ws, Role::Viewer)?;
    let states: Vec<String> = match &q.state {
        Some(s) => s.split(',').map(str::to_string).collect(),
        None => Vec::new(),
    };
    for s in &states {
        if !STATES.contains(&s.as_str()) {
            return Err(Error::invalid(format!(
                "invalid state \"{}\": expected one of {}",
                crate::validate::truncate(s, 40),
                STATES.join(", ")
            )));
        }
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Error::invalid("limit must be between 1 and 500"));
    }
    let query = TaskQuery {
        states,
        stuck_for_ms: None,
        lease_expired: false,
        limit,
        now: warden_store::now_ms(),
    };
    let tasks = state.app.store.list_tasks(&ws, &query).await?;
    Ok(
        axum::Json(json!({ "tasks": tasks.iter().map(task_view).collect::<Vec<_>>() }))
            .into_response(),
    )
}

/// `GET /v1/workspaces/{ws}/tasks/{id}`
pub async fn get(
    State(state): State<AppState>,
    principal: Principal,
    Path((ws, id)): Path<(String, String)>,
) -> Result<Response> {
    check_ws(&ws)?;
    crate::validate::id("task", &id).map_err(Error::InvalidArgument)?;
    principal.require(&ws, Role::Viewer)?;
    let task = state
        .app
        .store
        .get_task(&ws, &id)
        .await?
        .ok_or_else(|| Error::NotFound(format!("task {id} not found in workspace \"{ws}\"")))?;
    Ok(axum::Json(task_view(&task)).into_response())
}
