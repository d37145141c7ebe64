//! Each failure mode, seen from a client.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use warden_test_upstream::{Behavior, Options};

use crate::{chat_body, chat_url, client, openai_error, post, start, start_with, stream_body};

/// Sends a chat request over a bare socket with `connection: close` and
/// returns every byte that came back.
async fn raw_chat(addr: std::net::SocketAddr) -> std::io::Result<Vec<u8>> {
    let body = chat_body("x").to_string();
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(request.as_bytes()).await?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).await?;
    Ok(out)
}

#[tokio::test]
async fn fail_answers_every_request_with_its_status_and_an_openai_error() {
    let u = start("primary").await;
    let c = client();
    u.handle().set(Behavior::Fail { status: 503 });
    for r in [
        post(&c, &chat_url(&u), &chat_body("x")).await,
        post(&c, &chat_url(&u), &stream_body(true)).await,
        post(&c, &chat_url(&u), &serde_json::json!({ "bad": true })).await,
        c.get(format!("{}/models", u.base_url()))
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(r.status(), 503);
        let v: Value = r.json().await.unwrap();
        let e = openai_error(&v);
        assert_eq!(e["type"], "server_error");
        assert_eq!(e["code"], "injected_failure");
        assert!(e["message"].as_str().unwrap().contains("primary"), "{v}");
    }
    u.handle().set(Behavior::Fail { status: 429 });
    let r = post(&c, &chat_url(&u), &chat_body("x")).await;
    assert_eq!(r.status(), 429);
    let v: Value = r.json().await.unwrap();
    assert_eq!(openai_error(&v)["code"], "rate_limit_exceeded");
    // Not an error status: answered as 500 rather than as a success.
    u.handle().set(Behavior::Fail { status: 200 });
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 500);
    let stats = u.handle().stats();
    assert_eq!((stats.by_status[&503], stats.by_status[&429]), (4, 1));
}

#[tokio::test]
async fn fail_next_fails_that_many_requests_then_heals() {
    let u = start("f").await;
    let c = client();
    u.handle().set(Behavior::FailNext {
        count: 2,
        status: 502,
    });
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 502);
    assert_eq!(
        u.handle().behavior(),
        Behavior::FailNext {
            count: 1,
            status: 502
        }
    );
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 502);
    assert_eq!(u.handle().behavior(), Behavior::Healthy);
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 200);
    u.handle().set(Behavior::FailNext {
        count: 0,
        status: 502,
    });
    assert_eq!(post(&c, &chat_url(&u), &chat_body("x")).await.status(), 200);
}

#[tokio::test]
async fn slow_delays_the_response_headers() {
    let u = start("s").await;
    u.handle().set(Behavior::Slow { delay_ms: 300 });
    let started = Instant::now();
    let r = post(&client(), &chat_url(&u), &stream_body(false)).await;
    assert_eq!(r.status(), 200);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(100))
        .build()
        .unwrap();
    let e = impatient
        .post(chat_url(&u))
        .json(&chat_body("x"))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
}

#[tokio::test]
async fn hang_never_answers_until_shutdown_closes_the_connection() {
    let u = start("h").await;
    u.handle().set(Behavior::Hang);
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let e = impatient
        .post(chat_url(&u))
        .json(&chat_body("x"))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert_eq!(u.handle().request_count(), 1);
    assert!(u.handle().stats().by_status.is_empty(), "never answered");

    // A client without a timeout waits until the upstream shuts down.
    let url = chat_url(&u);
    let waiting = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&chat_body("x"))
            .send()
            .await
    });
    while u.handle().request_count() < 2 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let addr = u.addr();
    u.shutdown().await;
    let got = tokio::time::timeout(Duration::from_secs(5), waiting)
        .await
        .expect("shutdown closed the hung connection")
        .unwrap();
    assert!(got.is_err(), "{got:?}");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens after shutdown"
    );
}

#[tokio::test]
async fn drop_connection_closes_without_a_byte_of_response() {
    let u = start("d").await;
    u.handle().set(Behavior::DropConnection);
    let e = post_err(&chat_url(&u)).await;
    assert!(!e.is_timeout(), "{e}");
    assert_eq!(u.handle().request_count(), 1, "the client did not retry");
    match raw_chat(u.addr()).await {
        Ok(bytes) => assert!(bytes.is_empty(), "{:?}", String::from_utf8_lossy(&bytes)),
        // A reset is as good: nothing was answered.
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    let stats = u.handle().stats();
    assert_eq!(stats.dropped, 2);
    assert!(stats.by_status.is_empty());
    // The upstream itself is fine.
    u.handle().set(Behavior::Healthy);
    assert_eq!(
        post(&client(), &chat_url(&u), &chat_body("x"))
            .await
            .status(),
        200
    );
}

async fn post_err(url: &str) -> reqwest::Error {
    client()
        .post(url)
        .json(&chat_body("x"))
        .send()
        .await
        .expect_err("the connection was dropped")
}

#[tokio::test]
async fn break_body_breaks_the_connection_before_the_response() {
    let u = start("b").await;
    u.handle().set(Behavior::BreakBody);
    for body in [chat_body("x"), stream_body(true)] {
        let e = client()
            .post(chat_url(&u))
            .json(&body)
            .send()
            .await
            .expect_err("no response");
        assert!(!e.is_timeout(), "{e}");
    }
    assert_eq!(u.handle().request_count(), 2);
}

#[tokio::test]
async fn break_stream_sends_some_events_then_breaks_off() {
    let u = start_with(Options {
        name: "mid".into(),
        ..Options::default()
    })
    .await;
    u.handle().set(Behavior::BreakStream { after: 2 });
    let mut r = post(&client(), &chat_url(&u), &stream_body(true)).await;
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    let broke = loop {
        match r.chunk().await {
            Ok(Some(c)) => text.push_str(std::str::from_utf8(&c).unwrap()),
            Ok(None) => break false,
            Err(_) => break true,
        }
    };
    assert!(broke, "{text}");
    let events = crate::events(&text);
    assert_eq!(events.len(), 2, "the role chunk and one word: {text}");
    assert_eq!(u.handle().last_stream_timings().len(), 2);
    // Right after the headers.
    u.handle().set(Behavior::BreakStream { after: 0 });
    let r = post(&client(), &chat_url(&u), &stream_body(true)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    assert!(r.bytes().await.is_err());
    // More events allowed than the stream has: it ends normally.
    u.handle().set(Behavior::BreakStream { after: 100 });
    let r = post(&client(), &chat_url(&u), &stream_body(true)).await;
    assert!(r.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    // A plain reply: headers, the start of a body, then the break.
    u.handle().set(Behavior::BreakStream { after: 1 });
    let r = post(&client(), &chat_url(&u), &chat_body("x")).await;
    assert_eq!(r.status(), 200);
    assert!(r.bytes().await.is_err());
}

#[tokio::test]
async fn stall_stream_sends_some_events_then_goes_silent() {
    let u = start("quiet").await;
    u.handle().set(Behavior::StallStream { after: 2 });
    let mut r = post(&client(), &chat_url(&u), &stream_body(true)).await;
    assert_eq!(r.status(), 200);
    let mut text = String::new();
    while text.matches("\n\n").count() < 2 {
        let c = r.chunk().await.unwrap().unwrap();
        text.push_str(std::str::from_utf8(&c).unwrap());
    }
    // Then nothing, with the connection open.
    let next = tokio::time::timeout(Duration::from_millis(300), r.chunk()).await;
    assert!(next.is_err(), "silent: {next:?}");
    assert_eq!(crate::events(&text).len(), 2, "{text}");
}

#[tokio::test]
async fn error_chunk_ends_a_stream_with_an_openai_error_event() {
    let u = start("flaky").await;
    u.handle().set(Behavior::ErrorChunk { after: 2 });
    let r = post(&client(), &chat_url(&u), &stream_body(true)).await;
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let events = crate::events(&text);
    assert_eq!(events.len(), 3, "{text}");
    let crate::Event::Chunk(error) = &events[2] else {
        panic!("an error event: {text}");
    };
    assert_eq!(error["error"]["code"], "injected_failure", "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    // A plain reply is normal.
    let r = post(&client(), &chat_url(&u), &chat_body("x")).await;
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn redirect_huge_body_and_usage_answer_as_told() {
    let u = start("odd").await;
    let c = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    u.handle().set(Behavior::Redirect {
        status: 307,
        location: "http://127.0.0.1:9/elsewhere".into(),
    });
    let r = post(&c, &chat_url(&u), &chat_body("x")).await;
    assert_eq!(r.status(), 307);
    assert_eq!(r.headers()["location"], "http://127.0.0.1:9/elsewhere");

    u.handle().set(Behavior::HugeBody { bytes: 1 << 20 });
    let r = post(&c, &chat_url(&u), &chat_body("x")).await;
    assert_eq!(r.status(), 200);
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 1 << 20);
    assert!(body.starts_with(b"{\"id\":\"huge\",\"pad\":\"xx"));
    let r = post(&c, &chat_url(&u), &stream_body(true)).await;
    let body = r.bytes().await.unwrap();
    assert_eq!(body.len(), 1 << 20);
    assert!(
        !body.windows(2).any(|w| w == b"\n\n"),
        "one event that never ends"
    );

    let usage = serde_json::json!({ "prompt_tokens": -5, "completion_tokens": u64::MAX });
    u.handle().set(Behavior::Usage {
        usage: usage.clone(),
    });
    let r = post(&c, &chat_url(&u), &chat_body("x")).await;
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["usage"], usage);
    // A stream sends it in its usage chunk, asked for or not.
    let r = post(&c, &chat_url(&u), &stream_body(true)).await;
    let events = crate::events(&r.text().await.unwrap());
    assert!(
        events
            .iter()
            .any(|e| matches!(e, crate::Event::Chunk(c) if c["usage"] == usage)),
        "{events:?}"
    );
}
