//! Batch Mode over HTTP: jobs created inline and from an uploaded file, read until done, listed
//! across pages, cancelled, deleted, refused; every terminal state; the limits.
//!
//! Turnarounds are tiny (or zero, or an hour for a job that must stay unfinished), so nothing
//! here waits on a timer to assert anything; the state machine's arithmetic is tested on
//! explicit instants in `batch.rs`.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use emulator::{Batch, Faults, Settings};
use reqwest::Method;
use serde_json::{Value, json};
use support::*;

const MODEL: &str = "gemini-2.5-flash";
const PROMPTS: [&str; 3] = [
    "Why is the sky blue?",
    "Why do some birds migrate?",
    "How do rainbows form?",
];

fn batch_settings(batch: Batch) -> Settings {
    Settings {
        batch,
        ..Settings::instant()
    }
}

fn turnaround(ms: u64) -> Batch {
    Batch {
        turnaround: Duration::from_millis(ms),
        ..Batch::default()
    }
}

/// The id of `batches/<id>`, checked to be 36 lowercase alphanumerics.
fn batch_id(operation: &Value) -> String {
    let name = operation["name"].as_str().expect("a name");
    let id = name.strip_prefix("batches/").expect("batches/ prefix");
    assert_eq!(id.len(), 36, "{name}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
        "{name}"
    );
    id.to_string()
}

#[tokio::test]
async fn an_inline_job_is_pending_then_succeeds_with_keyed_answers_like_generate_content() {
    let emu = start(batch_settings(turnaround(60))).await;
    let created = create_batch(&emu, MODEL, &inline_batch(&PROMPTS)).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let operation = created.json();
    let id = batch_id(&operation);
    let metadata = &operation["metadata"];
    assert_eq!(
        metadata["@type"],
        "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatch"
    );
    assert_eq!(metadata["model"], "models/gemini-2.5-flash");
    assert_eq!(metadata["displayName"], "test-batch");
    assert_eq!(metadata["state"], "BATCH_STATE_PENDING");
    assert_eq!(metadata["name"], operation["name"]);
    assert_eq!(
        metadata["batchStats"],
        json!({"requestCount": "3", "pendingRequestCount": "3"})
    );
    assert!(metadata["createTime"].as_str().unwrap().ends_with('Z'));
    assert!(operation.get("done").is_none(), "done: false is left out");
    // The field order of the captured operation.
    assert_eq!(
        key_sequence(&created.text)[..4],
        ["name", "metadata", "@type", "model"]
    );

    let done = wait_done(&emu, &format!("batches/{id}")).await;
    let metadata = &done["metadata"];
    assert_eq!(metadata["state"], "BATCH_STATE_SUCCEEDED");
    assert!(metadata["endTime"].is_string());
    assert_eq!(
        metadata["batchStats"],
        json!({"requestCount": "3", "successfulRequestCount": "3"})
    );
    assert_eq!(
        done["response"]["@type"],
        "type.googleapis.com/google.ai.generativelanguage.v1main.GenerateContentBatchOutput"
    );
    let answers = metadata["output"]["inlinedResponses"]["inlinedResponses"]
        .as_array()
        .expect("double-nested inlinedResponses");
    assert_eq!(
        done["response"]["inlinedResponses"], metadata["output"]["inlinedResponses"],
        "the output twice"
    );
    assert_eq!(answers.len(), 3);
    for (i, answer) in answers.iter().enumerate() {
        assert_eq!(answer["metadata"], json!({"key": format!("k{i}")}));
        // The same text and prompt tokens as generateContent gives for the same prompt.
        let generate = format!("{MODEL}:generateContent");
        let unary = post(&emu, "v1beta", &generate, &prompt_body(PROMPTS[i])).await;
        let unary = unary.json();
        assert_eq!(response_text(&answer["response"]), response_text(&unary));
        let usage = &answer["response"]["usageMetadata"];
        assert_eq!(
            usage["promptTokenCount"],
            unary["usageMetadata"]["promptTokenCount"]
        );
        let total = usage["totalTokenCount"].as_u64().unwrap();
        let parts = [
            "promptTokenCount",
            "candidatesTokenCount",
            "thoughtsTokenCount",
        ]
        .iter()
        .map(|k| usage[*k].as_u64().unwrap_or(0))
        .sum::<u64>();
        assert_eq!(total, parts);
    }
}

#[tokio::test]
async fn a_file_job_writes_a_results_file_in_another_order_joined_by_key() {
    let emu = start(batch_settings(turnaround(40))).await;
    let keys: Vec<String> = (0..12).map(|i| format!("line-{i}")).collect();
    let input: String = keys
        .iter()
        .map(|key| jsonl_line(key, &format!("Tell me about {key}")) + "\n")
        .collect();
    let file = upload(&emu, input.as_bytes(), 256).await;
    let body = json!({"batch": {"display_name": "from a file", "input_config": {"file_name": file["name"]}}});
    let created = create_batch(&emu, MODEL, &body).await;
    assert_eq!(created.status, 200, "{}", created.text);
    let id = batch_id(&created.json());
    let done = wait_done(&emu, &format!("batches/{id}")).await;
    let results_name = format!("files/batch-{id}");
    assert_eq!(
        done["metadata"]["output"],
        json!({"responsesFile": results_name})
    );
    assert_eq!(done["response"]["responsesFile"], results_name);

    let results = get(&emu, "v1beta", &results_name).await.json();
    assert_eq!(results["source"], "GENERATED");
    assert_eq!(results["state"], "ACTIVE");
    let via_download = get(
        &emu,
        "download/v1beta",
        &format!("files/batch-{id}:download?alt=media"),
    )
    .await;
    let via_api = get(
        &emu,
        "v1beta",
        &format!("files/batch-{id}:download?alt=media"),
    )
    .await;
    assert_eq!(via_download.status, 200, "{}", via_download.text);
    assert_eq!(
        via_download.text, via_api.text,
        "both download paths give the same bytes"
    );
    assert_eq!(results["sizeBytes"], via_api.text.len().to_string());

    let lines: Vec<Value> = via_api
        .text
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    let order: Vec<&str> = lines.iter().map(|l| l["key"].as_str().unwrap()).collect();
    assert_ne!(
        order,
        keys.iter().map(String::as_str).collect::<Vec<_>>(),
        "not the input order"
    );
    let by_key: HashMap<&str, &Value> = lines
        .iter()
        .map(|l| (l["key"].as_str().unwrap(), l))
        .collect();
    assert_eq!(by_key.len(), keys.len(), "every key exactly once");
    for key in &keys {
        let text = response_text(&by_key[key.as_str()]["response"]);
        assert!(
            text.contains(key.as_str()),
            "the answer to {key} is about it: {text}"
        );
    }
}

#[tokio::test]
async fn jobs_are_listed_newest_first_across_pages_without_inline_answers() {
    let emu = start(batch_settings(turnaround(0))).await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(batch_id(
            &create_batch(&emu, MODEL, &inline_batch(&PROMPTS[..1]))
                .await
                .json(),
        ));
    }
    let mut listed = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let path = format!("batches?pageSize=2&pageToken={token}");
        let page = get(&emu, "v1beta", &path).await.json();
        pages += 1;
        for operation in page["operations"].as_array().unwrap() {
            assert_eq!(operation["metadata"]["state"], "BATCH_STATE_SUCCEEDED");
            assert!(
                operation["metadata"].get("output").is_none(),
                "no inline answers in a list"
            );
            assert!(operation.get("response").is_none());
            listed.push(batch_id(operation));
        }
        match page["nextPageToken"].as_str() {
            Some(next) => token = next.to_string(),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    ids.reverse();
    assert_eq!(listed, ids);
    let bad = get(&emu, "v1beta", "batches?pageToken=forged").await;
    assert_eq!(bad.status, 400, "{}", bad.text);
}

#[tokio::test]
async fn cancel_then_delete_then_not_found() {
    let emu = start(batch_settings(turnaround(3_600_000))).await;
    let id = batch_id(
        &create_batch(&emu, MODEL, &inline_batch(&PROMPTS))
            .await
            .json(),
    );
    let name = format!("batches/{id}");
    let cancelled = call(&emu, Method::POST, &format!("/v1beta/{name}:cancel"), None).await;
    assert_eq!((cancelled.status, cancelled.json()), (200, json!({})));
    let operation = get(&emu, "v1beta", &name).await.json();
    assert_eq!(operation["metadata"]["state"], "BATCH_STATE_CANCELLED");
    assert_eq!(operation["done"], true);
    assert!(operation.get("response").is_none(), "no results");
    assert!(operation["metadata"]["endTime"].is_string());

    let deleted = call(&emu, Method::DELETE, &format!("/v1beta/{name}"), None).await;
    assert_eq!((deleted.status, deleted.json()), (200, json!({})));
    for (method, path) in [
        (Method::GET, format!("/v1beta/{name}")),
        (Method::DELETE, format!("/v1beta/{name}")),
        (Method::POST, format!("/v1beta/{name}:cancel")),
    ] {
        let reply = call(&emu, method, &path, None).await;
        assert_eq!(reply.status, 404, "{path}: {}", reply.text);
        assert_eq!(reply.json()["error"]["status"], "NOT_FOUND");
    }
}

#[tokio::test]
async fn unknown_models_and_bad_bodies_are_refused_like_generate_content() {
    let emu = start(batch_settings(turnaround(0))).await;
    let unknown = create_batch(&emu, "gemini-no-such-model", &inline_batch(&PROMPTS)).await;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(
        unknown.json()["error"]["message"],
        "models/gemini-no-such-model is not found for API version v1beta, or is not supported \
         for batchGenerateContent. Call ListModels to see the list of available models and \
         their supported methods."
    );
    let bad_bodies = [
        json!({}),
        json!({"batch": {"displayName": "no input"}}),
        json!({"batch": {"inputConfig": {"requests": {"requests": []}}}}),
        json!({"batch": {"inputConfig": {"fileName": "files/x", "requests": {"requests": [{"request": prompt_body("hi")}]}}}}),
        json!({"batch": {"inputConfig": {"fileName": "files/x"}, "colour": "blue"}}),
        json!({"batch": {"inputConfig": {"requests": {"requests": [{"request": {"contents": []}}]}}}}),
    ];
    for body in bad_bodies {
        let reply = create_batch(&emu, MODEL, &body).await;
        assert_eq!(reply.status, 400, "{body}: {}", reply.text);
        assert_eq!(reply.json()["error"]["status"], "INVALID_ARGUMENT");
    }
    let missing_file = json!({"batch": {"inputConfig": {"fileName": "files/nosuchfile"}}});
    assert_eq!(create_batch(&emu, MODEL, &missing_file).await.status, 404);
    let no_key = post_raw(
        &emu,
        "v1beta",
        &format!("{MODEL}:batchGenerateContent"),
        None,
        b"{}".to_vec(),
    )
    .await;
    assert_eq!(no_key.status, 403);
}

#[tokio::test]
async fn faults_and_bad_lines_fail_single_requests_of_a_succeeded_job() {
    let emu = start(Settings {
        faults: Faults {
            fail_503: 0.5,
            ..Faults::default()
        },
        ..batch_settings(turnaround(0))
    })
    .await;
    let prompts: Vec<String> = (0..30).map(|i| format!("Question number {i}")).collect();
    let prompts: Vec<&str> = prompts.iter().map(String::as_str).collect();
    let id = batch_id(
        &create_batch(&emu, MODEL, &inline_batch(&prompts))
            .await
            .json(),
    );
    let done = wait_done(&emu, &format!("batches/{id}")).await;
    assert_eq!(done["metadata"]["state"], "BATCH_STATE_SUCCEEDED");
    let answers = done["response"]["inlinedResponses"]["inlinedResponses"]
        .as_array()
        .unwrap();
    let failed: Vec<&Value> = answers
        .iter()
        .filter(|a| a.get("error").is_some())
        .collect();
    assert!((3..27).contains(&failed.len()), "{} failed", failed.len());
    for answer in &failed {
        assert_eq!(
            answer["error"]["code"], 14,
            "UNAVAILABLE as a google.rpc.Code"
        );
        assert!(answer.get("response").is_none());
        assert!(
            answer["metadata"]["key"].is_string(),
            "keys stay on failed lines"
        );
    }
    let stats = &done["metadata"]["batchStats"];
    assert_eq!(stats["failedRequestCount"], failed.len().to_string());
    assert_eq!(
        stats["successfulRequestCount"],
        (30 - failed.len()).to_string()
    );

    // A file line that is not a request is an error line of its own.
    let plain = start(batch_settings(turnaround(0))).await;
    let input = format!(
        "{}\nnot json at all\n{}\n",
        jsonl_line("a", "hi"),
        json!({"key": "b", "request": {}})
    );
    let file = upload(&plain, input.as_bytes(), 1024).await;
    let body = json!({"batch": {"inputConfig": {"fileName": file["name"]}}});
    let id = batch_id(&create_batch(&plain, MODEL, &body).await.json());
    let done = wait_done(&plain, &format!("batches/{id}")).await;
    assert_eq!(
        done["metadata"]["batchStats"],
        json!({"requestCount": "3", "successfulRequestCount": "1", "failedRequestCount": "2"})
    );
    let results = get(
        &plain,
        "v1beta",
        &format!("files/batch-{id}:download?alt=media"),
    )
    .await;
    let b = results
        .text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["key"] == "b")
        .unwrap();
    assert_eq!(b["error"]["code"], 3, "INVALID_ARGUMENT");
    assert_eq!(
        b["error"]["message"], "* GenerateContentRequest.contents: contents is not specified\n",
        "the message generateContent gives"
    );
}

#[tokio::test]
async fn a_job_can_end_failed_or_expired_without_results() {
    let failing = start(batch_settings(Batch {
        fail_jobs: 1.0,
        ..turnaround(0)
    }))
    .await;
    let id = batch_id(
        &create_batch(&failing, MODEL, &inline_batch(&PROMPTS))
            .await
            .json(),
    );
    let failed = wait_done(&failing, &format!("batches/{id}")).await;
    assert_eq!(failed["metadata"]["state"], "BATCH_STATE_FAILED");
    assert_eq!(failed["error"]["code"], 13);
    assert!(failed.get("response").is_none() && failed["metadata"].get("output").is_none());

    // Expiry before the turnaround: the job is EXPIRED by the first time it is read.
    let expiring = start(batch_settings(Batch {
        expiry: Duration::ZERO,
        ..turnaround(3_600_000)
    }))
    .await;
    let created = create_batch(&expiring, MODEL, &inline_batch(&PROMPTS))
        .await
        .json();
    assert_eq!(created["metadata"]["state"], "BATCH_STATE_PENDING");
    let expired = get(
        &expiring,
        "v1beta",
        &format!("batches/{}", batch_id(&created)),
    )
    .await
    .json();
    assert_eq!(expired["metadata"]["state"], "BATCH_STATE_EXPIRED");
    assert_eq!(expired["done"], true);
    assert!(expired.get("response").is_none() && expired.get("error").is_none());
}

#[tokio::test]
async fn over_the_enqueued_tokens_or_the_job_limit_a_create_gets_a_429() {
    let emu = start(batch_settings(Batch {
        enqueued_tokens: Some(12),
        ..turnaround(3_600_000)
    }))
    .await;
    // 6 + 6 prompt tokens: at the limit.
    let first = create_batch(
        &emu,
        MODEL,
        &inline_batch(&["why is the sky blue?", "why is the sky blue?"]),
    )
    .await;
    assert_eq!(first.status, 200, "{}", first.text);
    let refused = create_batch(&emu, MODEL, &inline_batch(&["why?"])).await;
    assert_eq!(refused.status, 429, "{}", refused.text);
    let (quota_id, value, delay) = quota_details(&refused.json());
    assert_eq!(
        (quota_id.as_str(), value.as_str()),
        ("BatchEnqueuedTokensPerProjectPerModel", "12")
    );
    assert!(
        delay > Duration::from_secs(3_000),
        "until the running job ends: {delay:?}"
    );
    // Another model has its own allowance.
    assert_eq!(
        create_batch(&emu, "gemini-2.5-pro", &inline_batch(&["why?"]))
            .await
            .status,
        200
    );

    let one_job = start(batch_settings(Batch {
        max_active_jobs: 1,
        ..turnaround(3_600_000)
    }))
    .await;
    assert_eq!(
        create_batch(&one_job, MODEL, &inline_batch(&PROMPTS))
            .await
            .status,
        200
    );
    let refused = create_batch(&one_job, MODEL, &inline_batch(&PROMPTS)).await;
    assert_eq!(refused.status, 429);
    assert_eq!(
        quota_details(&refused.json()).0,
        "BatchConcurrentJobsPerProject"
    );
}

#[tokio::test]
async fn batch_requests_do_not_count_against_the_interactive_quota() {
    let emu = start(Settings {
        rpm: Some(1),
        tpm: Some(0),
        rpd: Some(0),
        ..batch_settings(turnaround(0))
    })
    .await;
    let prompts = ["a"; 20];
    let id = batch_id(
        &create_batch(&emu, MODEL, &inline_batch(&prompts))
            .await
            .json(),
    );
    assert_eq!(
        wait_done(&emu, &format!("batches/{id}")).await["metadata"]["state"],
        "BATCH_STATE_SUCCEEDED"
    );
    let generate = format!("{MODEL}:generateContent");
    assert_eq!(
        post(&emu, "v1beta", &generate, &prompt_body("hi"))
            .await
            .status,
        200
    );
    assert_eq!(
        post(&emu, "v1beta", &generate, &prompt_body("hi"))
            .await
            .status,
        429
    );
    assert_eq!(
        emu.stats().generates().len(),
        2,
        "the batch's 20 requests are not generate calls"
    );
}
