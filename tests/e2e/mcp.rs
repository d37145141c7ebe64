//! The MCP server at `/mcp` (SPEC TH-6): the official MCP Python client
//! works a task stage through it; tokens, workspaces and the session limit
//! hold as over HTTP.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::TestServer;

async fn agent_token(s: &TestServer, ws: &str) -> String {
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tokens"),
            &json!({ "name": format!("{ws}-mcp-agent"), "role": "agent" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_official_mcp_python_client_works_a_stage() {
    let found = crate::python_tool("mcpenv", "mcp>=2", "bin/python", |p| {
        crate::imports(p, "mcp.client.streamable_http")
    });
    let Some(python) = crate::required("the_official_mcp_python_client_works_a_stage", found)
    else {
        return;
    };
    let s = TestServer::start("").await;
    let token = agent_token(&s, "acme").await;
    let (status, task) = s
        .post(
            "/v1/workspaces/acme/tasks",
            &json!({ "title": "fix the flaky test", "pipeline": ["implement"] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    let id = task["id"].as_str().unwrap().to_string();

    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/mcp/client.py");
    let out = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(format!("{}/mcp", s.url))
        .arg(&token)
        .arg("acme-mcp-agent")
        .output()
        .await
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the MCP client failed: {stderr}");
    assert!(
        !stderr.contains("failed"),
        "the MCP client warned: {stderr}"
    );
    let got: Value = serde_json::from_slice(&out.stdout).unwrap();

    assert_eq!(got["server"], "warden", "{got}");
    assert_eq!(
        got["tools"],
        json!([
            "claim_task_v1",
            "complete_stage_v1",
            "fail_stage_v1",
            "heartbeat_v1",
            "report_event_v1",
            "run_playbook_v1",
            "thread_create_v1",
            "thread_list_v1",
            "thread_post_v1",
            "thread_read_v1",
            "thread_status_v1"
        ])
    );
    // Input schemas are the HTTP bodies' (with the path parameter beside).
    let claim = &got["claim_schema"];
    assert!(claim["properties"]["worker_id"].is_object(), "{claim}");
    assert_eq!(claim["required"], json!(["worker_id"]), "{claim}");
    let complete = &got["complete_schema"];
    assert!(complete["properties"]["output"].is_object(), "{complete}");
    assert_eq!(
        complete["required"],
        json!(["task_id", "token"]),
        "{complete}"
    );

    assert_eq!(got["claim"]["is_error"], false, "{got}");
    let claimed = &got["claim"]["structured"]["claims"][0];
    assert_eq!(claimed["task_id"], id, "{got}");
    assert_eq!(claimed["stage"], "implement");
    assert!(
        got["report"]["structured"]["seq"].as_i64().unwrap() >= 1,
        "{got}"
    );
    assert_eq!(got["heartbeat"]["is_error"], false, "{got}");
    assert!(got["heartbeat"]["structured"]["lease_expires_at"].is_string());

    // Refusals are tool errors carrying the SE-2 envelope.
    assert_eq!(got["stale"]["is_error"], true, "{got}");
    assert_eq!(
        got["stale"]["structured"]["error"]["code"], "FAILED_PRECONDITION",
        "{got}"
    );
    assert_eq!(got["unknown_field"]["is_error"], true, "{got}");
    let e = &got["unknown_field"]["structured"]["error"];
    assert_eq!(e["code"], "INVALID_ARGUMENT", "{got}");
    assert!(e["message"].as_str().unwrap().contains("bogus"), "{e}");
    assert_eq!(got["other_workspace"]["is_error"], true, "{got}");
    assert_eq!(
        got["other_workspace"]["structured"]["error"]["code"], "PERMISSION_DENIED",
        "{got}"
    );

    // A thread, worked through the tools.
    assert_eq!(got["thread_create"]["is_error"], false, "{got}");
    let thread = got["thread_create"]["structured"]["thread"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let posted = &got["thread_post"]["structured"];
    assert_eq!(posted["seq"], 1, "{got}");
    assert_eq!(posted["sender"], "acme-mcp-agent", "{got}");
    assert_eq!(posted["kind"], "finding");
    assert_eq!(
        got["thread_retry"]["structured"], *posted,
        "a retry is the first message"
    );
    let e = &got["thread_bad_version"]["structured"]["error"];
    assert_eq!(e["code"], "INVALID_ARGUMENT", "{got}");
    let read = &got["thread_read"]["structured"]["messages"];
    assert_eq!(read.as_array().map(Vec::len), Some(1), "{got}");
    assert_eq!(read[0]["body"], json!({ "text": "the test is flaky" }));
    assert_eq!(
        got["thread_list"]["structured"]["threads"][0]["id"], thread,
        "{got}"
    );
    assert_eq!(
        got["thread_status"]["structured"]["thread"]["state"], "active",
        "{got}"
    );
    // What the tools did, the HTTP API sees.
    let (status, messages) = s
        .get(&format!("/v1/workspaces/acme/threads/{thread}/messages"))
        .await;
    assert_eq!(status, StatusCode::OK, "{messages}");
    assert_eq!(messages["messages"].as_array().map(Vec::len), Some(1));

    // The stage completed, as the HTTP API sees it.
    assert_eq!(got["complete"]["is_error"], false, "{got}");
    assert_eq!(got["complete"]["structured"]["completed"], true, "{got}");
    let (_, task) = s.get(&format!("/v1/workspaces/acme/tasks/{id}")).await;
    assert_eq!(task["state"], "done", "{task}");
    assert_eq!(task["stage_runs"][0]["output"], json!({ "done": true }));
    let (_, events) = s
        .get(&format!("/v1/workspaces/acme/tasks/{id}/events"))
        .await;
    assert!(
        events.to_string().contains("from mcp"),
        "the reported event is missing: {events}"
    );
}

/// An MCP `initialize` request, as a client opens a session.
async fn initialize(s: &TestServer, token: Option<&str>) -> reqwest::Response {
    let mut req = s
        .client
        .post(format!("{}/mcp", s.url))
        .header("accept", "application/json, text/event-stream")
        .json(&json!({
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": { "name": "e2e", "version": "0" }
            }
        }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn mcp_needs_a_token_and_caps_its_sessions() {
    let s = TestServer::start("").await;
    let r = initialize(&s, None).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "UNAUTHENTICATED", "{body}");
    let r = initialize(&s, Some("not-a-token")).await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Sessions up to the limit open; one more is refused until one ends.
    let token = agent_token(&s, "acme").await;
    let max = warden_server::api::mcp::MAX_SESSIONS;
    let mut sessions = Vec::with_capacity(max);
    for i in 0..max {
        let r = initialize(&s, Some(&token)).await;
        assert_eq!(r.status(), StatusCode::OK, "session {i}");
        let id = r.headers()["mcp-session-id"].to_str().unwrap().to_string();
        sessions.push(id);
    }
    let r = initialize(&s, Some(&token)).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED", "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("MCP sessions"),
        "{body}"
    );
    let r = s
        .client
        .delete(format!("{}/mcp", s.url))
        .bearer_auth(&token)
        .header("mcp-session-id", &sessions[0])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let r = initialize(&s, Some(&token)).await;
    assert_eq!(r.status(), StatusCode::OK);
}
