//! Agent threads over HTTP (SPEC TH-1, TH-2, TH-5; issue 17): an
//! executor and a reviewer (two agent tokens) and a human (through an
//! operator token) in one thread; directed and broadcast delivery; a
//! long-polling reader woken by a post; idempotent retries; workspace
//! isolation; bad input answered 400 INVALID_ARGUMENT, in a burst too;
//! audited state changes, override-close only with its prefix.

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{ADMIN, TestServer};

const WS: &str = "proj";

/// A token of `ws` named `name` with `role`.
async fn token(s: &TestServer, ws: &str, name: &str, role: &str) -> String {
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tokens"),
            &json!({ "name": name, "role": role }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    body["token"].as_str().unwrap().to_string()
}

/// The people of one thread: two agents, an operator acting for the
/// human `alice`, and the thread's id.
struct Crew {
    executor: String,
    reviewer: String,
    ops: String,
    thread: String,
}

impl Crew {
    async fn start(s: &TestServer) -> Crew {
        let executor = token(s, WS, "executor", "agent").await;
        let reviewer = token(s, WS, "reviewer", "agent").await;
        let ops = token(s, WS, "ops", "operator").await;
        let (status, body) = s
            .request(
                Method::POST,
                &format!("/v1/workspaces/{WS}/threads"),
                Some(&executor),
                Some(&json!({
                    "title": "fix the login bug",
                    "participants": [
                        { "name": "executor", "kind": "agent", "role": "executor" },
                        { "name": "reviewer", "kind": "agent", "role": "reviewer" },
                        { "name": "alice", "kind": "human", "role": "approver" }
                    ]
                })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        assert_eq!(body["thread"]["state"], "active", "{body}");
        assert_eq!(body["thread"]["created_by"], "executor", "{body}");
        assert_eq!(body["participants"].as_array().unwrap().len(), 3);
        Crew {
            executor,
            reviewer,
            ops,
            thread: body["thread"]["id"].as_str().unwrap().to_string(),
        }
    }

    fn path(&self, rest: &str) -> String {
        format!("/v1/workspaces/{WS}/threads/{}{rest}", self.thread)
    }

    async fn post(&self, s: &TestServer, token: &str, body: Value) -> (StatusCode, Value) {
        s.request(
            Method::POST,
            &self.path("/messages"),
            Some(token),
            Some(&body),
        )
        .await
    }

    async fn read(&self, s: &TestServer, token: &str, query: &str) -> Value {
        let (status, body) = s
            .request(
                Method::GET,
                &self.path(&format!("/messages?{query}")),
                Some(token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{query}: {body}");
        body
    }
}

fn seqs(read: &Value) -> Vec<i64> {
    read["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["seq"].as_i64().unwrap())
        .collect()
}

fn assert_error(status: StatusCode, body: &Value, want: StatusCode, code: &str) {
    assert_eq!(status, want, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

#[tokio::test]
async fn agents_and_a_human_get_what_is_addressed_to_them() {
    let s = TestServer::start("").await;
    let crew = Crew::start(&s).await;
    let broadcast = json!({ "schema_version": 1, "body": { "text": "starting on it" } });
    let (status, m1) = crew.post(&s, &crew.executor, broadcast).await;
    assert_eq!(status, StatusCode::CREATED, "{m1}");
    assert_eq!(
        (m1["seq"].as_i64(), &m1["sender"]),
        (Some(1), &json!("executor"))
    );
    assert_eq!(m1["recipients"], Value::Null);
    let directed = json!({
        "schema_version": 1, "kind": "finding", "recipients": ["reviewer"],
        "body": { "text": "the diff is ready" }
    });
    let (status, m2) = crew.post(&s, &crew.executor, directed).await;
    assert_eq!(status, StatusCode::CREATED, "{m2}");
    assert_eq!(m2["recipients"], json!(["reviewer"]));
    // The human speaks through an operator token, as herself.
    let human =
        json!({ "schema_version": 1, "kind": "decision", "sender": "alice", "body": "ship it" });
    let (status, m3) = crew.post(&s, &crew.ops, human).await;
    assert_eq!(status, StatusCode::CREATED, "{m3}");
    assert_eq!(m3["sender"], "alice");

    // Before anyone reads: who has what unread.
    let (_, detail) = s
        .request(Method::GET, &crew.path(""), Some(&crew.ops), None)
        .await;
    let unread: Vec<(String, i64)> = detail["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["unread"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        unread,
        [
            ("executor".into(), 1),
            ("reviewer".into(), 3),
            ("alice".into(), 1)
        ],
        "{detail}"
    );

    // Each reads what is addressed to it, and its cursor moves.
    let reviewer = crew.read(&s, &crew.reviewer, "after=0").await;
    assert_eq!(seqs(&reviewer), [1, 2, 3], "{reviewer}");
    assert_eq!(reviewer["reader"], "reviewer");
    let alice = crew.read(&s, &crew.ops, "after=0&for=alice").await;
    assert_eq!(
        seqs(&alice),
        [1, 3],
        "the directed message is not hers: {alice}"
    );
    let executor = crew.read(&s, &crew.executor, "after=0").await;
    assert_eq!(seqs(&executor), [1, 2, 3], "its own directed message too");
    // An operator without `for` sees everything and moves no cursor.
    let all = crew.read(&s, &crew.ops, "after=1").await;
    assert_eq!((seqs(&all), &all["reader"]), (vec![2, 3], &Value::Null));
    let (_, detail) = s
        .request(Method::GET, &crew.path(""), Some(&crew.ops), None)
        .await;
    for p in detail["participants"].as_array().unwrap() {
        assert_eq!(
            (p["unread"].as_i64(), p["last_read_seq"].as_i64()),
            (Some(0), Some(3)),
            "{p}"
        );
    }

    // An agent cannot speak or read for someone else.
    let (status, body) = crew
        .post(
            &s,
            &crew.reviewer,
            json!({ "schema_version": 1, "sender": "alice", "body": "lgtm" }),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (status, body) = s
        .request(
            Method::GET,
            &crew.path("/messages?for=executor"),
            Some(&crew.reviewer),
            None,
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    // An agent token that is not a participant reads nothing.
    let outsider = token(&s, WS, "outsider", "agent").await;
    let (status, body) = s
        .request(Method::GET, &crew.path("/messages"), Some(&outsider), None)
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");

    // The reviewer escalates (an agent participant may), an operator
    // unblocks; both audited with their actor. An outsider may not.
    let reason = json!({ "reason": "the tests disagree with the spec" });
    let (status, body) = s
        .request(
            Method::POST,
            &crew.path("/escalate"),
            Some(&outsider),
            Some(&reason),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (status, body) = s
        .request(
            Method::POST,
            &crew.path("/escalate"),
            Some(&crew.reviewer),
            Some(&reason),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body["from"], &body["to"]),
        (&json!("active"), &json!("blocked"))
    );
    let (status, body) = s
        .request(
            Method::POST,
            &crew.path("/unblock"),
            Some(&crew.reviewer),
            Some(&reason),
        )
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (status, body) = s
        .request(
            Method::POST,
            &crew.path("/unblock"),
            Some(&crew.ops),
            Some(&json!({ "reason": "spec wins" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["thread"]["state"], "active");
    // Unblocking an active thread is refused.
    let (status, body) = s
        .request(
            Method::POST,
            &crew.path("/unblock"),
            Some(&crew.ops),
            Some(&json!({ "reason": "again" })),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "FAILED_PRECONDITION");
    let (_, audit) = s
        .request(Method::GET, &crew.path("/audit"), Some(&crew.ops), None)
        .await;
    let trail: Vec<(String, String)> = audit["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().into(),
                e["actor"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        trail,
        [
            ("thread.state".into(), "ops".into()),
            ("thread.state".into(), "reviewer".into()),
            ("thread.create".into(), "executor".into())
        ],
        "{audit}"
    );
    s.stop().await;
}

#[tokio::test]
async fn a_long_polling_reader_is_woken_by_a_post() {
    let s = TestServer::start("").await;
    let crew = Crew::start(&s).await;
    // Nothing to read: empty once the wait is over.
    let started = Instant::now();
    let empty = crew.read(&s, &crew.reviewer, "after=0&wait=1s").await;
    let waited = started.elapsed();
    assert_eq!(seqs(&empty), Vec::<i64>::new());
    assert_eq!(empty["next_after"], 0);
    assert!(waited >= Duration::from_millis(900), "{waited:?}");

    // A reader waiting up to 30 s answers as soon as a message comes.
    let url = format!("{}{}", s.url, crew.path("/messages?after=0&wait=30s"));
    let (client, reviewer) = (s.client.clone(), crew.reviewer.clone());
    let reader = tokio::spawn(async move {
        let resp = client.get(url).bearer_auth(reviewer).send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        (status, body, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posted_at = Instant::now();
    let (status, m) = crew
        .post(
            &s,
            &crew.executor,
            json!({ "schema_version": 1, "body": "wake up" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let (status, body, answered_at) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the long-poll answers well before its 30 s wait")
        .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(seqs(&body), [1], "{body}");
    let latency = answered_at.saturating_duration_since(posted_at);
    println!("thread long-poll: post to reader latency {latency:?}");
    assert!(latency < Duration::from_secs(2), "{latency:?}");

    // A message the reader may not see does not end its wait.
    let url = format!(
        "{}{}",
        s.url,
        crew.path("/messages?after=1&wait=1500ms&for=alice")
    );
    let (client, ops) = (s.client.clone(), crew.ops.clone());
    let reader = tokio::spawn(async move {
        let started = Instant::now();
        let resp = client.get(url).bearer_auth(ops).send().await.unwrap();
        (resp.json::<Value>().await.unwrap(), started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _) = crew
        .post(
            &s,
            &crew.executor,
            json!({ "schema_version": 1, "recipients": ["reviewer"], "body": "psst" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (body, waited) = reader.await.unwrap();
    assert_eq!(seqs(&body), Vec::<i64>::new(), "{body}");
    assert!(waited >= Duration::from_millis(1400), "{waited:?}");
    s.stop().await;
}

#[tokio::test]
async fn a_retried_post_returns_the_original_message() {
    let s = TestServer::start("").await;
    let crew = Crew::start(&s).await;
    let url = format!("{}{}", s.url, crew.path("/messages"));
    let send = |body: Value, key: Option<&'static str>| {
        let mut req = s.client.post(&url).bearer_auth(&crew.executor).json(&body);
        if let Some(key) = key {
            req = req.header("Idempotency-Key", key);
        }
        async move {
            let resp = req.send().await.unwrap();
            (resp.status(), resp.json::<Value>().await.unwrap())
        }
    };
    let first = json!({ "schema_version": 1, "body": "once" });
    let (status, original) = send(first.clone(), Some("k-1")).await;
    assert_eq!(status, StatusCode::CREATED, "{original}");
    let (status, again) = send(
        json!({ "schema_version": 1, "body": "twice?" }),
        Some("k-1"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again, original, "the retry answers the original message");
    // The key in the body is the same key.
    let (status, again) = send(
        json!({ "schema_version": 1, "body": "x", "idempotency_key": "k-1" }),
        None,
    )
    .await;
    assert_eq!((status, &again), (StatusCode::OK, &original));
    // Header and body must agree.
    let (status, body) = send(
        json!({ "schema_version": 1, "body": "x", "idempotency_key": "k-2" }),
        Some("k-3"),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    // Another key is another message.
    let (status, other) = send(first, Some("k-4")).await;
    assert_eq!(
        (status, other["seq"].as_i64()),
        (StatusCode::CREATED, Some(2))
    );
    let (_, detail) = s
        .request(Method::GET, &crew.path(""), Some(&crew.ops), None)
        .await;
    assert_eq!(detail["thread"]["last_seq"], 2, "{detail}");
    s.stop().await;
}

#[tokio::test]
async fn a_token_of_another_workspace_is_refused() {
    let s = TestServer::start("").await;
    let crew = Crew::start(&s).await;
    let stranger = token(&s, "other", "executor", "operator").await;
    for (method, path, body) in [
        (Method::GET, crew.path(""), None),
        (Method::GET, crew.path("/messages"), None),
        (Method::GET, crew.path("/audit"), None),
        (
            Method::POST,
            crew.path("/messages"),
            Some(json!({ "schema_version": 1, "body": "hi" })),
        ),
        (
            Method::POST,
            crew.path("/participants"),
            Some(json!({ "name": "x", "kind": "agent", "role": "r" })),
        ),
        (
            Method::POST,
            crew.path("/close"),
            Some(json!({ "reason": "mine now" })),
        ),
        (Method::GET, format!("/v1/workspaces/{WS}/threads"), None),
    ] {
        let (status, answer) = s
            .request(method, &path, Some(&stranger), body.as_ref())
            .await;
        assert_error(status, &answer, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    }
    // In its own workspace the thread does not exist.
    let (status, answer) = s
        .request(
            Method::GET,
            &format!("/v1/workspaces/other/threads/{}", crew.thread),
            Some(&stranger),
            None,
        )
        .await;
    assert_error(status, &answer, StatusCode::NOT_FOUND, "NOT_FOUND");
    let (_, detail) = s
        .request(Method::GET, &crew.path(""), Some(ADMIN), None)
        .await;
    assert_eq!(detail["thread"]["last_seq"], 0, "{detail}");
    s.stop().await;
}

#[tokio::test]
async fn bad_posts_are_invalid_arguments_even_in_a_burst() {
    let s = TestServer::start("[http]\nrate_limit_per_sec = 100000\n").await;
    let crew = Crew::start(&s).await;
    let cases = [
        (json!({ "schema_version": 2, "body": "hi" }), "speaks 1"),
        (
            json!({ "schema_version": 0, "body": "hi" }),
            "schema_version 0",
        ),
        (json!({ "body": "hi" }), "schema_version"),
        (
            json!({ "schema_version": "1", "body": "hi" }),
            "schema_version",
        ),
        (json!({ "schema_version": 1 }), "body"),
        (json!({ "schema_version": 1, "body": null }), "null"),
        (
            json!({ "schema_version": 1, "body": "x", "kind": "rant" }),
            "rant",
        ),
        (
            json!({ "schema_version": 1, "body": "x", "recipients": ["nobody"] }),
            "nobody",
        ),
        (
            json!({ "schema_version": 1, "body": "x", "recipients": [] }),
            "broadcast",
        ),
        (
            json!({ "schema_version": 1, "body": "x", "colour": "red" }),
            "colour",
        ),
        (
            json!({ "schema_version": 1, "body": "x".repeat(70_000) }),
            "bytes",
        ),
        (json!(["not", "an", "object"]), "invalid JSON"),
    ];
    for (body, says) in cases {
        let (status, answer) = crew.post(&s, &crew.executor, body.clone()).await;
        assert_error(status, &answer, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{body}: {message}");
    }
    // Not JSON at all.
    let url = format!("{}{}", s.url, crew.path("/messages"));
    let resp = s
        .client
        .post(&url)
        .bearer_auth(&crew.executor)
        .header("content-type", "application/json")
        .body("{\"schema_version\": 1, \"body\":")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // A burst of 1,000 malformed posts, 32 at a time: every one a 400.
    let bodies: Vec<String> = (0..1_000)
        .map(|i| match i % 4 {
            0 => format!("{{\"schema_version\": {}, \"body\": \"x\"}}", 2 + i),
            1 => "{\"schema_version\": 1, \"body\": ".to_string(),
            2 => format!("{{\"schema_version\": 1, \"body\": \"x\", \"kind\": \"k{i}\"}}"),
            _ => format!("{{\"schema_version\": 1, \"body\": \"x\", \"recipients\": [\"r{i}\"]}}"),
        })
        .collect();
    let statuses: Vec<StatusCode> = futures::stream::iter(bodies)
        .map(|body| {
            let req = s
                .client
                .post(&url)
                .bearer_auth(&crew.executor)
                .header("content-type", "application/json")
                .body(body);
            async move { req.send().await.unwrap().status() }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let not_400: Vec<&StatusCode> = statuses
        .iter()
        .filter(|s| **s != StatusCode::BAD_REQUEST)
        .collect();
    assert_eq!(statuses.len(), 1_000);
    assert!(
        not_400.is_empty(),
        "{} answers were not 400: {not_400:?}",
        not_400.len()
    );
    // Nothing was posted, and the thread still works.
    let (status, m) = crew
        .post(
            &s,
            &crew.executor,
            json!({ "schema_version": 1, "body": "still here" }),
        )
        .await;
    assert_eq!(
        (status, m["seq"].as_i64()),
        (StatusCode::CREATED, Some(1)),
        "{m}"
    );
    s.stop().await;
}

#[tokio::test]
async fn override_close_needs_a_human_override_reason() {
    let s = TestServer::start("").await;
    let crew = Crew::start(&s).await;
    let path = crew.path("/override-close");
    let (status, body) = s
        .request(
            Method::POST,
            &path,
            Some(&crew.ops),
            Some(&json!({ "reason": "done" })),
        )
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "INVALID_ARGUMENT");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("human_override:"),
        "{body}"
    );
    let reason = json!({ "reason": "human_override: shipping as is" });
    let (status, body) = s
        .request(Method::POST, &path, Some(&crew.executor), Some(&reason))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "PERMISSION_DENIED");
    let (_, detail) = s
        .request(Method::GET, &crew.path(""), Some(&crew.ops), None)
        .await;
    assert_eq!(detail["thread"]["state"], "active", "{detail}");

    let (status, body) = s
        .request(Method::POST, &path, Some(&crew.ops), Some(&reason))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["to"], "closed");
    assert_eq!(
        body["thread"]["state_reason"],
        "human_override: shipping as is"
    );
    // Closed: no more messages or participants.
    let (status, body) = crew
        .post(
            &s,
            &crew.executor,
            json!({ "schema_version": 1, "body": "one more thing" }),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "FAILED_PRECONDITION");
    let (status, body) = s
        .request(
            Method::POST,
            &crew.path("/participants"),
            Some(&crew.ops),
            Some(&json!({ "name": "bob", "kind": "human", "role": "approver" })),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "FAILED_PRECONDITION");
    let (_, audit) = s
        .request(Method::GET, &crew.path("/audit"), Some(&crew.ops), None)
        .await;
    let newest = &audit["entries"][0];
    assert_eq!(
        (&newest["action"], &newest["actor"]),
        (&json!("thread.state"), &json!("ops")),
        "{audit}"
    );
    assert_eq!(
        newest["detail"]["reason"], "human_override: shipping as is",
        "{audit}"
    );
    let (_, list) = s
        .request(
            Method::GET,
            &format!("/v1/workspaces/{WS}/threads?state=closed"),
            Some(&crew.ops),
            None,
        )
        .await;
    assert_eq!(list["threads"][0]["id"], crew.thread.as_str(), "{list}");
    s.stop().await;
}

/// Two hosts on one PostgreSQL: a reader long-polling on one is woken by
/// a post on the other (the store's NOTIFY, the domain's LISTEN).
#[tokio::test]
async fn a_reader_on_another_host_is_woken_through_postgres() {
    let name = "a_reader_on_another_host_is_woken_through_postgres";
    let Some(pg) = crate::PgSchema::create(name).await else {
        return;
    };
    let config = format!("database_url = \"{}\"\n", pg.url);
    let one = TestServer::start(&config).await;
    let two = TestServer::start(&config).await;
    let crew = Crew::start(&one).await;
    let url = format!("{}{}", one.url, crew.path("/messages?after=0&wait=30s"));
    let (client, reviewer) = (one.client.clone(), crew.reviewer.clone());
    let reader = tokio::spawn(async move {
        let resp = client.get(url).bearer_auth(reviewer).send().await.unwrap();
        (resp.json::<Value>().await.unwrap(), Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let posted_at = Instant::now();
    let (status, m) = crew
        .post(
            &two,
            &crew.executor,
            json!({ "schema_version": 1, "body": "from host two" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{m}");
    let (body, answered_at) = tokio::time::timeout(Duration::from_secs(10), reader)
        .await
        .expect("the reader on host one is woken well before its 30 s wait")
        .unwrap();
    assert_eq!(seqs(&body), [1], "{body}");
    let latency = answered_at.saturating_duration_since(posted_at);
    println!("thread long-poll across hosts (PostgreSQL): post to reader latency {latency:?}");
    assert!(latency < Duration::from_secs(2), "{latency:?}");
    two.stop().await;
    one.stop().await;
    pg.drop().await;
}

/// Issue 17's concurrency acceptance: 8 writers post 1,000 messages each
/// into one thread through 3 hosts on one PostgreSQL. The thread's
/// sequence is exactly 1..=8,000 (no gap, no duplicate), every retry of a
/// post (on another host, at once) is answered with the original message,
/// and nothing is answered 5xx.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_writers_on_three_hosts_number_without_gaps() {
    const WRITERS: usize = 8;
    const EACH: usize = 1_000;
    let name = "eight_writers_on_three_hosts_number_without_gaps";
    let Some(pg) = crate::PgSchema::create(name).await else {
        return;
    };
    // The writers share the executor's token; the per-token rate limit is
    // not what this test is about.
    let config = format!(
        "database_url = \"{}\"\n[http]\nrate_limit_per_sec = 1000000\n",
        pg.url
    );
    let hosts = std::sync::Arc::new([
        TestServer::start(&config).await,
        TestServer::start(&config).await,
        TestServer::start(&config).await,
    ]);
    let crew = std::sync::Arc::new(Crew::start(&hosts[0]).await);
    let started = Instant::now();
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let (hosts, crew) = (hosts.clone(), crew.clone());
        writers.push(tokio::spawn(async move {
            let mut seen = Vec::with_capacity(EACH);
            for i in 0..EACH {
                let key = format!("w{w}-{i}");
                let body = json!({ "schema_version": 1, "body": { "w": w, "i": i }, "idempotency_key": key });
                let host = &hosts[(w + i) % 3];
                let (status, m) = crew.post(host, &crew.executor, body.clone()).await;
                assert_eq!(status, StatusCode::CREATED, "{m}");
                // Every 10th post is retried at once on the next host.
                if i % 10 == 0 {
                    let other = &hosts[(w + i + 1) % 3];
                    let (status, again) = crew.post(other, &crew.executor, body).await;
                    assert_eq!(status, StatusCode::OK, "{again}");
                    assert_eq!(again, m, "a retry is answered with the original message");
                }
                seen.push(m["seq"].as_i64().unwrap());
            }
            seen
        }));
    }
    let mut posted = Vec::with_capacity(WRITERS * EACH);
    for w in writers {
        posted.extend(w.await.unwrap());
    }
    let took = started.elapsed();
    println!(
        "{} posts (and {} retries) from {WRITERS} writers through 3 hosts in {took:?}: {:.0} posts/s",
        WRITERS * EACH,
        WRITERS * EACH / 10,
        (WRITERS * EACH) as f64 / took.as_secs_f64()
    );
    posted.sort_unstable();
    let expected: Vec<i64> = (1..=(WRITERS * EACH) as i64).collect();
    assert_eq!(posted, expected, "the posts' seqs are 1..=N, each once");
    // Read back page by page on a third host: the same, in order.
    let mut read = Vec::new();
    let mut after = 0;
    loop {
        let page = crew
            .read(&hosts[2], &crew.ops, &format!("after={after}&limit=500"))
            .await;
        let seqs = seqs(&page);
        if seqs.is_empty() {
            break;
        }
        after = *seqs.last().unwrap();
        read.extend(seqs);
    }
    assert_eq!(read, expected, "read back in order, without gaps");
    let hosts = std::sync::Arc::try_unwrap(hosts).ok().unwrap();
    for h in hosts {
        h.stop().await;
    }
    pg.drop().await;
}
