//! The OpenAPI document (SPEC OB-5), served at `GET /openapi.json`.
//!
//! The router is built from the handlers' `#[utoipa::path]` annotations
//! (`utoipa_axum::routes!` in [`super::router`]), so a route and its
//! documentation cannot drift apart: a handler without an annotation
//! cannot be registered through `routes!`. This module holds what the
//! annotations share: the error envelope, the error responses, the bearer
//! scheme, and the response schemas of the views the handlers still build
//! with `serde_json::json!` (each schema names the function whose output it
//! describes; schemathesis checks responses against them in CI). The typed
//! views of [`crate::views`] document themselves.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{
    ContentBuilder, ObjectBuilder, RefOr, ResponseBuilder, Schema, Type, schema::SchemaType,
};
use utoipa::{OpenApi as _, PartialSchema, ToSchema};

// ---------------------------------------------------------------------
// The document.

/// The document, built once from the router's annotations.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    serde_json::to_string(&document()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "cannot serialize the OpenAPI document");
        "{}".to_string()
    })
});

/// The OpenAPI document of every route of [`super::router`].
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = super::routes(&super::Limits::default()).into_openapi();
    // The error responses refer to the envelope by name.
    doc.merge(Shared::openapi());
    doc.info.title = "Warden".to_string();
    doc.info.description = Some(
        "The control plane for autonomous coding agents. Every error is the SPEC SE-2 \
         envelope `{\"error\": {\"code\", \"message\"}}`."
            .to_string(),
    );
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    doc.info.license = Some(utoipa::openapi::License::new("Apache-2.0"));
    let components = doc
        .components
        .get_or_insert_with(utoipa::openapi::Components::new);
    components.add_security_scheme(
        BEARER,
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(
                    "a workspace token or the bootstrap admin token (warden.toml [auth])",
                ))
                .build(),
        ),
    );
    // Every operation needs the bearer token unless its annotation says
    // otherwise with `security(())`.
    doc.security = Some(vec![utoipa::openapi::security::SecurityRequirement::new(
        BEARER,
        Vec::<String>::new(),
    )]);
    unique_operation_ids(&mut doc);
    doc
}

/// A handler serving several methods (`wake`: GET and POST) gives each
/// operation its id; OpenAPI wants them unique, so those get the method
/// appended.
fn unique_operation_ids(doc: &mut utoipa::openapi::OpenApi) {
    let mut seen = BTreeMap::<String, usize>::new();
    for item in doc.paths.paths.values() {
        for (_, op) in operations(item) {
            if let Some(id) = &op.operation_id {
                *seen.entry(id.clone()).or_default() += 1;
            }
        }
    }
    for item in doc.paths.paths.values_mut() {
        for (method, op) in operations_mut(item) {
            if let Some(id) = &mut op.operation_id
                && seen.get(id.as_str()).is_some_and(|n| *n > 1)
            {
                id.push('_');
                id.push_str(method);
            }
        }
    }
}

fn operations(
    item: &utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &utoipa::openapi::path::Operation)> {
    [
        ("get", item.get.as_ref()),
        ("put", item.put.as_ref()),
        ("post", item.post.as_ref()),
        ("delete", item.delete.as_ref()),
        ("patch", item.patch.as_ref()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
}

fn operations_mut(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (&'static str, &mut utoipa::openapi::path::Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
    ]
    .into_iter()
    .filter_map(|(m, op)| op.map(|op| (m, op)))
}

/// The schemas that no handler names directly.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(ErrorEnvelope, ErrorBody, ErrorCode)))]
struct Shared;

/// The name of the bearer security scheme.
pub const BEARER: &str = "bearer";

/// `GET /openapi.json`: this document; no token.
#[utoipa::path(
    get,
    operation_id = "openapi_openapi_json",
    path = "/openapi.json",
    tag = "system",
    security(()),
    responses((status = 200, description = "the OpenAPI 3.1 document of this API", body = AnyObject))
)]
pub async fn openapi_json() -> Response {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT.as_str()).into_response()
}

// ---------------------------------------------------------------------
// Errors.

/// The error envelope of SPEC SE-2.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// The error.
    pub error: ErrorBody,
}

/// The inside of the error envelope.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    /// The code; the HTTP status follows from it.
    #[schema(example = "INVALID_ARGUMENT")]
    pub code: ErrorCode,
    /// What went wrong, for a person.
    pub message: String,
}

/// The codes of SPEC SE-2.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ErrorCode {
    /// 400 (405 for a wrong method).
    InvalidArgument,
    /// 401.
    Unauthenticated,
    /// 403.
    PermissionDenied,
    /// 404.
    NotFound,
    /// 409.
    AlreadyExists,
    /// 409.
    FailedPrecondition,
    /// 429.
    ResourceExhausted,
    /// 503.
    Unavailable,
}

fn error_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    "ErrorEnvelope",
                ))))
                .build(),
        )
        .build()
}

/// Declares a set of error responses, each the envelope.
macro_rules! errors {
    ($(#[$doc:meta])* $name:ident: $($status:literal => $what:literal),+ $(,)?) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::Response>> {
                let mut map = BTreeMap::new();
                $(map.insert($status.to_string(), RefOr::T(error_response($what)));)+
                map
            }
        }
    };
}

errors!(
    /// What every authenticated route can answer: no or a bad token, the
    /// per-token rate limit, the database down.
    Authenticated:
    "401" => "UNAUTHENTICATED: no, a malformed, an unknown or a revoked token",
    "429" => "RESOURCE_EXHAUSTED: the token's rate limit (or the address's, before a token is known), a budget, or a cap (event streams per token, checkpoint agents)",
    "503" => "UNAVAILABLE: the database is unavailable, or an internal error (logged)",
);
errors!(
    /// A token without the right.
    Forbidden: "403" => "PERMISSION_DENIED: another workspace, too weak a role, not the bootstrap admin",
);
errors!(
    /// A bad path segment, query, header or body.
    BadRequest: "400" => "INVALID_ARGUMENT: a bad path segment, query parameter, header or body",
);
errors!(
    /// No such object.
    NotFound: "404" => "NOT_FOUND: no such object",
);
errors!(
    /// The object's state does not allow this, or it exists already.
    Conflict: "409" => "FAILED_PRECONDITION or ALREADY_EXISTS: the state does not allow this",
);
errors!(
    /// `/ready` before the server is.
    NotReady: "503" => "UNAVAILABLE: the database is unreachable or plugins are still loading",
);

// ---------------------------------------------------------------------
// Path parameters every workspace route shares, described once.

/// `{ws}`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WsPath {
    /// the workspace
    #[param(pattern = "^[a-z0-9][a-z0-9_-]{0,62}$")]
    pub ws: String,
}

/// `{id}` of a task.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TaskIdPath {
    /// the task
    #[param(pattern = "^[A-Za-z0-9_-]{1,128}$")]
    pub id: String,
}

// ---------------------------------------------------------------------
// Shared schemas.

/// Any JSON object (a response or field whose keys are not fixed).
pub struct AnyObject;

impl PartialSchema for AnyObject {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::Object))
            .description(Some("a JSON object whose keys this document does not fix"))
            .into()
    }
}

impl ToSchema for AnyObject {}

/// Plain text (`/metrics`).
pub struct Text;

impl PartialSchema for Text {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .into()
    }
}

impl ToSchema for Text {}

/// One server-sent event as a client parses it: `data` is JSON text.
#[derive(Serialize, ToSchema)]
pub struct SseEvent {
    /// The sequence number, for `Last-Event-ID`.
    pub id: Option<String>,
    /// The event type.
    pub event: Option<String>,
    /// The payload.
    pub data: String,
}

/// Bytes (a `.wasm` upload, a checkpoint blob, an event stream).
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(SchemaType::new(Type::String))
            .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                utoipa::openapi::KnownFormat::Binary,
            )))
            .into()
    }
}

impl ToSchema for Binary {}

mod views;
pub use views::*;
