//! Streamed replies: the SSE sequence with and without the usage chunk,
//! pacing, and when each chunk was written.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warden_test_upstream::{Options, reply_content};

use crate::{Event, chat_url, client, events, post, start, start_with, stream_body};

/// The chunks of `events`, checking that `[DONE]` is last and only last.
fn chunks(events: &[Event]) -> Vec<&Value> {
    assert_eq!(events.last(), Some(&Event::Done), "{events:?}");
    events[..events.len() - 1]
        .iter()
        .map(|e| match e {
            Event::Chunk(v) => v,
            Event::Done => panic!("[DONE] before the end: {events:?}"),
        })
        .collect()
}

#[tokio::test]
async fn a_stream_without_usage_is_role_words_finish_done() {
    let u = start("primary").await;
    let r = post(&client(), &chat_url(&u), &stream_body(false)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "text/event-stream");
    let text = r.text().await.unwrap();
    assert!(!text.contains("\"usage\""), "no usage asked for: {text}");
    let events = events(&text);
    let chunks = chunks(&events);
    // role, 5 words, finish
    assert_eq!(chunks.len(), 7, "{text}");
    let id = &chunks[0]["id"];
    for c in &chunks {
        assert_eq!(c["object"], "chat.completion.chunk");
        assert_eq!(c["id"], *id, "one id per stream");
        assert_eq!(c["model"], "model-a");
        assert_eq!(c["choices"].as_array().unwrap().len(), 1, "{c}");
        assert_eq!(c["choices"][0]["index"], 0);
    }
    assert_eq!(
        chunks[0]["choices"][0]["delta"],
        json!({ "role": "assistant", "content": "" })
    );
    assert!(chunks[0]["choices"][0]["finish_reason"].is_null());
    let mut content = String::new();
    for (i, c) in chunks[1..6].iter().enumerate() {
        let delta = &c["choices"][0]["delta"];
        assert!(delta.get("role").is_none(), "{c}");
        let word = delta["content"].as_str().unwrap();
        // Each content chunk carries its sequence number.
        assert!(word.ends_with(&format!("primary-{i}")), "{word}");
        assert!(c["choices"][0]["finish_reason"].is_null());
        content.push_str(word);
    }
    assert_eq!(content, reply_content("primary", 5));
    assert_eq!(chunks[6]["choices"][0]["delta"], json!({}));
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
    let sent = u.handle().last_stream_timings();
    assert_eq!(
        sent.iter().map(|t| t.index).collect::<Vec<_>>(),
        (0..8).collect::<Vec<_>>(),
        "every event was written, in order"
    );
}

#[tokio::test]
async fn a_stream_with_include_usage_ends_with_a_usage_chunk_before_done() {
    let u = start("primary").await;
    let text = post(&client(), &chat_url(&u), &stream_body(true))
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    let chunks = chunks(&events);
    // role, 5 words, finish, usage
    assert_eq!(chunks.len(), 8, "{text}");
    for c in &chunks[..7] {
        // As OpenAI: every other chunk has `"usage": null`.
        assert_eq!(c.get("usage"), Some(&Value::Null), "{c}");
        assert_eq!(c["choices"].as_array().unwrap().len(), 1);
    }
    assert_eq!(chunks[6]["choices"][0]["finish_reason"], "stop");
    let usage = chunks[7];
    assert_eq!(usage["object"], "chat.completion.chunk");
    assert_eq!(usage["id"], chunks[0]["id"]);
    assert_eq!(usage["choices"], json!([]));
    assert_eq!(
        usage["usage"],
        json!({ "prompt_tokens": 2, "completion_tokens": 5, "total_tokens": 7 })
    );
    assert_eq!(u.handle().last_stream_timings().len(), 9);
}

#[tokio::test]
async fn max_tokens_caps_a_stream_too() {
    let u = start("s").await;
    let mut body = stream_body(true);
    body["max_tokens"] = json!(2);
    let text = post(&client(), &chat_url(&u), &body)
        .await
        .text()
        .await
        .unwrap();
    let events = events(&text);
    let chunks = chunks(&events);
    assert_eq!(chunks.len(), 5, "role, 2 words, finish, usage: {text}");
    assert_eq!(chunks[3]["choices"][0]["finish_reason"], "length");
    assert_eq!(chunks[4]["usage"]["completion_tokens"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_are_paced_and_each_is_written_before_the_next_is_due() {
    let u = start_with(Options {
        name: "paced".into(),
        chunks: 3,
        chunk_delay_ms: 80,
        ..Options::default()
    })
    .await;
    let started = Instant::now();
    let mut r = post(&client(), &chat_url(&u), &stream_body(false)).await;
    let mut reads = Vec::new();
    let mut text = String::new();
    while let Some(chunk) = r.chunk().await.unwrap() {
        reads.push(Instant::now());
        text.push_str(std::str::from_utf8(&chunk).unwrap());
    }
    // role, 3 words, finish, [DONE]: 5 delays.
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(events(&text).len(), 6);
    let sent = u.handle().last_stream_timings();
    assert_eq!(sent.len(), 6);
    for pair in sent.windows(2) {
        let gap = pair[1].at.duration_since(pair[0].at);
        assert!(gap >= Duration::from_millis(75), "{gap:?}");
        assert!(pair[1].unix_nanos > pair[0].unix_nanos);
    }
    // Not buffered: the client read chunk 1 before chunk 2 was written.
    assert!(
        reads.iter().any(|t| *t > sent[1].at && *t < sent[2].at),
        "{reads:?} vs {sent:?}"
    );
}

#[tokio::test]
async fn the_chunk_count_changes_at_run_time_and_every_stream_is_timed() {
    let u = start("n").await;
    let c = client();
    u.handle().set_stream(2, 0);
    let text = post(&c, &chat_url(&u), &stream_body(false))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(events(&text).len(), 5, "role, 2 words, finish, [DONE]");
    u.handle().set_stream(0, 0);
    let text = post(&c, &chat_url(&u), &stream_body(false))
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(events(&text).len(), 3, "role, finish, [DONE]");
    let all = u.handle().stream_timings();
    assert_eq!(all.iter().map(Vec::len).collect::<Vec<_>>(), [5, 3]);
    assert_eq!(u.handle().stats().streams, 2);
}
