//! The real error bodies: auth, unknown model, bad requests, and errors on streaming calls.

mod support;

use emulator::Settings;
use serde_json::json;
use support::*;

const MISSING_KEY_BODY: &str = "{\n  \"error\": {\n    \"code\": 403,\n    \"message\": \"Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.\",\n    \"status\": \"PERMISSION_DENIED\"\n  }\n}\n";

#[tokio::test]
async fn missing_key_is_403_permission_denied() {
    let emu = start(Settings::instant()).await;
    for key in [None, Some(""), Some("   ")] {
        let reply = post_raw(
            &emu,
            "v1beta",
            "gemini-2.5-flash:generateContent",
            key,
            prompt_body(BIRDS).to_string().into(),
        )
        .await;
        assert_eq!(reply.status, 403);
        // Byte for byte fixtures/reconstructed/403-missing-api-key.json.
        assert_eq!(reply.text, MISSING_KEY_BODY);
    }
    let list = client()
        .get(format!("{}/v1/models", emu.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 403);
}

#[tokio::test]
async fn wrong_key_is_400_api_key_invalid() {
    let emu = start(Settings {
        key: Some("the-right-key".into()),
        ..Settings::instant()
    })
    .await;
    let body = prompt_body(BIRDS).to_string();
    let wrong = post_raw(
        &emu,
        "v1beta",
        "gemini-2.5-flash:generateContent",
        Some("wrong"),
        body.clone().into(),
    )
    .await;
    assert_eq!(wrong.status, 400);
    assert_eq!(wrong.content_type, "application/json; charset=UTF-8");
    // fixtures/unary-failure-api-key.json without its DebugInfo (which would echo the key).
    assert_eq!(
        key_sequence(&wrong.text),
        [
            "error", "code", "message", "status", "details", "@type", "reason", "domain",
            "metadata", "service", "@type", "locale", "message",
        ]
    );
    let json = wrong.json();
    assert_eq!(
        json["error"]["message"],
        "API key not valid. Please pass a valid API key."
    );
    assert_eq!(json["error"]["status"], "INVALID_ARGUMENT");
    assert_eq!(json["error"]["details"][0]["reason"], "API_KEY_INVALID");
    assert!(!wrong.text.contains("wrong"), "the key is never echoed");

    let right = post_raw(
        &emu,
        "v1beta",
        "gemini-2.5-flash:generateContent",
        Some("the-right-key"),
        body.into(),
    )
    .await;
    assert_eq!(right.status, 200);
    let url = format!("{}/v1beta/models?key=the-right-key", emu.base_url());
    assert_eq!(client().get(url).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn unknown_model_is_the_real_404() {
    let emu = start(Settings::instant()).await;
    for (version, action, method) in [
        ("v1beta", "generateContent", "generateContent"),
        ("v1", "generateContent", "generateContent"),
        ("v1beta", "streamGenerateContent?alt=sse", "generateContent"),
        ("v1beta", "countTokens", "countTokens"),
    ] {
        let reply = post(
            &emu,
            version,
            &format!("gemini-5.0-flash:{action}"),
            &prompt_body(BIRDS),
        )
        .await;
        assert_eq!(reply.status, 404);
        let json = reply.json();
        assert_eq!(
            json["error"]["message"],
            format!(
                "models/gemini-5.0-flash is not found for API version {version}, or is not supported for {method}. \
                 Call ListModels to see the list of available models and their supported methods."
            )
        );
        assert_eq!(json["error"]["status"], "NOT_FOUND");
        assert_eq!(
            json["error"]["details"][0]["@type"],
            "type.googleapis.com/google.rpc.DebugInfo"
        );
        // Errors before a stream starts keep the stream's content type, as plain JSON (WIRE §7).
        let streaming = action.starts_with("stream");
        assert_eq!(reply.content_type == "text/event-stream", streaming);
        assert!(reply.text.starts_with("{\n  \"error\": {"));
    }
    let model = get(&emu, "v1beta", "models/gemini-5.0-flash").await;
    assert_eq!(model.status, 404);
}

#[tokio::test]
async fn malformed_json_is_400_invalid_argument() {
    let emu = start(Settings::instant()).await;
    for (body, message) in [
        (
            &b"{\"contents\": [ {"[..],
            "Invalid JSON payload received. Unexpected end of string.",
        ),
        (
            b"{contents: 1}",
            "Invalid JSON payload received. Unexpected token.",
        ),
        (
            b"[1, 2]",
            "Invalid JSON payload received. Unexpected token.",
        ),
        (
            b"{\"contents\": [], \"prompt\": \"hi\"}",
            "Invalid JSON payload received. Unknown name \"prompt\": Cannot find field.",
        ),
    ] {
        let reply = post_raw(
            &emu,
            "v1beta",
            "gemini-2.5-flash:generateContent",
            Some("k"),
            body.to_vec(),
        )
        .await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        let json = reply.json();
        assert_eq!(json["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(json["error"]["message"], message);
        assert_eq!(
            json["error"]["details"][0]["@type"],
            "type.googleapis.com/google.rpc.BadRequest"
        );
        assert_eq!(
            json["error"]["details"][0]["fieldViolations"][0]["description"],
            message
        );
    }
}

#[tokio::test]
async fn missing_or_empty_contents_is_400() {
    let emu = start(Settings::instant()).await;
    for body in [
        json!({}),
        json!({"contents": []}),
        json!({"generationConfig": {}}),
    ] {
        for action in ["generateContent", "streamGenerateContent?alt=sse"] {
            let reply = post(&emu, "v1beta", &format!("gemini-2.5-flash:{action}"), &body).await;
            assert_eq!(reply.status, 400);
            let json = reply.json();
            assert_eq!(
                json["error"]["message"],
                "* GenerateContentRequest.contents: contents is not specified\n"
            );
            assert!(json["error"].get("details").is_none());
        }
    }
    let empty = post_raw(
        &emu,
        "v1",
        "gemini-2.5-flash:generateContent",
        Some("k"),
        Vec::new(),
    )
    .await;
    assert_eq!(empty.status, 400);
    let count = post(&emu, "v1", "gemini-2.5-flash:countTokens", &json!({})).await;
    assert_eq!(count.status, 400);
}

#[tokio::test]
async fn unknown_paths_and_methods_are_404() {
    let emu = start(Settings::instant()).await;
    let embed = post(
        &emu,
        "v1beta",
        "gemini-2.5-flash:embedContent",
        &prompt_body("x"),
    )
    .await;
    assert_eq!(embed.status, 404);
    assert!(
        embed.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("not supported for embedContent")
    );
    assert_eq!(
        post(
            &emu,
            "v2",
            "gemini-2.5-flash:generateContent",
            &prompt_body("x")
        )
        .await
        .status,
        404
    );
    assert_eq!(get(&emu, "v1beta", "nothing/here").await.status, 404);
    let stats = emu.stats();
    assert!(stats.arrivals.iter().all(|a| a.status == 404));
}
