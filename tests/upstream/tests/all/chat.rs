//! Plain chat completions: shape, deterministic content and usage, caps,
//! bad bodies, the API key.

use serde_json::{Value, json};
use warden_test_upstream::{Options, prompt_tokens, reply_content};

use crate::{chat_body, chat_url, client, openai_error, post, start, start_with};

#[tokio::test]
async fn a_plain_completion_has_the_openai_shape_and_predictable_usage() {
    let u = start("primary").await;
    let r = post(
        &client(),
        &chat_url(&u),
        &chat_body("Say hello to the gateway test."),
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: Value = r.json().await.unwrap();
    assert!(v["id"].as_str().unwrap().starts_with("chatcmpl-"), "{v}");
    assert_eq!(v["object"], "chat.completion");
    assert!(v["created"].as_u64().unwrap() > 1_600_000_000);
    assert_eq!(v["model"], "model-a", "the request's model is echoed");
    let choice = &v["choices"][0];
    assert_eq!(choice["index"], 0);
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(
        choice["message"]["content"],
        "primary-0 primary-1 primary-2 primary-3 primary-4"
    );
    assert_eq!(choice["finish_reason"], "stop");
    // 29 characters / 4, rounded up.
    assert_eq!(
        v["usage"],
        json!({ "prompt_tokens": 8, "completion_tokens": 5, "total_tokens": 13 })
    );
    assert_eq!(v["choices"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn ids_differ_and_name_the_upstream() {
    let u = start("backup").await;
    let c = client();
    let id = |v: Value| v["id"].as_str().unwrap().to_string();
    let a = id(post(&c, &chat_url(&u), &chat_body("x"))
        .await
        .json()
        .await
        .unwrap());
    let b = id(post(&c, &chat_url(&u), &chat_body("x"))
        .await
        .json()
        .await
        .unwrap());
    assert_ne!(a, b);
    assert!(a.contains("backup"), "{a}");
}

#[tokio::test]
async fn prompt_tokens_count_every_message_and_text_parts() {
    let u = start("p").await;
    let messages = json!([
        { "role": "system", "content": "abc" },
        { "role": "user", "content": [
            { "type": "text", "text": "héllo" },
            { "type": "image_url", "image_url": { "url": "data:..." } },
            { "type": "text", "text": "wörld!" },
        ] },
        { "role": "assistant", "content": null, "tool_calls": [] },
    ]);
    // 3 + 5 + 6 = 14 characters (not bytes) -> 4 tokens.
    assert_eq!(prompt_tokens(messages.as_array().unwrap()), 4);
    let v: Value = post(
        &client(),
        &chat_url(&u),
        &json!({ "model": "m", "messages": messages }),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(v["usage"]["prompt_tokens"], 4);
    assert_eq!(
        prompt_tokens(&[json!({ "role": "user", "content": "" })]),
        0
    );
    assert_eq!(
        prompt_tokens(&[json!({ "role": "user", "content": "1234" })]),
        1
    );
    assert_eq!(
        prompt_tokens(&[json!({ "role": "user", "content": "12345" })]),
        2
    );
}

#[tokio::test]
async fn max_tokens_caps_the_reply_and_finishes_with_length() {
    let u = start_with(Options {
        name: "cap".into(),
        chunks: 4,
        ..Options::default()
    })
    .await;
    let c = client();
    for (extra, words) in [
        (json!({ "max_tokens": 2 }), 2),
        (json!({ "max_completion_tokens": 3 }), 3),
        (json!({ "max_tokens": 3, "max_completion_tokens": 1 }), 1),
        (json!({ "max_tokens": 0 }), 0),
        (json!({ "max_tokens": 100 }), 4),
    ] {
        let mut body = chat_body("abcd");
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let v: Value = post(&c, &chat_url(&u), &body).await.json().await.unwrap();
        assert_eq!(v["usage"]["completion_tokens"], words, "{extra}: {v}");
        assert_eq!(v["usage"]["total_tokens"], 1 + words, "{extra}: {v}");
        assert_eq!(
            v["choices"][0]["message"]["content"],
            reply_content("cap", words),
            "{extra}"
        );
        let finish = if words < 4 { "length" } else { "stop" };
        assert_eq!(v["choices"][0]["finish_reason"], finish, "{extra}");
    }
}

#[tokio::test]
async fn bad_bodies_are_answered_400_with_an_openai_error() {
    let u = start("v").await;
    let c = client();
    let cases: [(&str, &str); 8] = [
        ("not json", ""),
        ("[1, 2]", ""),
        (
            r#"{"messages": [{"role": "user", "content": "x"}]}"#,
            "model",
        ),
        (
            r#"{"model": "", "messages": [{"role": "user", "content": "x"}]}"#,
            "model",
        ),
        (
            r#"{"model": 7, "messages": [{"role": "user", "content": "x"}]}"#,
            "model",
        ),
        (r#"{"model": "m"}"#, "messages"),
        (r#"{"model": "m", "messages": []}"#, "messages"),
        (r#"{"model": "m", "messages": "hi"}"#, "messages"),
    ];
    for (body, param) in cases {
        let r = c
            .post(chat_url(&u))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{body}");
        let v: Value = r.json().await.unwrap();
        let e = openai_error(&v);
        assert_eq!(e["type"], "invalid_request_error", "{body}: {v}");
        if !param.is_empty() {
            assert_eq!(e["param"], param, "{body}: {v}");
        }
    }
    // Every one was received, recorded and counted.
    assert_eq!(u.handle().request_count(), 8);
    assert_eq!(u.handle().stats().by_status[&400], 8);
    assert_eq!(u.handle().requests()[0].body, Value::Null, "not JSON");
}

#[tokio::test]
async fn the_api_key_is_checked_and_recorded() {
    let u = start_with(Options {
        api_key: Some("sk-good".into()),
        ..Options::default()
    })
    .await;
    let c = client();
    let url = chat_url(&u);
    let body = chat_body("x");
    let missing = post(&c, &url, &body).await;
    assert_eq!(missing.status(), 401);
    let v: Value = missing.json().await.unwrap();
    assert_eq!(openai_error(&v)["code"], "invalid_api_key");
    for wrong in [
        "Bearer sk-bad",
        "sk-good",
        "Basic sk-good",
        "Bearer  sk-good",
    ] {
        let r = c
            .post(&url)
            .header("authorization", wrong)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{wrong}");
    }
    let r = c
        .post(&url)
        .bearer_auth("sk-good")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let recorded = u.handle().requests();
    assert_eq!(recorded.len(), 6);
    let last = recorded.last().unwrap();
    assert_eq!(last.path, "/v1/chat/completions");
    assert_eq!(last.model.as_deref(), Some("model-a"));
    assert_eq!(last.authorization.as_deref(), Some("Bearer sk-good"));
    assert_eq!(last.header("Authorization"), Some("Bearer sk-good"));
    assert_eq!(last.header("content-type"), Some("application/json"));
    assert_eq!(last.body, body);
    assert_eq!(recorded[0].authorization, None);
}
