//! Extractors whose rejections use the error envelope (SPEC SE-2): a bad
//! body, query or path is a 400 `INVALID_ARGUMENT` naming the problem.
//! [`Workspace`] opens every route under `/v1/workspaces/{ws}`: the caller,
//! the workspace name checked, and the role the route needs.

use std::collections::HashMap;
use std::marker::PhantomData;

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, Error};
use warden_core::auth::{Principal, Role};

/// A JSON body.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned> FromRequest<AppState> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(
                Error::invalid("expected a JSON body with Content-Type: application/json").into(),
            );
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            Error::invalid(format!(
                "request body over the {} KiB limit, or not readable",
                state.app.config.http.max_body_kib
            ))
        })?;
        if warden_core::validate::json_has_nul(&bytes) {
            return Err(Error::invalid(warden_core::validate::NUL_MESSAGE).into());
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(v)) => Ok(Json(v)),
            Err(e) => Err(json_rejection(e, state).into()),
        }
    }
}

/// `application/json` or `application/<anything>+json`, as `axum::Json`
/// requires.
fn json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(ct) = headers
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = ct
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// A JSON body that may be absent (empty body: `T::default()`), with or
/// without a `Content-Type`, so that `curl -X POST <url>` works.
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let limit = state.app.config.http.max_body_kib;
        let bytes = axum::body::to_bytes(req.into_body(), limit << 10)
            .await
            .map_err(|_| Error::invalid(format!("request body over the {limit} KiB limit")))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(T::default()));
        }
        if warden_core::validate::json_has_nul(&bytes) {
            return Err(Error::invalid(warden_core::validate::NUL_MESSAGE).into());
        }
        let value = serde_json::from_slice(&bytes)
            .map_err(|e| Error::invalid(format!("invalid JSON body: {e}")))?;
        Ok(OptionalJson(value))
    }
}

fn json_rejection(e: JsonRejection, state: &AppState) -> Error {
    match e {
        JsonRejection::JsonDataError(e) => {
            Error::invalid(format!("invalid JSON body: {}", e.body_text()))
        }
        JsonRejection::JsonSyntaxError(e) => {
            Error::invalid(format!("invalid JSON body: {}", e.body_text()))
        }
        JsonRejection::MissingJsonContentType(_) => {
            Error::invalid("expected a JSON body with Content-Type: application/json")
        }
        JsonRejection::BytesRejection(_) => Error::invalid(format!(
            "request body over the {} KiB limit, or not readable",
            state.app.config.http.max_body_kib
        )),
        other => Error::invalid(other.body_text()),
    }
}

/// A raw body (a `.wasm`, a checkpoint blob, a chat request). Over the
/// route's size limit it is a 400 INVALID_ARGUMENT in the envelope, not
/// axum's plain-text 413.
pub struct Body(pub Bytes);

impl FromRequest<AppState> for Body {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            Error::invalid(format!(
                "request body over this route's size limit (see docs/api.md), or not readable: {}",
                e.body_text()
            ))
        })?;
        Ok(Body(bytes))
    }
}

/// Query parameters.
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if parts
            .uri
            .query()
            .is_some_and(warden_core::validate::uri_has_nul)
        {
            return Err(Error::invalid(format!(
                "invalid query: {}",
                warden_core::validate::NUL_MESSAGE
            ))
            .into());
        }
        let q = axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e: QueryRejection| {
                Error::invalid(format!("invalid query: {}", e.body_text()))
            })?;
        Ok(Query(q.0))
    }
}

/// Path parameters.
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send> FromRequestParts<AppState> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if warden_core::validate::uri_has_nul(parts.uri.path()) {
            return Err(Error::invalid(format!(
                "invalid path: {}",
                warden_core::validate::NUL_MESSAGE
            ))
            .into());
        }
        let p = axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e: PathRejection| {
                Error::invalid(format!("invalid path: {}", e.body_text()))
            })?;
        Ok(Path(p.0))
    }
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        let peer = parts
            .extensions
            .get::<crate::serve::PeerAddr>()
            .map(|p| p.0.ip());
        Ok(state.app.auth.authenticate(header, peer).await?)
    }
}

/// The least role a route needs, as a type, so that a handler states it
/// in its signature: `Workspace<Operator>`.
pub trait MinRole: Send + Sync + 'static {
    /// The role.
    const ROLE: Role;
}

/// Needs [`Role::Viewer`]: reads.
pub struct Viewer;
/// Needs [`Role::Agent`]: works tasks.
pub struct Agent;
/// Needs [`Role::Operator`]: acts on the workspace.
pub struct Operator;
/// Needs [`Role::Admin`]: grants and tokens.
pub struct Admin;

impl MinRole for Viewer {
    const ROLE: Role = Role::Viewer;
}
impl MinRole for Agent {
    const ROLE: Role = Role::Agent;
}
impl MinRole for Operator {
    const ROLE: Role = Role::Operator;
}
impl MinRole for Admin {
    const ROLE: Role = Role::Admin;
}

/// The `{ws}` path parameter of a route, a valid workspace name, and the
/// caller, allowed in it with at least the role `R`.
///
/// The checks run in the order the handlers ran them before this
/// extractor: the token (401, 429), the path (400 on a NUL or bad UTF-8,
/// as [`Path`]), the name (400, as [`crate::check_ws`]), then the scope and
/// the role (403, as [`Principal::require`]), each with the same answer.
/// Being an extractor, it answers before the query and body extractors
/// that follow it and before the handler checks its other path
/// parameters, all of which used to come before the name and the role: a
/// request wrong in two of these ways now gets the name or role error.
pub struct Workspace<R: MinRole> {
    /// The workspace name.
    pub ws: String,
    /// Who is calling.
    pub principal: Principal,
    role: PhantomData<R>,
}

impl<R: MinRole> FromRequestParts<AppState> for Workspace<R> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let principal = Principal::from_request_parts(parts, state).await?;
        let Path(mut params) =
            Path::<HashMap<String, String>>::from_request_parts(parts, state).await?;
        let Some(ws) = params.remove("ws") else {
            return Err(Error::Internal(format!(
                "the route {} has no {{ws}} parameter for the Workspace extractor",
                parts.uri.path()
            ))
            .into());
        };
        crate::check_ws(&ws)?;
        principal.require(&ws, R::ROLE)?;
        Ok(Workspace {
            ws,
            principal,
            role: PhantomData,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::StatusCode;
    // A test route, not one of the API's: tests/e2e/openapi.rs looks for
    // routes added outside `routes!` by the text of their calls.
    use axum::{Router, routing::get};
    use serde_json::Value;
    use tower::ServiceExt as _;
    use warden_core::config::{AuthConfig, Config};

    use super::*;

    const ADMIN: &str = "wdn_extract-test-admin";
    const ROUTE: &str = "/v1/workspaces/{ws}/op";

    async fn operator_route(Workspace { ws, principal, .. }: Workspace<Operator>) -> String {
        format!("{ws} {}", principal.name)
    }

    /// A host on a fresh SQLite file, its tokens, and a route that needs
    /// an operator of `{ws}`.
    struct Host {
        built: warden_core::services::Built,
        router: Router,
        dir: std::path::PathBuf,
    }

    impl Host {
        async fn start(test: &str) -> Host {
            let dir = std::env::temp_dir()
                .join(format!("warden-api-extract-{test}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let config = Config {
                data_dir: dir.join("data"),
                plugin_dir: dir.join("plugins"),
                bundled_plugins: false,
                auth: AuthConfig {
                    admin_token: Some(ADMIN.to_string()),
                    ..AuthConfig::default()
                },
                ..Config::default()
            };
            let built =
                warden_core::services::build(config, &[], &warden_core::outbound::Disconnected)
                    .await
                    .unwrap();
            let state = AppState {
                app: built.app.clone(),
                streams: Arc::default(),
            };
            let router = Router::<AppState>::new()
                .route(ROUTE, get(operator_route))
                .with_state(state);
            Host { built, router, dir }
        }

        async fn token(&self, ws: &str, role: Role) -> String {
            let name = format!("{ws}-{role}");
            let (_, secret) = self
                .built
                .app
                .auth
                .create_token(ws, &name, role)
                .await
                .unwrap();
            secret
        }

        /// The status and the error envelope (or the text) of a GET.
        async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
            let mut req = axum::http::Request::get(path);
            if let Some(t) = token {
                req = req.header("authorization", format!("Bearer {t}"));
            }
            let resp = self
                .router
                .clone()
                .oneshot(req.body(axum::body::Body::empty()).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            (status, body)
        }

        async fn stop(self) {
            let _ = self.built.shutdown.send(true);
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// Asserts the status, the code and the message of an error answer.
    fn refused(answer: &(StatusCode, Value), status: StatusCode, code: &str, message: &str) {
        let (got, body) = answer;
        assert_eq!(*got, status, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
        assert_eq!(body["error"]["message"], message, "{body}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_token_then_the_name_then_the_scope_and_the_role() {
        let host = Host::start("order").await;
        let operator = host.token("a", Role::Operator).await;
        let viewer = host.token("a", Role::Viewer).await;
        let admin_of_b = host.token("b", Role::Admin).await;

        let ok = host.get("/v1/workspaces/a/op", Some(&operator)).await;
        assert_eq!(ok, (StatusCode::OK, Value::String("a a-operator".into())));
        let root = host.get("/v1/workspaces/a/op", Some(ADMIN)).await;
        assert_eq!(root.0, StatusCode::OK, "{root:?}");

        // No token is a 401 before the name is looked at.
        let anonymous = host.get("/v1/workspaces/Bad%20Name/op", None).await;
        assert_eq!(anonymous.0, StatusCode::UNAUTHORIZED, "{anonymous:?}");
        assert_eq!(anonymous.1["error"]["code"], "UNAUTHENTICATED");
        // A bad name is a 400 whatever the token may do, as check_ws says it.
        for token in [&operator, &viewer, &admin_of_b] {
            let bad = host.get("/v1/workspaces/Bad%20Name/op", Some(token)).await;
            refused(
                &bad,
                StatusCode::BAD_REQUEST,
                "INVALID_ARGUMENT",
                &crate::check_ws("Bad Name").unwrap_err().to_string(),
            );
        }
        // A NUL in the path is refused as the Path extractor refuses it.
        let nul = host.get("/v1/workspaces/a%00/op", Some(&viewer)).await;
        refused(
            &nul,
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            &format!("invalid path: {}", warden_core::validate::NUL_MESSAGE),
        );
        // A token of another workspace, even its admin, is denied.
        let other = host.get("/v1/workspaces/a/op", Some(&admin_of_b)).await;
        refused(
            &other,
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "this token is scoped to workspace \"b\" and cannot access workspace \"a\"",
        );
        // Too weak a role is denied.
        let weak = host.get("/v1/workspaces/a/op", Some(&viewer)).await;
        refused(
            &weak,
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "this needs the operator role; the token has viewer",
        );
        host.stop().await;
    }
}
