//! The stand-in over real HTTP: replies, streams, failure modes, control.

use serde_json::{Value, json};
use warden_test_upstream::{Behavior, Options, Upstream};

async fn post(client: &reqwest::Client, url: &str, body: Value) -> reqwest::Response {
    client.post(url).json(&body).send().await.expect("request")
}

fn chat(stream: bool, usage: bool) -> Value {
    json!({
        "model": "m", "stream": stream, "stream_options": { "include_usage": usage },
        "messages": [{ "role": "user", "content": "12345678" }],
    })
}

#[tokio::test]
async fn plain_and_streamed_replies_carry_deterministic_usage() {
    let up = Upstream::start(Options {
        name: "primary".into(),
        ..Options::default()
    })
    .await
    .unwrap();
    let c = reqwest::Client::new();
    let url = format!("{}/chat/completions", up.base_url());
    let v: Value = post(&c, &url, chat(false, false))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        v["choices"][0]["message"]["content"],
        "primary-0 primary-1 primary-2 primary-3 primary-4"
    );
    assert_eq!(
        v["usage"],
        json!({ "prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7 })
    );

    let text = post(&c, &url, chat(true, true)).await.text().await.unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    // role, 5 words, finish, usage, [DONE]
    assert_eq!(events.len(), 9, "{text}");
    assert_eq!(*events.last().unwrap(), "data: [DONE]");
    let usage: Value = serde_json::from_str(events[7].trim_start_matches("data: ")).unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(usage["usage"]["completion_tokens"], 5);
    assert_eq!(up.handle().last_stream_timings().len(), 9);

    let text = post(&c, &url, chat(true, false))
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("\"usage\""), "{text}");
    let mut capped = chat(false, false);
    capped["max_tokens"] = json!(2);
    let v: Value = post(&c, &url, capped).await.json().await.unwrap();
    assert_eq!(v["usage"]["completion_tokens"], 2);
    assert_eq!(up.handle().request_count(), 4);
}

#[tokio::test]
async fn failure_modes_and_control() {
    let up = Upstream::start(Options {
        api_key: Some("k".into()),
        ..Options::default()
    })
    .await
    .unwrap();
    let c = reqwest::Client::new();
    let url = format!("{}/chat/completions", up.base_url());
    assert_eq!(post(&c, &url, chat(false, false)).await.status(), 401);
    let send = |body: Value| c.post(&url).bearer_auth("k").json(&body).send();
    assert_eq!(
        send(json!({ "model": "m", "messages": [] }))
            .await
            .unwrap()
            .status(),
        400
    );
    up.handle().set(Behavior::FailNext {
        count: 2,
        status: 503,
    });
    assert_eq!(send(chat(false, false)).await.unwrap().status(), 503);
    assert_eq!(send(chat(false, false)).await.unwrap().status(), 503);
    assert_eq!(send(chat(false, false)).await.unwrap().status(), 200);
    up.handle().set(Behavior::BreakBody);
    // The connection breaks: before the headers or in the body.
    let broken = match send(chat(false, false)).await {
        Err(_) => true,
        Ok(r) => r.bytes().await.is_err(),
    };
    assert!(broken);
    // From another process: the control endpoint.
    let stats: Value = post(
        &c,
        &format!("http://{}/_control", up.addr()),
        json!({ "behavior": { "mode": "fail", "status": 500 }, "clear": true }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(stats["behavior"], json!({ "mode": "fail", "status": 500 }));
    assert_eq!(stats["requests"], 0);
    let r = send(chat(false, false)).await.unwrap();
    assert_eq!(r.status(), 500);
    let body: Value = r.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("failing on purpose")
    );
    up.handle().set(Behavior::Slow { delay_ms: 300 });
    let started = std::time::Instant::now();
    assert_eq!(send(chat(false, false)).await.unwrap().status(), 200);
    assert!(started.elapsed().as_millis() >= 300);
    let models: Value = c
        .get(format!("{}/models", up.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], "stand-in-small");
}
