//! Alerts across workspaces, their notifications, silences and sinks (SPEC
//! AL-2, AL-3). These span workspaces, so they need the bootstrap admin;
//! a workspace's own alerts are also under `/v1/workspaces/{ws}/alerts`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};
use warden_store::notifications::{NotificationFilter, SilenceRow};

use crate::error::{Error, Result};
use crate::views::{self, Answer};
use crate::{AppState, Json, OptionalJson, Path, Query};
use warden_core::auth::Principal;

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AlertsQuery {
    #[param(pattern = "^(open|acknowledged|resolved)$")]
    status: Option<String>,
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    workspace: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/alerts[?status=open&workspace=a&limit=100]`: every workspace's
/// alerts and the host's own (breakers, processes, disk, sinks).
#[utoipa::path(
    get,
    operation_id = "alerting_list",
    path = "/v1/alerts",
    tag = "alerts",
    summary = "every workspace's alerts and the host's (bootstrap admin)",
    params(AlertsQuery),
    responses(
        (status = 200, description = "the alerts", body = crate::views::AlertList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn list(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<AlertsQuery>,
) -> Result<Response> {
    principal.require_root()?;
    crate::workspace::check_alert_status(q.status.as_deref())?;
    if let Some(ws) = &q.workspace {
        crate::check_ws(ws)?;
    }
    let rows = state
        .app
        .store
        .list_alerts(
            q.workspace.as_deref(),
            q.status.as_deref(),
            q.limit.unwrap_or(100).clamp(1, 500),
        )
        .await?;
    let alerts = rows.iter().map(views::Alert::from).collect();
    Ok(Answer(views::AlertList { alerts }).into_response())
}

/// `POST /v1/alerts/{id}/ack`: no repeats of an acknowledged alert; its
/// resolve is still notified.
#[utoipa::path(
    post,
    operation_id = "alerting_ack",
    path = "/v1/alerts/{id}/ack",
    tag = "alerts",
    summary = "acknowledge an alert (bootstrap admin)",
    params(("id" = String, Path, description = "the alert", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    request_body(content = Option<crate::openapi::AnyObject>, description = "ignored; may be empty"),
    responses(
        (status = 200, description = "the alert", body = crate::views::Alert),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Conflict,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn ack(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
    OptionalJson(_b): OptionalJson<Value>,
) -> Result<Response> {
    principal.require_root()?;
    warden_core::validate::id("alert", &id).map_err(Error::InvalidArgument)?;
    let a = state
        .app
        .store
        .ack_alert(None, &id, &principal.name, warden_store::now_ms())
        .await?;
    state
        .app
        .audit(
            &principal,
            a.workspace.as_deref(),
            "alert.ack",
            &id,
            json!({}),
        )
        .await;
    Ok(Answer(views::Alert::from(&a)).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct NotificationsQuery {
    sink: Option<String>,
    #[param(pattern = "^(pending|delivered|failed)$")]
    status: Option<String>,
    #[param(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    alert: Option<String>,
    limit: Option<i64>,
}

/// `GET /v1/notifications[?sink=&status=pending|delivered|failed&alert=<id>]`:
/// the notification history, newest first.
#[utoipa::path(
    get,
    operation_id = "alerting_notifications",
    path = "/v1/notifications",
    tag = "alerts",
    summary = "the notification history, newest first (bootstrap admin)",
    params(NotificationsQuery),
    responses(
        (status = 200, description = "the notifications", body = crate::views::Notifications),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn notifications(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<NotificationsQuery>,
) -> Result<Response> {
    principal.require_root()?;
    if let Some(s) = &q.status
        && !matches!(s.as_str(), "pending" | "delivered" | "failed")
    {
        return Err(Error::invalid("status must be pending, delivered or failed").into());
    }
    if let Some(a) = &q.alert {
        warden_core::validate::id("alert", a).map_err(Error::InvalidArgument)?;
    }
    let rows = state
        .app
        .store
        .list_notifications(&NotificationFilter {
            sink: q.sink,
            status: q.status,
            alert_id: q.alert,
            limit: q.limit.unwrap_or(100),
        })
        .await?;
    let notifications = rows.iter().map(views::Notification::from).collect();
    Ok(Answer(views::Notifications { notifications }).into_response())
}

#[derive(Deserialize, Default, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SilencesQuery {
    /// Expired ones too.
    all: Option<bool>,
}

/// `GET /v1/silences[?all=true]`
#[utoipa::path(
    get,
    operation_id = "alerting_silences",
    path = "/v1/silences",
    tag = "alerts",
    summary = "silences (bootstrap admin)",
    params(SilencesQuery),
    responses(
        (status = 200, description = "the silences", body = crate::views::SilenceList),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn silences(
    State(state): State<AppState>,
    principal: Principal,
    Query(q): Query<SilencesQuery>,
) -> Result<Response> {
    principal.require_root()?;
    let now = warden_store::now_ms();
    let rows = state
        .app
        .store
        .list_silences((!q.all.unwrap_or(false)).then_some(now))
        .await?;
    let silences = rows.iter().map(|s| views::Silence::at(s, now)).collect();
    Ok(Answer(views::SilenceList { silences }).into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SilenceBody {
    #[schema(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    workspace: Option<String>,
    rule: Option<String>,
    #[schema(pattern = "^(critical|warning|info)$")]
    severity: Option<String>,
    dedup_key: Option<String>,
    /// `30m`, `2h`, ...
    duration: String,
    comment: Option<String>,
}

/// `POST /v1/silences`: holds back the notifications of matching alerts
/// for `duration`. At least one matcher is required.
#[utoipa::path(
    post,
    operation_id = "alerting_create_silence",
    path = "/v1/silences",
    tag = "alerts",
    summary = "silence matching alerts for a while (bootstrap admin)",
    request_body = SilenceBody,
    responses(
        (status = 201, description = "the silence", body = crate::views::Silence),
        crate::openapi::BadRequest,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn create_silence(
    State(state): State<AppState>,
    principal: Principal,
    Json(b): Json<SilenceBody>,
) -> Result<Response> {
    principal.require_root()?;
    if b.workspace.is_none() && b.rule.is_none() && b.severity.is_none() && b.dedup_key.is_none() {
        return Err(Error::invalid(
            "a silence needs at least one of workspace, rule, severity or dedup_key (silencing everything is a sink change, not a silence)",
        ).into());
    }
    if let Some(ws) = &b.workspace {
        crate::check_ws(ws)?;
    }
    if let Some(s) = &b.severity
        && !matches!(s.as_str(), "critical" | "warning" | "info")
    {
        return Err(Error::invalid("severity must be critical, warning or info").into());
    }
    for (field, v) in [("rule", &b.rule), ("dedup_key", &b.dedup_key)] {
        if let Some(v) = v {
            warden_core::validate::text(field, v, 200).map_err(Error::InvalidArgument)?;
            if v.is_empty() {
                return Err(Error::invalid(format!("{field} must not be empty")).into());
            }
        }
    }
    let duration = humantime::parse_duration(&b.duration).map_err(|e| {
        Error::invalid(format!(
            "duration \"{}\" is not a duration like 30m or 2h: {e}",
            warden_core::validate::truncate(&b.duration, 40)
        ))
    })?;
    if duration.is_zero() || duration > std::time::Duration::from_secs(90 * 86_400) {
        return Err(Error::invalid("duration must be more than 0 and at most 90 days").into());
    }
    let comment = b.comment.unwrap_or_default();
    warden_core::validate::text("comment", &comment, 1000).map_err(Error::InvalidArgument)?;
    let now = warden_store::now_ms();
    let row = state
        .app
        .store
        .create_silence(&SilenceRow {
            id: String::new(),
            workspace: b.workspace,
            rule: b.rule,
            severity: b.severity,
            dedup_key: b.dedup_key,
            comment,
            created_by: principal.name.clone(),
            created_at: now,
            ends_at: now + duration.as_millis() as i64,
        })
        .await?;
    let view = views::Silence::at(&row, now);
    state
        .app
        .audit(
            &principal,
            row.workspace.as_deref(),
            "silence.create",
            &row.id,
            views::to_json(&view)?,
        )
        .await;
    Ok((StatusCode::CREATED, Answer(view)).into_response())
}

/// `DELETE /v1/silences/{id}`: ends it now; notifications resume.
#[utoipa::path(
    delete,
    operation_id = "alerting_expire_silence",
    path = "/v1/silences/{id}",
    tag = "alerts",
    summary = "end a silence now (bootstrap admin)",
    params(("id" = String, Path, description = "the silence", pattern = "^[A-Za-z0-9_-]{1,128}$")),
    responses(
        (status = 200, description = "the silence, ended", body = crate::views::Silence),
        crate::openapi::BadRequest,
        crate::openapi::NotFound,
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn expire_silence(
    State(state): State<AppState>,
    principal: Principal,
    Path(id): Path<String>,
) -> Result<Response> {
    principal.require_root()?;
    warden_core::validate::id("silence", &id).map_err(Error::InvalidArgument)?;
    let now = warden_store::now_ms();
    let row = state.app.store.expire_silence(&id, now).await?;
    state
        .app
        .audit(
            &principal,
            row.workspace.as_deref(),
            "silence.expire",
            &id,
            json!({}),
        )
        .await;
    state.app.alerts.wake_handle().notify_one();
    Ok(Answer(views::Silence::at(&row, now)).into_response())
}

/// `GET /v1/alerting/sinks`: each sink, where it routes, its breaker and
/// its queue. No secrets: URLs from the environment are not shown.
#[utoipa::path(
    get,
    operation_id = "alerting_sinks",
    path = "/v1/alerting/sinks",
    tag = "alerts",
    summary = "the notification sinks with their breakers and queues (bootstrap admin)",
    responses(
        (status = 200, description = "the sinks", body = crate::openapi::Sinks),
        crate::openapi::Authenticated,
        crate::openapi::Forbidden
    )
)]
pub async fn sinks(State(state): State<AppState>, principal: Principal) -> Result<Response> {
    principal.require_root()?;
    let breakers = state.app.store.list_breakers().await?;
    let mut out = Vec::new();
    for cfg in state.app.notifier.sink_configs() {
        let pending = state
            .app
            .store
            .list_notifications(&NotificationFilter {
                sink: Some(cfg.name.clone()),
                status: Some("pending".to_string()),
                alert_id: None,
                limit: 1000,
            })
            .await?
            .len();
        let breaker = breakers
            .iter()
            .find(|b| b.name == format!("sink:{}", cfg.name))
            .map(|b| json!(views::Breaker::from(b)));
        out.push(json!({
            "name": cfg.name,
            "kind": cfg.kind.name(),
            "severities": cfg.severities,
            "target": match cfg.kind {
                warden_core::alerting::SinkKind::Jsonl => cfg.path.clone(),
                _ if cfg.url_env.is_some() => cfg.url_env.as_ref().map(|v| format!("${v}")),
                warden_core::alerting::SinkKind::Slack => Some("(url in warden.toml)".to_string()),
                // The path of a webhook's URL is often its secret.
                _ => cfg
                    .url
                    .as_deref()
                    .map(|u| warden_core::gateway::redact_url(u, false)),
            },
            "pending": pending,
            "breaker": breaker.unwrap_or_else(|| json!({ "state": "closed" })),
        }));
    }
    Ok(axum::Json(json!({ "sinks": out })).into_response())
}
