//! Extractors whose rejections use the error envelope (SPEC SE-2): a bad
//! body, query or path is a 400 `INVALID_ARGUMENT` naming the problem.

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::{ApiError, Error};
use warden_core::auth::Principal;

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
