//! Acceptance 6 of the foundation: tokens are confined to their workspace
//! and role, errors use the envelope, bad input never gets a 500.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{ADMIN, TestServer};

async fn token(server: &TestServer, ws: &str, role: &str) -> String {
    let (status, body) = server
        .post(
            &format!("/v1/workspaces/{ws}/tokens"),
            &json!({ "name": format!("{ws}-{role}"), "role": role }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

fn assert_error(status: StatusCode, body: &Value, want_status: StatusCode, code: &str) {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_confined_to_their_workspace_and_role() {
    let server = TestServer::start("").await;
    let a_admin = token(&server, "a", "admin").await;
    let a_viewer = token(&server, "a", "viewer").await;

    let (s, b) = server
        .request(Method::GET, "/v1/workspaces/a/runs", None, None)
        .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");
    let (s, b) = server
        .request(
            Method::GET,
            "/v1/plugins",
            Some("wdn_not-a-real-token"),
            None,
        )
        .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");

    let (s, _) = server
        .request(Method::GET, "/v1/workspaces/a/runs", Some(&a_admin), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    // Everything in workspace b is denied to a token of a, even its admin.
    for (method, path, body) in [
        (Method::GET, "/v1/workspaces/b/runs", None),
        (Method::GET, "/v1/workspaces/b/tasks", None),
        (
            Method::POST,
            "/v1/workspaces/b/tasks",
            Some(json!({ "title": "x" })),
        ),
        (
            Method::POST,
            "/v1/workspaces/b/playbooks/diagnose-system/runs",
            Some(json!({})),
        ),
        (Method::GET, "/v1/workspaces/b/pins", None),
        (
            Method::PUT,
            "/v1/workspaces/b/pins/diagnose-system",
            Some(json!({ "version": "latest" })),
        ),
        (
            Method::PUT,
            "/v1/workspaces/b/grants/diagnose-system",
            Some(json!({ "capabilities": [] })),
        ),
        (
            Method::POST,
            "/v1/workspaces/b/tokens",
            Some(json!({ "name": "x", "role": "admin" })),
        ),
        (Method::GET, "/v1/workspaces/b/audit", None),
        (Method::GET, "/v1/plugins?workspace=b", None),
    ] {
        let (s, b) = server
            .request(method.clone(), path, Some(&a_admin), body.as_ref())
            .await;
        assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
        assert!(
            b["error"]["message"]
                .as_str()
                .unwrap()
                .contains("scoped to workspace \"a\""),
            "{method} {path}: {b}"
        );
    }
    // A viewer reads but does not act; plugin uploads need the bootstrap admin.
    let (s, _) = server
        .request(Method::GET, "/v1/workspaces/a/tasks", Some(&a_viewer), None)
        .await;
    assert_eq!(s, StatusCode::OK);
    let (s, b) = server
        .request(
            Method::POST,
            "/v1/workspaces/a/playbooks/diagnose-system/runs",
            Some(&a_viewer),
            Some(&json!({})),
        )
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (s, b) = server
        .request(Method::POST, "/v1/plugins", Some(&a_admin), None)
        .await;
    assert_error(s, &b, StatusCode::FORBIDDEN, "PERMISSION_DENIED");

    // Revoked tokens stop working.
    let (_, list) = server
        .request(Method::GET, "/v1/workspaces/a/tokens", Some(&a_admin), None)
        .await;
    let viewer_id = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["role"] == "viewer")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, _) = server
        .request(
            Method::DELETE,
            &format!("/v1/workspaces/a/tokens/{viewer_id}"),
            Some(&a_admin),
            None,
        )
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let (s, b) = server
        .request(Method::GET, "/v1/workspaces/a/tasks", Some(&a_viewer), None)
        .await;
    assert_error(s, &b, StatusCode::UNAUTHORIZED, "UNAUTHENTICATED");

    // Every mutation is in the audit log with its actor.
    let (_, audit) = server.get("/v1/workspaces/a/audit").await;
    let actions: Vec<(&str, &str)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap()))
        .collect();
    assert!(
        actions.contains(&("token.create", "bootstrap-admin")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("token.revoke", "a-admin")),
        "{actions:?}"
    );
    server.stop().await;
}

async fn raw(
    server: &TestServer,
    method: Method,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
) -> (StatusCode, Value) {
    let mut req = server
        .client
        .request(method, format!("{}{path}", server.url))
        .bearer_auth(ADMIN);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let resp = req.body(body.to_vec()).send().await.unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_clear_error_and_never_a_500() {
    let server =
        TestServer::start("[http]\nmax_body_kib = 64\nrate_limit_per_sec = 100000\n").await;
    let json_ct = Some("application/json");

    let (s, b) = raw(
        &server,
        Method::POST,
        "/v1/workspaces/default/tasks",
        json_ct,
        b"{\"title\": ",
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("invalid JSON body"),
        "{b}"
    );
    let (s, b) = raw(
        &server,
        Method::POST,
        "/v1/workspaces/default/tasks",
        json_ct,
        b"{\"title\": 5}",
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("title"),
        "{b}"
    );
    let (s, b) = raw(
        &server,
        Method::POST,
        "/v1/workspaces/default/tasks",
        json_ct,
        b"{\"title\": \"x\", \"colour\": 1}",
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{b}"
    );
    let (s, b) = raw(
        &server,
        Method::POST,
        "/v1/workspaces/default/playbooks/diagnose-system/runs",
        json_ct,
        b"{\"mode\": \"destroy\"}",
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("invalid mode \"destroy\""),
        "{b}"
    );
    let (s, b) = raw(
        &server,
        Method::POST,
        "/v1/workspaces/default/playbooks/diagnose-system/runs",
        None,
        b"not json",
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    let big = vec![b'x'; 100 * 1024];
    let (s, b) = raw(
        &server,
        Method::POST,
        "/v1/workspaces/default/tasks",
        json_ct,
        &big,
    )
    .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        b["error"]["message"].as_str().unwrap().contains("64 KiB"),
        "{b}"
    );
    let (s, b) = server.get("/v1/workspaces/Bad%20Name/runs").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    let (s, b) = server
        .get("/v1/workspaces/default/runs/does-not-exist")
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, b) = server.get("/v1/workspaces/default/runs?limit=0").await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    let (s, b) = server.get("/v1/no/such/route").await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, b) = raw(&server, Method::DELETE, "/v1/plugins", None, b"").await;
    assert_error(s, &b, StatusCode::METHOD_NOT_ALLOWED, "INVALID_ARGUMENT");
    let (s, b) = server
        .post(
            "/v1/workspaces/default/playbooks/no-such-plugin/runs",
            &json!({}),
        )
        .await;
    assert_error(s, &b, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (s, b) = server
        .put(
            "/v1/workspaces/default/grants/diagnose-system",
            &json!({ "capabilities": ["tasks:wirte"] }),
        )
        .await;
    assert_error(s, &b, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        b["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean \"tasks:write\"?"),
        "{b}"
    );
    let (s, b) = server
        .put(
            "/v1/workspaces/default/pins/diagnose-system",
            &json!({ "version": "9.9.9" }),
        )
        .await;
    assert_error(s, &b, StatusCode::CONFLICT, "FAILED_PRECONDITION");

    // A sweep of junk over every route: no 500, always the envelope.
    let junk_segments = [
        "x",
        "%00",
        "..",
        "a%2Fb",
        &"z".repeat(300),
        "ünïcode",
        "-1",
        "0",
    ];
    let junk_bodies: [&[u8]; 6] = [b"", b"{}", b"[]", b"null", b"{\"mode\": 1}", b"\xff\xfe"];
    let templates = [
        "/v1/workspaces/{}/runs",
        "/v1/workspaces/default/runs/{}",
        "/v1/workspaces/default/runs/{}/events",
        "/v1/workspaces/default/runs/{}/apply",
        "/v1/workspaces/default/playbooks/{}/runs",
        "/v1/workspaces/default/tasks/{}",
        "/v1/plugins/{}",
        "/v1/workspaces/default/pins/{}",
        "/v1/workspaces/default/grants/{}",
        "/v1/workspaces/{}/tokens",
    ];
    let mut count = 0;
    for t in templates {
        for seg in junk_segments {
            for method in [Method::GET, Method::POST, Method::PUT, Method::DELETE] {
                for body in junk_bodies {
                    let path = t.replace("{}", seg);
                    let (s, b) = raw(&server, method.clone(), &path, json_ct, body).await;
                    count += 1;
                    assert!(
                        s.as_u16() < 500,
                        "{method} {path} {:?} -> {s} {b}",
                        String::from_utf8_lossy(body)
                    );
                    if s.is_client_error() {
                        assert!(b["error"]["code"].is_string(), "{method} {path} -> {s} {b}");
                    }
                }
            }
        }
    }
    eprintln!("{count} junk requests, none answered with a server error");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_rate_limited() {
    let server = TestServer::start("[http]\nrate_limit_per_sec = 5\n").await;
    let mut limited = 0;
    for _ in 0..40 {
        let (s, b) = server.get("/v1/workspaces/default/runs").await;
        if s == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(b["error"]["code"], "RESOURCE_EXHAUSTED");
            limited += 1;
        }
    }
    assert!(limited >= 20, "only {limited} of 40 requests were limited");
    server.stop().await;
}

/// Regression: a NUL character (U+0000) in any JSON string, query or path
/// reached the store, where PostgreSQL refuses it in `text` and `jsonb`
/// ("invalid byte sequence for encoding UTF8: 0x00"), and the client got a
/// 503 UNAVAILABLE internal error instead of a 400 (SPEC SE-2). Now it is
/// INVALID_ARGUMENT on both dialects; found while fuzzing the OpenAPI
/// document against a PostgreSQL-backed server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_character_is_an_invalid_argument_on_both_dialects() {
    let sqlite = TestServer::start("").await;
    nul_is_refused(&sqlite).await;

    let Some(pg) =
        crate::PgSchema::create("a_nul_character_is_an_invalid_argument_on_both_dialects").await
    else {
        return;
    };
    let postgres = TestServer::start(&format!("database_url = \"{}\"\n", pg.url)).await;
    nul_is_refused(&postgres).await;
    postgres.stop().await;
    pg.drop().await;
}

async fn nul_is_refused(server: &TestServer) {
    let ws = "/v1/workspaces/default";
    for (method, path, body) in [
        (
            Method::POST,
            format!("{ws}/tasks"),
            json!({ "title": "a\u{0}b" }),
        ),
        (
            Method::POST,
            format!("{ws}/tasks"),
            json!({ "title": "t", "body": "\u{0}" }),
        ),
        (
            Method::POST,
            "/v1/silences".to_string(),
            json!({ "rule": "r\u{0}", "duration": "1h" }),
        ),
        (
            Method::PUT,
            format!("{ws}/mode"),
            json!({ "mode": "normal", "reason": "\u{0}" }),
        ),
        (
            Method::POST,
            format!("{ws}/tokens"),
            json!({ "name": "n\u{0}", "role": "viewer" }),
        ),
        (
            Method::PUT,
            "/v1/breakers/b".to_string(),
            json!({ "state": "open", "reason": "\u{0}" }),
        ),
        (
            Method::POST,
            format!("{ws}/playbooks/diagnose-system/runs"),
            json!({ "idempotency_key": "k\u{0}" }),
        ),
        (
            Method::POST,
            "/v1/chat/completions".to_string(),
            json!({ "model": "m\u{0}", "messages": [] }),
        ),
    ] {
        let (status, answer) = server
            .request(method.clone(), &path, Some(ADMIN), Some(&body))
            .await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains("NUL"),
            "{method} {path}: {answer}"
        );
    }
    let (status, answer) = server.get(&format!("{ws}/runs?plugin=a%00b")).await;
    assert_error(status, &answer, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    // The text `\u0000` (an escaped backslash, then u0000) is no NUL.
    let (status, answer) = server
        .post(&format!("{ws}/tasks"), &json!({ "title": "a\\u0000b" }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{answer}");
    assert_eq!(answer["title"], "a\\u0000b");
}

/// Regression: the routes that take a raw body (a plugin upload, an agent
/// checkpoint, a chat completion) answered a body over their size limit
/// with axum's plain-text "413 Failed to buffer the request body", not the
/// error envelope of SPEC SE-2. Now it is a 400 INVALID_ARGUMENT, as for
/// the JSON routes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_body_over_its_limit_gets_the_error_envelope() {
    let server =
        TestServer::start("[gateway]\nmax_body_kib = 1\n[limits]\nmax_plugin_mib = 1\n").await;
    let checkpoint = vec![b'x'; (8 << 20) + 4096];
    let two_mib = vec![b'x'; 2 << 20];
    for (path, body) in [
        ("/v1/plugins".to_string(), &two_mib),
        (
            "/v1/workspaces/default/agents/a1/sleep".to_string(),
            &checkpoint,
        ),
        ("/v1/chat/completions".to_string(), &two_mib),
    ] {
        let resp = server
            .client
            .post(format!("{}{path}", server.url))
            .bearer_auth(ADMIN)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let text = resp.text().await.unwrap();
        let answer: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{path}: not the envelope: {status} {text}"));
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
        assert!(
            answer["error"]["message"]
                .as_str()
                .unwrap()
                .contains("size limit"),
            "{path}: {answer}"
        );
    }
}
