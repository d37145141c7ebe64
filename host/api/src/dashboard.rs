//! The dashboard (SPEC OB-2): one HTML page, its script and style sheet,
//! and the vendored Chart.js, all compiled into the binary. The page holds
//! no data: it asks for a token and reads the status API with it.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::Path;
use crate::error::{Error, Result};

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard.js");
const STYLE: &str = include_str!("../assets/dashboard.css");
/// Chart.js 4 (MIT, `assets/vendor/chart.js.LICENSE.md`), as published on
/// npm (`dist/chart.umd.min.js`).
const CHART_JS: &str = include_str!("../assets/vendor/chart.umd.min.js");
const CHART_JS_LICENSE: &str = include_str!("../assets/vendor/chart.js.LICENSE.md");

/// Scripts and styles come from this host only; the page talks to this
/// host only. Chart.js sets element styles from script, which CSP allows.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   connect-src 'self'; img-src 'self' data:; base-uri 'none'; \
                   form-action 'none'; frame-ancestors 'none'";

/// The page's own files change with the binary: revalidate every time.
const NO_CACHE: &str = "no-cache";

/// The vendored library is referenced with its version in the query
/// string, so a new version is a new URL: cache it for a year.
const LONG_CACHE: &str = "public, max-age=31536000, immutable";

fn file(content_type: &'static str, cache: &'static str, body: &'static str) -> Response {
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// `GET /`: the dashboard.
#[utoipa::path(
    get,
    operation_id = "dashboard_page",
    path = "/",
    tag = "dashboard",
    summary = "the dashboard (an HTML page; it asks for a token)",
    security(()),
    responses(
        (status = 200, description = "the page", body = crate::openapi::Text, content_type = "text/html")
    )
)]
pub async fn page() -> Response {
    let mut resp = file("text/html; charset=utf-8", NO_CACHE, INDEX);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    resp
}

/// `GET /assets/{name}`: the page's script and style sheet, Chart.js and
/// its license.
#[utoipa::path(
    get,
    operation_id = "dashboard_asset",
    path = "/assets/{name}",
    tag = "dashboard",
    summary = "the dashboard's script, style sheet, Chart.js and its license",
    security(()),
    params(("name" = String, Path, description = "`dashboard.js`, `dashboard.css`, `chart.umd.js` or `chart.js.LICENSE.md`")),
    responses(
        (status = 200, description = "the file", body = crate::openapi::Text, content_type = "text/javascript"),
        crate::openapi::NotFound
    )
)]
pub async fn asset(Path(name): Path<String>) -> Result<Response> {
    Ok(match name.as_str() {
        "dashboard.js" => file("text/javascript; charset=utf-8", NO_CACHE, SCRIPT),
        "dashboard.css" => file("text/css; charset=utf-8", NO_CACHE, STYLE),
        "chart.umd.js" => file("text/javascript; charset=utf-8", LONG_CACHE, CHART_JS),
        "chart.js.LICENSE.md" => file("text/plain; charset=utf-8", NO_CACHE, CHART_JS_LICENSE),
        _ => {
            return Err(Error::NotFound(format!(
                "no asset \"{}\"",
                warden_core::validate::truncate(&name, 80)
            ))
            .into());
        }
    })
}
