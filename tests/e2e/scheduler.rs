//! Task scheduling over HTTP (SPEC TS-1..TS-9): fencing, ordering,
//! dependencies, fairness, retries and the dead-letter queue, budgets, loop
//! guards, modes, why idle, checkpoints.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{ADMIN, TestServer};

const FAST: &str = "[scheduler]\nbackoff_base_ms = 20\nbackoff_max_ms = 200\n";

async fn create(s: &TestServer, ws: &str, body: Value) -> Value {
    let (status, task) = s.post(&format!("/v1/workspaces/{ws}/tasks"), &body).await;
    assert_eq!(status, StatusCode::CREATED, "{task}");
    task
}

async fn claim(
    s: &TestServer,
    ws: &str,
    worker: &str,
    max: u32,
    wait_ms: u64,
) -> (StatusCode, Value) {
    s.post(
        &format!("/v1/workspaces/{ws}/tasks/claim"),
        &json!({ "worker_id": worker, "max": max, "wait_ms": wait_ms }),
    )
    .await
}

async fn claim_ok(s: &TestServer, ws: &str, worker: &str, max: u32) -> Vec<Value> {
    let (status, body) = claim(s, ws, worker, max, 0).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["claims"].as_array().unwrap().clone()
}

async fn complete(s: &TestServer, ws: &str, c: &Value) -> (StatusCode, Value) {
    let id = c["task_id"].as_str().unwrap();
    s.post(
        &format!("/v1/workspaces/{ws}/tasks/{id}/complete"),
        &json!({ "token": c["token"], "output": { "ok": true } }),
    )
    .await
}

async fn fail(s: &TestServer, ws: &str, c: &Value, error: &str) -> Value {
    let id = c["task_id"].as_str().unwrap();
    let (status, body) = s
        .post(
            &format!("/v1/workspaces/{ws}/tasks/{id}/fail"),
            &json!({ "token": c["token"], "error": error }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["task"].clone()
}

async fn task(s: &TestServer, ws: &str, id: &str) -> Value {
    let (status, t) = s.get(&format!("/v1/workspaces/{ws}/tasks/{id}")).await;
    assert_eq!(status, StatusCode::OK, "{t}");
    t
}

async fn alerts(s: &TestServer, ws: &str) -> Vec<Value> {
    let (_, a) = s.get(&format!("/v1/workspaces/{ws}/alerts")).await;
    a["alerts"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_fencing_token_gets_409_and_changes_nothing() {
    let s = TestServer::start("").await;
    let t = create(
        &s,
        "w",
        json!({ "title": "fenced", "pipeline": ["work", "check"] }),
    )
    .await;
    let id = t["id"].as_str().unwrap();
    let (_, first) = s
        .post(
            "/v1/workspaces/w/tasks/claim",
            &json!({ "worker_id": "slow-worker", "lease_ms": 1000 }),
        )
        .await;
    let old = first["claims"][0].clone();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let taken = claim_ok(&s, "w", "fast-worker", 1).await;
    assert_eq!(taken[0]["task_id"], id);
    // Either this claim took the expired lease over, or the sweeper had
    // already put the task back in the queue.
    assert!(
        taken[0]["took_over"] == old["token"] || taken[0]["took_over"].is_null(),
        "{taken:?}"
    );
    assert!(taken[0]["token"].as_i64().unwrap() > old["token"].as_i64().unwrap());

    let before = task(&s, "w", id).await;
    let (status, body) = complete(&s, "w", &old).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "FAILED_PRECONDITION");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("stale fencing token"),
        "{body}"
    );
    let after = task(&s, "w", id).await;
    assert_eq!(before, after, "a refused completion changes nothing");
    assert_eq!(after["lease"]["worker"], "fast-worker");

    // The current holder completes, once: a second completion is a no-op.
    let (status, done) = complete(&s, "w", &taken[0]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        (done["completed"].as_bool(), done["task"]["stage"].as_str()),
        (Some(true), Some("check"))
    );
    let (status, again) = complete(&s, "w", &taken[0]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["completed"], false);
    let runs = task(&s, "w", id).await["stage_runs"].clone();
    let outcomes: Vec<&str> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["outcome"].as_str().unwrap_or("open"))
        .collect();
    assert_eq!(outcomes, vec!["expired", "completed"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urgent_goes_first_and_dependents_wait() {
    let s = TestServer::start("").await;
    let normal = create(
        &s,
        "w",
        json!({ "title": "normal, older", "pipeline": ["work"] }),
    )
    .await;
    let urgent = create(
        &s,
        "w",
        json!({ "title": "urgent, newer", "priority": "urgent", "pipeline": ["work"] }),
    )
    .await;
    let low = create(
        &s,
        "w",
        json!({ "title": "low", "priority": "low", "pipeline": ["work"] }),
    )
    .await;
    let dependent = create(&s, "w", json!({ "title": "after normal", "priority": "urgent", "pipeline": ["work"], "depends_on": [normal["id"]] })).await;

    let got = claim_ok(&s, "w", "w1", 10).await;
    let order: Vec<&str> = got.iter().map(|c| c["task_id"].as_str().unwrap()).collect();
    assert_eq!(
        order,
        vec![
            urgent["id"].as_str().unwrap(),
            normal["id"].as_str().unwrap(),
            low["id"].as_str().unwrap()
        ]
    );
    // The dependent waits until its dependency is done.
    assert!(claim_ok(&s, "w", "w2", 10).await.is_empty());
    let normal_claim = got.iter().find(|c| c["task_id"] == normal["id"]).unwrap();
    complete(&s, "w", normal_claim).await;
    let next = claim_ok(&s, "w", "w2", 10).await;
    assert_eq!(next.len(), 1);
    assert_eq!(next[0]["task_id"], dependent["id"]);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_workspace_progresses_next_to_a_thousand_queued() {
    let s = TestServer::start("[scheduler]\nmax_leases = 8\n").await;
    for i in 0..1000 {
        create(
            &s,
            "big",
            json!({ "title": format!("big {i}"), "pipeline": ["work"] }),
        )
        .await;
    }
    for i in 0..10 {
        create(
            &s,
            "small",
            json!({ "title": format!("small {i}"), "pipeline": ["work"] }),
        )
        .await;
    }
    // Greedy workers of the big workspace claim and sit on their leases.
    let mut held = 0;
    for w in 0..8 {
        held += claim_ok(&s, "big", &format!("big-{w}"), 10).await.len();
    }
    assert!(
        held <= 4,
        "the big workspace took {held} of 8 leases while another waited"
    );
    // The small workspace still gets through all of its tasks.
    let started = Instant::now();
    let mut done = 0;
    while done < 10 {
        for c in claim_ok(&s, "small", "small-1", 2).await {
            let (status, _) = complete(&s, "small", &c).await;
            assert_eq!(status, StatusCode::OK);
            done += 1;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "small workspace starved at {done}/10"
        );
    }
    let (_, status) = s.get("/v1/workspaces/small/status").await;
    assert_eq!(status["tasks_by_state"]["done"], 10);
    let (_, big) = s.get("/v1/workspaces/big/status").await;
    assert!(big["tasks_by_state"]["queued"].as_i64().unwrap() >= 990);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_back_off_with_jitter_then_dead_letter_and_redrive() {
    let s = TestServer::start("[scheduler]\nbackoff_base_ms = 400\nbackoff_max_ms = 5000\n").await;
    let mut first_delays = Vec::new();
    let mut dead_id = String::new();
    for n in 0..4 {
        let t = create(
            &s,
            "w",
            json!({ "title": format!("flaky {n}"), "pipeline": ["work"], "max_attempts": 3 }),
        )
        .await;
        let id = t["id"].as_str().unwrap().to_string();
        let mut delays = Vec::new();
        for attempt in 1..=3u32 {
            let c = loop {
                let (status, body) = claim(&s, "w", "w", 1, 5000).await;
                assert_eq!(status, StatusCode::OK, "{body}");
                if let Some(c) = body["claims"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|c| c["task_id"] == id.as_str())
                {
                    break c.clone();
                }
            };
            assert_eq!(c["attempt"], attempt);
            let failed_at = Instant::now();
            let errors = [
                "connection reset by peer",
                "disk quota exceeded",
                "segmentation fault in linker",
            ];
            let after = fail(&s, "w", &c, errors[attempt as usize - 1]).await;
            if attempt < 3 {
                assert_eq!(after["state"], "queued");
                let retry_at =
                    humantime::parse_rfc3339(after["next_attempt_at"].as_str().unwrap()).unwrap();
                let delay = retry_at
                    .duration_since(std::time::SystemTime::now())
                    .unwrap_or_default()
                    + failed_at.elapsed();
                delays.push(delay.as_millis() as u64);
            } else {
                assert_eq!(after["state"], "dead");
                assert_eq!(after["last_error"], "segmentation fault in linker");
            }
        }
        // Exponential: the second wait is drawn from twice the range.
        assert!((150..=450).contains(&delays[0]), "{delays:?}");
        assert!((350..=850).contains(&delays[1]), "{delays:?}");
        first_delays.push(delays[0]);
        dead_id = id;
    }
    first_delays.sort();
    first_delays.dedup_by(|a, b| a.abs_diff(*b) < 5);
    assert!(first_delays.len() >= 2, "no jitter: {first_delays:?}");

    let (_, dlq) = s.get("/v1/workspaces/w/dead-letters").await;
    let dead = dlq["dead_letters"].as_array().unwrap();
    assert_eq!(dead.len(), 4);
    assert!(
        dead.iter()
            .all(|t| t["last_error"] == "segmentation fault in linker")
    );
    let (status, redriven) = s
        .post(
            &format!("/v1/workspaces/w/dead-letters/{dead_id}/redrive"),
            &json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{redriven}");
    assert_eq!(
        (redriven["state"].as_str(), redriven["attempts"].as_i64()),
        (Some("queued"), Some(0))
    );
    let again = claim_ok(&s, "w", "w", 1).await;
    assert_eq!(again[0]["task_id"], dead_id.as_str());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_at_its_token_budget_claims_no_further_stage() {
    let s = TestServer::start("").await;
    let t = create(&s, "w", json!({ "title": "thrifty", "pipeline": ["plan", "implement"], "budget": { "tokens": 1000 } })).await;
    let id = t["id"].as_str().unwrap();
    let c = claim_ok(&s, "w", "w", 1).await.remove(0);
    let (status, _) = s
        .post(
            &format!("/v1/workspaces/w/tasks/{id}/events"),
            &json!({ "type": "token", "data": { "input_tokens": 600, "output_tokens": 250 } }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let warning = alerts(&s, "w")
        .await
        .into_iter()
        .find(|a| a["rule"] == "budget_80")
        .expect("80 % warning alert");
    assert_eq!(warning["severity"], "warning");
    assert!(
        warning["summary"].as_str().unwrap().contains("85%"),
        "{warning}"
    );
    s.post(
        &format!("/v1/workspaces/w/tasks/{id}/events"),
        &json!({ "type": "token", "data": { "tokens": 150 } }),
    )
    .await;
    complete(&s, "w", &c).await;

    let (status, body) = claim(&s, "w", "w", 1, 0).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("token budget of task"),
        "{body}"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1000 of 1000 tokens")
            || body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("of 1000 tokens"),
        "{body}"
    );
    let (_, events) = s.get(&format!("/v1/workspaces/w/tasks/{id}/events")).await;
    assert!(
        events["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "budget"),
        "{events}"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sixth_attempt_blocks_and_raises_a_critical_alert() {
    let s = TestServer::start(FAST).await;
    let t = create(
        &s,
        "w",
        json!({ "title": "looping", "pipeline": ["implement"], "max_attempts": 20 }),
    )
    .await;
    let id = t["id"].as_str().unwrap();
    for n in 1..=5 {
        let (_, body) = claim(&s, "w", "w", 1, 2000).await;
        let c = body["claims"][0].clone();
        assert_eq!(c["attempt"], n, "{body}");
        fail(
            &s,
            "w",
            &c,
            &format!("attempt {n}: a different error {}", "x".repeat(n)),
        )
        .await;
    }
    let (status, body) = claim(&s, "w", "w", 1, 1000).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body["claims"].as_array().unwrap().is_empty(), "{body}");
    let blocked = task(&s, "w", id).await;
    assert_eq!(blocked["state"], "blocked");
    assert!(
        blocked["last_error"]
            .as_str()
            .unwrap()
            .contains("infinite loop"),
        "{blocked}"
    );
    let alert = alerts(&s, "w")
        .await
        .into_iter()
        .find(|a| a["rule"] == "infinite_loop")
        .expect("infinite-loop alert");
    assert_eq!(alert["severity"], "critical");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_identical_failures_in_a_row_block_the_task() {
    let s = TestServer::start(FAST).await;
    let t = create(
        &s,
        "w",
        json!({ "title": "same failure", "pipeline": ["verify"], "max_attempts": 20 }),
    )
    .await;
    let id = t["id"].as_str().unwrap();
    for n in 1..=3 {
        let (_, body) = claim(&s, "w", "w", 1, 2000).await;
        let c = body["claims"][0].clone();
        // The same failure with different numbers and paths.
        let after = fail(
            &s,
            "w",
            &c,
            &format!("test failed: 3{n} assertions in /tmp/run-{n}/lib.rs at 0x7f{n}a"),
        )
        .await;
        assert_eq!(
            after["state"],
            if n < 3 { "queued" } else { "blocked" },
            "{after}"
        );
    }
    let blocked = task(&s, "w", id).await;
    assert!(
        blocked["last_error"]
            .as_str()
            .unwrap()
            .contains("the same failure 3 times in a row"),
        "{blocked}"
    );
    let alert = alerts(&s, "w")
        .await
        .into_iter()
        .find(|a| a["rule"] == "same_failure")
        .expect("alert");
    assert_eq!(alert["severity"], "critical");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn modes_read_only_minimal_and_emergency_stop() {
    let s = TestServer::start("").await;
    let set = |mode: &'static str| json!({ "mode": mode, "reason": "test" });

    // minimal skips think and review.
    s.put("/v1/workspaces/w/mode", &set("minimal")).await;
    create(&s, "w", json!({ "title": "pipeline" })).await;
    let mut stages = Vec::new();
    loop {
        let claims = claim_ok(&s, "w", "w", 1).await;
        let Some(c) = claims.first() else { break };
        stages.push(c["stage"].as_str().unwrap().to_string());
        complete(&s, "w", c).await;
    }
    assert_eq!(
        stages,
        vec!["spec", "plan", "implement", "verify", "pr", "monitor"]
    );

    // emergency-stop refuses claims but keeps in-flight leases.
    s.put("/v1/workspaces/w/mode", &set("normal")).await;
    create(
        &s,
        "w",
        json!({ "title": "in flight", "pipeline": ["a", "b"] }),
    )
    .await;
    create(&s, "w", json!({ "title": "waiting", "pipeline": ["a"] })).await;
    let held = claim_ok(&s, "w", "w", 1).await.remove(0);
    s.put("/v1/workspaces/w/mode", &set("emergency-stop")).await;
    let (status, body) = claim(&s, "w", "w", 1, 0).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("emergency-stop mode"),
        "{body}"
    );
    let id = held["task_id"].as_str().unwrap();
    let (status, _) = s
        .post(
            &format!("/v1/workspaces/w/tasks/{id}/heartbeat"),
            &json!({ "token": held["token"] }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = complete(&s, "w", &held).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "an in-flight lease completes in emergency-stop"
    );

    // read-only refuses create and claim, naming the mode.
    s.put("/v1/workspaces/w/mode", &set("read-only")).await;
    let (status, body) = s
        .post("/v1/workspaces/w/tasks", &json!({ "title": "no" }))
        .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["error"]["code"], "FAILED_PRECONDITION");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only mode"),
        "{body}"
    );
    let (status, body) = claim(&s, "w", "w", 1, 0).await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("read-only mode"),
        "{body}"
    );
    s.stop().await;
}

async fn why(s: &TestServer, ws: &str) -> (String, String) {
    let (status, body) = s.get(&format!("/v1/workspaces/{ws}/status")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["idle"], true, "{body}");
    (
        body["why_idle"]["reason"].as_str().unwrap().to_string(),
        body["why_idle"]["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_names_why_a_workspace_is_idle() {
    let s = TestServer::start("").await;
    assert_eq!(why(&s, "empty").await.0, "no_tasks");

    let a = create(&s, "deps", json!({ "title": "a", "pipeline": ["x"] })).await;
    create(
        &s,
        "deps",
        json!({ "title": "b", "pipeline": ["x"], "depends_on": [a["id"]] }),
    )
    .await;
    s.post(
        &format!(
            "/v1/workspaces/deps/tasks/{}/cancel",
            a["id"].as_str().unwrap()
        ),
        &json!({}),
    )
    .await;
    assert_eq!(why(&s, "deps").await.0, "all_blocked_on_dependencies");

    s.put(
        "/v1/workspaces/budget/settings",
        &json!({ "hourly_budget": { "tokens": 100 } }),
    )
    .await;
    let t = create(
        &s,
        "budget",
        json!({ "title": "spender", "pipeline": ["x"] }),
    )
    .await;
    s.post(
        &format!(
            "/v1/workspaces/budget/tasks/{}/events",
            t["id"].as_str().unwrap()
        ),
        &json!({ "type": "token", "data": { "tokens": 100 } }),
    )
    .await;
    let (reason, message) = why(&s, "budget").await;
    assert_eq!(reason, "budget_spent");
    assert!(message.contains("hourly token budget"), "{message}");

    create(&s, "frozen", json!({ "title": "x", "pipeline": ["x"] })).await;
    s.put(
        "/v1/workspaces/frozen/mode",
        &json!({ "mode": "read-only", "reason": "maintenance" }),
    )
    .await;
    let (reason, message) = why(&s, "frozen").await;
    assert_eq!(reason, "mode");
    assert!(
        message.contains("read-only") && message.contains("maintenance"),
        "{message}"
    );

    create(
        &s,
        "breaker",
        json!({ "title": "needs mcp", "pipeline": ["x"], "requires": ["process:mcp"] }),
    )
    .await;
    let (status, _) = s
        .put(
            "/v1/breakers/process:mcp",
            &json!({ "state": "open", "reason": "mcp server down" }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (reason, message) = why(&s, "breaker").await;
    assert_eq!(reason, "breaker_open");
    assert!(message.contains("process:mcp"), "{message}");
    assert!(claim_ok(&s, "breaker", "w", 1).await.is_empty());
    s.put("/v1/breakers/process:mcp", &json!({ "state": "closed" }))
        .await;
    assert_eq!(claim_ok(&s, "breaker", "w", 1).await.len(), 1);

    create(&s, "lonely", json!({ "title": "x", "pipeline": ["x"] })).await;
    let (reason, message) = why(&s, "lonely").await;
    assert_eq!(reason, "no_workers");
    assert!(message.contains("no worker"), "{message}");

    // And when something runs, the status says what.
    let c = claim_ok(&s, "lonely", "w9", 1).await.remove(0);
    let (_, body) = s.get("/v1/workspaces/lonely/status").await;
    assert_eq!(body["idle"], false);
    assert_eq!(body["running"][0]["task_id"], c["task_id"]);
    assert_eq!(body["running"][0]["worker"], "w9");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_sleep_wake_cycles_never_return_a_corrupt_checkpoint() {
    use sha2::Digest as _;
    use sqlx::ConnectOptions as _;
    let s = TestServer::start("").await;
    let db = s.dir.path().join("data/warden.db");
    let mut raw = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .connect()
        .await
        .unwrap();
    let url = |p: &str| format!("{}/v1/workspaces/w/agents/agent-1/{p}", s.url);
    let mut newest_good: Option<(i64, Vec<u8>)> = None;
    let (mut torn, mut corrupted) = (0, 0);
    for i in 0..1000u32 {
        let blob: Vec<u8> = (0..(64 + (i * 37) % 4096))
            .map(|j| (i.wrapping_mul(31).wrapping_add(j)) as u8)
            .collect();
        let sha = hex::encode(sha2::Sha256::digest(&blob));
        if i % 10 == 3 {
            // A torn upload: the body lost its tail on the way.
            let resp = s
                .client
                .post(url("sleep"))
                .bearer_auth(ADMIN)
                .header("x-checksum-sha256", &sha)
                .body(blob[..blob.len() / 2].to_vec())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
            torn += 1;
        } else {
            let resp = s
                .client
                .post(url("sleep"))
                .bearer_auth(ADMIN)
                .header("x-checksum-sha256", &sha)
                .body(blob.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::CREATED);
            let v: Value = resp.json().await.unwrap();
            let version = v["version"].as_i64().unwrap();
            if i % 7 == 5 {
                // Corrupt the stored bytes behind Warden's back.
                sqlx::query(
                    "UPDATE checkpoints SET data = $1 WHERE agent_id = 'agent-1' AND version = $2",
                )
                .bind(&blob[1..])
                .bind(version)
                .execute(&mut raw)
                .await
                .unwrap();
                corrupted += 1;
            } else {
                newest_good = Some((version, blob.clone()));
            }
        }
        let resp = s
            .client
            .get(url("wake"))
            .bearer_auth(ADMIN)
            .send()
            .await
            .unwrap();
        match &newest_good {
            None => assert_eq!(resp.status(), StatusCode::NOT_FOUND),
            Some((version, data)) => {
                assert_eq!(resp.status(), StatusCode::OK);
                let got_version: i64 = resp.headers()["x-checkpoint-version"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                let got_sha = resp.headers()["x-checksum-sha256"]
                    .to_str()
                    .unwrap()
                    .to_string();
                let body = resp.bytes().await.unwrap();
                assert_eq!(got_version, *version, "cycle {i}");
                assert_eq!(&body[..], &data[..], "cycle {i}: wrong bytes");
                assert_eq!(got_sha, hex::encode(sha2::Sha256::digest(&body)));
            }
        }
    }
    eprintln!(
        "1000 cycles: {torn} torn uploads refused, {corrupted} stored versions corrupted and skipped"
    );
    s.stop().await;
}
