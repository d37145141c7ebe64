//! The control API over HTTP, as a user in another process drives it.

use std::time::Duration;

use serde_json::{Value, json};
use warden_test_upstream::{Behavior, ControlRequest, Error, Options, Stats, Upstream};

use crate::{chat_body, chat_url, client, openai_error, post, start, start_with, stream_body};

fn url(u: &Upstream, path: &str) -> String {
    format!("http://{}{path}", u.addr())
}

async fn control(c: &reqwest::Client, u: &Upstream, body: Value) -> reqwest::Response {
    post(c, &url(u, "/_control"), &body).await
}

async fn get(c: &reqwest::Client, u: &Upstream, path: &str) -> Value {
    c.get(url(u, path))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("a JSON body")
}

#[tokio::test]
async fn the_control_endpoint_switches_behaviour_at_run_time() {
    let u = start("primary").await;
    let c = client();
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 200);

    let r = control(
        &c,
        &u,
        json!({ "behavior": { "mode": "fail", "status": 503 } }),
    )
    .await;
    assert_eq!(r.status(), 200);
    let stats: Stats = r.json().await.unwrap();
    assert_eq!(stats.behavior, Behavior::Fail { status: 503 });
    assert_eq!(u.handle().behavior(), Behavior::Fail { status: 503 });
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 503);

    // Control routes answer whatever the behaviour, and are not counted.
    for mode in [
        json!({ "mode": "hang" }),
        json!({ "mode": "drop_connection" }),
    ] {
        let r = control(&c, &u, json!({ "behavior": mode })).await;
        assert_eq!(r.status(), 200);
        assert_eq!(get(&c, &u, "/_stats").await["behavior"], mode);
    }

    let r = control(
        &c,
        &u,
        json!({ "behavior": { "mode": "fail_next", "count": 1, "status": 500 }, "clear": true }),
    )
    .await;
    let stats: Value = r.json().await.unwrap();
    assert_eq!(stats["requests"], 0, "cleared");
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 500);
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 200);

    control(
        &c,
        &u,
        json!({ "behavior": { "mode": "slow", "delay_ms": 250 } }),
    )
    .await;
    let started = std::time::Instant::now();
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(250));

    control(&c, &u, json!({ "behavior": { "mode": "healthy" } })).await;
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 200);
}

#[tokio::test]
async fn the_control_endpoint_sets_stream_pacing_and_recording() {
    let u = start("p").await;
    let c = client();
    let stats: Stats = control(
        &c,
        &u,
        json!({ "chunks": 2, "chunk_delay_ms": 30, "record": false }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(
        (stats.chunks, stats.chunk_delay_ms, stats.record),
        (2, 30, false)
    );
    let text = post(&c, &chat_url(&u), &stream_body(false))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(
        crate::events(&text).len(),
        5,
        "role, 2 words, finish, [DONE]"
    );
    assert!(u.handle().requests().is_empty(), "not recording");
    assert_eq!(u.handle().request_count(), 1, "but counting");
    // Timings of the last stream are kept either way, with the Unix clock
    // for other processes.
    let timings = get(&c, &u, "/_timings").await;
    let last = timings["last_stream"].as_array().unwrap();
    assert_eq!(last.len(), 5);
    assert_eq!(last[4]["index"], 4);
    let gap = last[2]["unix_nanos"].as_u64().unwrap() - last[1]["unix_nanos"].as_u64().unwrap();
    assert!(gap >= 25_000_000, "{gap}");
    assert_eq!(timings["streams"], json!([]), "not recording");
}

#[tokio::test]
async fn stats_and_requests_report_what_was_received() {
    let u = start_with(Options {
        api_key: Some("k".into()),
        ..Options::default()
    })
    .await;
    let c = client();
    let send = |body: Value| c.post(chat_url(&u)).bearer_auth("k").json(&body).send();
    send(chat_body("x")).await.unwrap();
    send(json!({ "model": "model-b", "messages": [{ "role": "user", "content": "y" }] }))
        .await
        .unwrap();
    send(json!({ "model": "model-b" })).await.unwrap();
    send(stream_body(false))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    post(&c, &chat_url(&u), &chat_body("no key")).await;
    c.get(format!("{}/models", u.base_url()))
        .bearer_auth("k")
        .send()
        .await
        .unwrap();
    let stats = get(&c, &u, "/_stats").await;
    assert_eq!(
        stats,
        json!({
            "name": "stand-in",
            "behavior": { "mode": "healthy" },
            "chunks": 5,
            "chunk_delay_ms": 0,
            "record": true,
            "requests": 6,
            "by_path": { "/v1/chat/completions": 5, "/v1/models": 1 },
            "by_model": { "model-a": 3, "model-b": 2 },
            "by_status": { "200": 4, "400": 1, "401": 1 },
            "streams": 1,
            "dropped": 0,
        })
    );
    let requests = get(&c, &u, "/_requests").await;
    let requests = requests.as_array().unwrap();
    assert_eq!(requests.len(), 6);
    assert_eq!(requests[1]["model"], "model-b");
    assert_eq!(requests[1]["authorization"], "Bearer k");
    assert_eq!(requests[1]["body"]["messages"][0]["content"], "y");
    assert_eq!(requests[4]["authorization"], Value::Null);
    assert_eq!(requests[5]["path"], "/v1/models");
    assert_eq!(
        serde_json::from_value::<Stats>(stats).unwrap(),
        u.handle().stats()
    );
}

#[tokio::test]
async fn bad_control_requests_are_refused_and_change_nothing() {
    let u = start("c").await;
    let c = client();
    for body in [
        json!({ "behavior": { "mode": "explode" } }),
        json!({ "behavior": { "mode": "fail" } }),
        json!({ "behaviour": { "mode": "hang" } }),
        json!({ "behavior": { "mode": "fail", "status": 200 }, "clear": true }),
        json!({ "chunks": -1 }),
    ] {
        let r = control(&c, &u, body.clone()).await;
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        openai_error(&v);
    }
    let r = control(
        &c,
        &u,
        json!({ "behavior": { "mode": "fail_next", "count": 1, "status": 99 } }),
    )
    .await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["error"]["message"],
        "status 99 cannot be failed with (use 400 to 599)"
    );
    assert_eq!(u.handle().behavior(), Behavior::Healthy);
    // The same through the handle.
    let refused = u.handle().control(ControlRequest {
        behavior: Some(Behavior::Fail { status: 302 }),
        ..ControlRequest::default()
    });
    assert_eq!(refused, Err(Error::Status(302)));
    let stats = u
        .handle()
        .control(ControlRequest {
            behavior: Some(Behavior::BreakStream { after: 1 }),
            chunks: Some(3),
            ..ControlRequest::default()
        })
        .unwrap();
    assert_eq!(stats.behavior, Behavior::BreakStream { after: 1 });
    assert_eq!(stats.chunks, 3);
}

#[test]
fn control_requests_round_trip_as_documented() {
    let req: ControlRequest = serde_json::from_value(json!({
        "behavior": { "mode": "fail_next", "count": 2, "status": 503 },
        "chunks": 5, "chunk_delay_ms": 20, "record": true, "clear": true,
    }))
    .unwrap();
    assert_eq!(
        req,
        ControlRequest {
            behavior: Some(Behavior::FailNext {
                count: 2,
                status: 503
            }),
            chunks: Some(5),
            chunk_delay_ms: Some(20),
            record: Some(true),
            clear: true,
        }
    );
    for (b, j) in [
        (Behavior::Healthy, json!({ "mode": "healthy" })),
        (Behavior::Hang, json!({ "mode": "hang" })),
        (
            Behavior::DropConnection,
            json!({ "mode": "drop_connection" }),
        ),
        (Behavior::BreakBody, json!({ "mode": "break_body" })),
        (
            Behavior::BreakStream { after: 3 },
            json!({ "mode": "break_stream", "after": 3 }),
        ),
        (
            Behavior::Slow { delay_ms: 9 },
            json!({ "mode": "slow", "delay_ms": 9 }),
        ),
    ] {
        assert_eq!(serde_json::to_value(&b).unwrap(), j);
        assert_eq!(serde_json::from_value::<Behavior>(j).unwrap(), b);
    }
}
