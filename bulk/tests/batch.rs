//! `bulk --mode batch` end to end: the binary against the emulator on
//! 127.0.0.1, whose jobs finish in a fraction of a second.
//!
//! What reached the server is read back from the server itself: the jobs
//! it lists (`GET /v1beta/batches`, every page) and the calls it counted.
//! The journal is read back too: every id must be answered exactly once.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    time::Duration,
};

use common::{
    client::{Client, ClientConfig, RawRequest},
    config::ApiKey,
};
use emulator::{Batch, Emulator, Faults, Settings};
use serde_json::Value;
use testkit::{StepCommand, StepOutput, TEST_KEY, wait_until};

const BULK: &str = env!("CARGO_BIN_EXE_bulk");

/// An emulator whose jobs take `turnaround`, with `batch` for the rest.
async fn emulator(turnaround: Duration, batch: Batch, faults: Faults) -> Emulator {
    emulator::start(Settings {
        batch: Batch {
            turnaround,
            ..batch
        },
        faults,
        ..Settings::instant()
    })
    .await
    .expect("the emulator starts")
}

/// `n` prompts with string ids `q1`..`qn`, in `dir`.
fn prompts_file(dir: &Path, n: usize) -> PathBuf {
    let path = dir.join("prompts.jsonl");
    let text: String = (1..=n)
        .map(|i| format!("{{\"prompt\":\"Question number {i} about birds?\",\"id\":\"q{i}\"}}\n"))
        .collect();
    std::fs::write(&path, text).expect("written");
    path
}

/// The arguments of a batch run of `prompts` into `output`, plus `extra`.
fn batch_args(prompts: &Path, output: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--prompts",
        prompts.to_str().expect("UTF-8"),
        "--output",
        output.to_str().expect("UTF-8"),
        "--mode",
        "batch",
        "--tier",
        "tier1",
        "--batch-poll",
        "100ms",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(extra.iter().map(|s| s.to_string()));
    args
}

async fn bulk(server: &Emulator, args: &[String]) -> StepOutput {
    StepCommand::new(BULK)
        .against(server)
        .args(args)
        .run()
        .await
}

/// The journal's rows.
fn rows(output: &Path) -> Vec<Value> {
    std::fs::read_to_string(output)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("a whole row"))
        .collect()
}

/// How many answer rows each id has.
fn answers_per_id(output: &Path) -> HashMap<String, usize> {
    let mut count = HashMap::new();
    for row in rows(output).iter().filter(|row| row["ok"] == true) {
        *count
            .entry(row["id"].as_str().expect("a string id").to_string())
            .or_default() += 1;
    }
    count
}

/// Asserts that ids `q1`..`qn` each have exactly one answer.
fn assert_each_answered_once(output: &Path, n: usize) {
    let count = answers_per_id(output);
    assert_eq!(count.len(), n, "every id answered");
    for i in 1..=n {
        assert_eq!(count.get(&format!("q{i}")), Some(&1), "q{i}: {count:?}");
    }
}

/// Every job the server lists for the test key, from every page.
async fn jobs(server: &Emulator) -> Vec<Value> {
    let client = Client::new(ClientConfig {
        base_url: url::Url::parse(&server.base_url()).expect("a URL"),
        api_key: ApiKey::new(TEST_KEY),
        api_version: "v1beta".into(),
        timeout: Duration::from_secs(30),
    })
    .expect("a client");
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut request = RawRequest::get("v1beta/batches").query("pageSize", "2");
        if let Some(token) = &token {
            request = request.query("pageToken", token);
        }
        let page: Value = client
            .raw(request)
            .await
            .expect("listed")
            .json(1 << 24)
            .await
            .expect("JSON");
        all.extend(page["operations"].as_array().cloned().unwrap_or_default());
        match page["nextPageToken"].as_str() {
            Some(next) => token = Some(next.to_string()),
            None => return all,
        }
    }
}

fn job_states(jobs: &[Value]) -> Vec<String> {
    jobs.iter()
        .map(|job| {
            job["metadata"]["state"]
                .as_str()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

/// The `bill` object of the summary.
fn bill(out: &StepOutput) -> Value {
    out.summary()["bill"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_thousand_prompts_answer_every_id_once_at_half_the_standard_price() {
    let server = emulator(
        Duration::from_millis(300),
        Batch::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 1000);
    let output = dir.path().join("answers.jsonl");
    let out = bulk(&server, &batch_args(&prompts, &output, &[])).await;

    let summary = out.assert_accounted(1000, false);
    assert_eq!(summary["succeeded"], 1000, "{}", out.dump());
    assert_each_answered_once(&output, 1000);
    let listed = jobs(&server).await;
    assert_eq!(job_states(&listed), ["BATCH_STATE_SUCCEEDED"], "one job");
    assert!(
        listed[0]["metadata"]["displayName"]
            .as_str()
            .is_some_and(|name| name.starts_with("bulk-")),
        "{listed:?}"
    );
    let bill = bill(&out);
    assert_eq!(bill["mode"], "batch");
    let (cost, standard) = (
        bill["cost_usd"].as_f64().expect("priced"),
        bill["standard_usd"].as_f64().expect("priced"),
    );
    assert!(cost > 0.0 && (2.0 * cost - standard).abs() < 1e-5, "{bill}");
    assert_eq!(bill["requests"], 1000);
    // The bill counts the tokens the journal's rows say.
    let input: u64 = rows(&output)
        .iter()
        .map(|row| row["usage"]["prompt_tokens"].as_u64().expect("usage"))
        .sum();
    assert_eq!(bill["input_tokens"], input);
    assert!(out.stderr.contains("at the batch price"), "{}", out.stderr);
    out.assert_no_key();

    // Run again: nothing left, nothing created.
    let again = bulk(&server, &batch_args(&prompts, &output, &[])).await;
    assert!(again.status.success(), "{}", again.dump());
    assert_eq!(jobs(&server).await.len(), 1, "no second job");
    assert!(again.stderr.contains("nothing to send"), "{}", again.stderr);
}

/// Starts a batch run in the background and SIGKILLs it as soon as the
/// emulator has created its job.
async fn killed_once_submitted(server: &Emulator, args: &[String]) {
    let running = StepCommand::new(BULK).against(server).args(args).spawn();
    wait_until("the job to be created", || {
        server
            .stats()
            .arrivals
            .iter()
            .any(|a| a.method == "batchGenerateContent" && a.status == 200)
    })
    .await;
    running.signal("KILL");
    let killed = running.wait().await;
    assert_eq!(killed.code(), None, "killed: {}", killed.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn killed_after_the_job_is_submitted_the_next_run_follows_it_and_creates_none() {
    let server = emulator(Duration::from_secs(2), Batch::default(), Faults::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 200);
    let output = dir.path().join("answers.jsonl");
    let args = batch_args(&prompts, &output, &[]);
    killed_once_submitted(&server, &args).await;

    let out = bulk(&server, &args).await;
    out.assert_accounted(200, false);
    assert_eq!(jobs(&server).await.len(), 1, "the same job, followed");
    assert_each_answered_once(&output, 200);
    assert!(
        out.stderr.contains("nothing is created twice"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_create_whose_answer_was_never_written_is_found_by_its_display_name() {
    let server = emulator(Duration::from_secs(2), Batch::default(), Faults::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 50);
    let output = dir.path().join("answers.jsonl");
    let args = batch_args(&prompts, &output, &[]);
    killed_once_submitted(&server, &args).await;
    // As if the process had died between the create call and writing its
    // answer down: only the intent is left in the ledger.
    let ledger = dir.path().join("answers.jsonl.batches");
    let intents: String = std::fs::read_to_string(&ledger)
        .expect("the ledger")
        .lines()
        .filter(|line| line.contains("\"event\":\"intent\""))
        .map(|line| format!("{line}\n"))
        .collect();
    assert_eq!(
        intents.lines().count(),
        1,
        "the intent was written before the create"
    );
    std::fs::write(&ledger, intents).expect("written");

    let out = bulk(&server, &args).await;
    out.assert_accounted(50, false);
    assert_eq!(
        jobs(&server).await.len(),
        1,
        "found by its name, not created again"
    );
    assert_each_answered_once(&output, 50);
}

#[tokio::test(flavor = "multi_thread")]
async fn results_files_come_out_of_order_and_are_joined_by_key() {
    let server = emulator(
        Duration::from_millis(200),
        Batch::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 60);
    let output = dir.path().join("answers.jsonl");
    // Inline never: the requests go as an uploaded file, the results come back as one.
    let out = bulk(
        &server,
        &batch_args(&prompts, &output, &["--batch-inline-max", "0"]),
    )
    .await;
    out.assert_accounted(60, false);
    assert!(
        out.stderr.contains("as the uploaded file files/"),
        "{}",
        out.stderr
    );
    assert_each_answered_once(&output, 60);
    // Each answer is about its own question: the join is by key, not by position.
    for row in rows(&output) {
        let id = row["id"].as_str().expect("an id");
        let n = id.trim_start_matches('q');
        let text = row["text"].as_str().expect("a text");
        assert!(text.contains(&format!("number {n} birds")), "{id}: {text}");
    }
    let listed = jobs(&server).await;
    assert_eq!(listed.len(), 1);
    assert!(
        listed[0]["metadata"]["output"]["responsesFile"].is_string(),
        "a file job: {listed:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lines_that_failed_go_again_in_a_new_job_once() {
    let server = emulator(
        Duration::from_millis(200),
        Batch::default(),
        Faults {
            fail_503: 0.3,
            ..Faults::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 60);
    let output = dir.path().join("answers.jsonl");
    let out = bulk(&server, &batch_args(&prompts, &output, &[])).await;
    let summary = out.assert_accounted(60, false);
    let listed = jobs(&server).await;
    assert_eq!(
        listed.len(),
        2,
        "the failed lines went again, once: {listed:?}"
    );
    assert!(
        out.stderr.contains("sending again, in a new job"),
        "{}",
        out.stderr
    );
    // Every id has at most one answer; those without one have their error in the journal.
    let answered = answers_per_id(&output);
    assert!(answered.values().all(|&n| n == 1), "{answered:?}");
    assert_eq!(
        answered.len() as u64,
        summary["succeeded"].as_u64().expect("a count")
    );
    let failed: Vec<Value> = rows(&output)
        .into_iter()
        .filter(|r| r["ok"] == false)
        .collect();
    assert_eq!(
        failed.len() as u64,
        summary["failed"].as_u64().expect("a count")
    );
    for row in &failed {
        assert!(
            row["error"]
                .as_str()
                .is_some_and(|e| e.contains("overloaded")),
            "{row}"
        );
        assert!(!answered.contains_key(row["id"].as_str().expect("an id")));
    }
    assert!(
        summary["succeeded"].as_u64().expect("a count") > 40,
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn with_no_retry_left_the_failed_lines_are_reported() {
    let server = emulator(
        Duration::from_millis(100),
        Batch::default(),
        Faults {
            fail_503: 0.5,
            ..Faults::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 30);
    let output = dir.path().join("answers.jsonl");
    let out = bulk(
        &server,
        &batch_args(&prompts, &output, &["--batch-retries", "0"]),
    )
    .await;
    let summary = out.assert_accounted(30, false);
    assert_eq!(jobs(&server).await.len(), 1);
    let failed = summary["failed"].as_u64().expect("a count");
    assert!(failed > 0, "{summary}");
    assert!(out.stderr.contains("SUCCEEDED"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("run the same command again to continue"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_job_goes_again_then_its_prompts_are_reported() {
    let server = emulator(
        Duration::from_millis(100),
        Batch {
            fail_jobs: 1.0,
            ..Batch::default()
        },
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 10);
    let output = dir.path().join("answers.jsonl");
    let out = bulk(&server, &batch_args(&prompts, &output, &[])).await;
    let summary = out.assert_accounted(10, false);
    assert_eq!(summary["failed"], 10, "{}", out.dump());
    assert_eq!(
        job_states(&jobs(&server).await),
        ["BATCH_STATE_FAILED", "BATCH_STATE_FAILED"],
        "sent again once"
    );
    assert!(
        out.stderr.contains(": FAILED (code 13: The batch failed"),
        "{}",
        out.stderr
    );
    for line in out.results() {
        let error = line["error"].as_str().expect("failed");
        assert!(error.contains("ended FAILED"), "{error}");
    }
    assert_eq!(
        bill(&out)["requests"],
        0,
        "nothing answered, nothing billed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_job_leaves_its_prompts_to_the_next_run_and_says_so() {
    let server = emulator(
        Duration::from_secs(3600),
        Batch {
            expiry: Duration::from_millis(200),
            ..Batch::default()
        },
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 10);
    let output = dir.path().join("answers.jsonl");
    let out = bulk(&server, &batch_args(&prompts, &output, &[])).await;
    let summary = out.assert_accounted(10, false);
    assert_eq!(summary["not_done"], 10, "{}", out.dump());
    assert_eq!(job_states(&jobs(&server).await), ["BATCH_STATE_EXPIRED"]);
    for line in out.results() {
        let reason = line["not_done"].as_str().expect("not done");
        assert!(
            reason.contains("ended EXPIRED: run the same command again"),
            "{reason}"
        );
    }
    assert!(rows(&output).is_empty(), "nothing to write");
    let ledger = std::fs::read_to_string(dir.path().join("answers.jsonl.batches")).expect("ledger");
    assert!(ledger.contains("\"state\":\"EXPIRED\""), "{ledger}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_cancelled_with_cancel_batch_is_reported_by_the_run_that_follows_it() {
    let server = emulator(
        Duration::from_secs(3600),
        Batch::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 10);
    let output = dir.path().join("answers.jsonl");
    let args = batch_args(&prompts, &output, &[]);
    let running = StepCommand::new(BULK).against(&server).args(&args).spawn();
    wait_until("the job to be created", || {
        server
            .stats()
            .arrivals
            .iter()
            .any(|a| a.method == "batchGenerateContent" && a.status == 200)
    })
    .await;
    // Wait for the ledger to name the job, then cancel it from another process.
    let ledger = dir.path().join("answers.jsonl.batches");
    wait_until("the ledger to name the job", || {
        std::fs::read_to_string(&ledger).is_ok_and(|text| text.contains("\"event\":\"created\""))
    })
    .await;
    let cancel = bulk(
        &server,
        &[
            "--output".to_string(),
            output.to_str().expect("UTF-8").to_string(),
            "--cancel-batch".to_string(),
        ],
    )
    .await;
    assert!(cancel.status.success(), "{}", cancel.dump());
    assert!(
        cancel
            .stdout
            .contains("asked the server to cancel batches/"),
        "{}",
        cancel.dump()
    );

    let out = running.wait().await;
    let summary = out.assert_accounted(10, false);
    assert_eq!(summary["not_done"], 10);
    assert!(out.stderr.contains("CANCELLED"), "{}", out.stderr);
    assert_eq!(job_states(&jobs(&server).await), ["BATCH_STATE_CANCELLED"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn ctrl_c_leaves_the_job_running_and_says_how_to_collect_or_cancel_it() {
    let server = emulator(Duration::from_secs(3), Batch::default(), Faults::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 20);
    let output = dir.path().join("answers.jsonl");
    let args = batch_args(&prompts, &output, &[]);
    let running = StepCommand::new(BULK).against(&server).args(&args).spawn();
    let ledger = dir.path().join("answers.jsonl.batches");
    wait_until("the ledger to name the job", || {
        std::fs::read_to_string(&ledger).is_ok_and(|text| text.contains("\"event\":\"created\""))
    })
    .await;
    running.signal("INT");
    let out = running.wait().await;
    out.assert_accounted(20, true);
    assert!(
        out.stderr.contains("keeps running on the server"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("--cancel-batch"), "{}", out.stderr);
    assert!(
        out.stderr.contains(":cancel"),
        "the curl line: {}",
        out.stderr
    );
    assert_eq!(job_states(&jobs(&server).await).len(), 1);

    // The same command collects the results of the same job.
    let again = bulk(&server, &args).await;
    again.assert_accounted(20, false);
    assert_eq!(jobs(&server).await.len(), 1);
    assert_each_answered_once(&output, 20);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_the_server_refuses_is_one_line_and_creates_nothing() {
    let server = emulator(
        Duration::from_millis(100),
        Batch {
            max_file_bytes: 100,
            ..Batch::default()
        },
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 10);
    let output = dir.path().join("answers.jsonl");
    let out = bulk(
        &server,
        &batch_args(&prompts, &output, &["--batch-inline-max", "0"]),
    )
    .await;
    out.assert_one_error_line("cannot upload the requests of a batch job", 0);
    assert!(jobs(&server).await.is_empty());
    assert!(rows(&output).is_empty());
    let ledger =
        std::fs::read_to_string(dir.path().join("answers.jsonl.batches")).unwrap_or_default();
    assert!(!ledger.contains("intent"), "no job intended: {ledger}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_at_create_cuts_the_job_and_waits_for_room() {
    // 40 prompts of 8 tokens each: 320 tokens, over an enqueued-token
    // limit of 200; a job of 20 fits, two at once do not.
    let server = emulator(
        Duration::from_millis(300),
        Batch {
            enqueued_tokens: Some(200),
            ..Batch::default()
        },
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 40);
    let output = dir.path().join("answers.jsonl");
    let out = bulk(&server, &batch_args(&prompts, &output, &[])).await;
    out.assert_accounted(40, false);
    assert_each_answered_once(&output, 40);
    let refused = server
        .stats()
        .arrivals
        .iter()
        .filter(|a| a.method == "batchGenerateContent" && a.status == 429)
        .count();
    assert!(refused > 0, "the server said 429");
    let listed = jobs(&server).await;
    assert!(listed.len() >= 2, "cut in several jobs: {listed:?}");
    assert!(
        out.stderr.contains("the batch quota is full"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn batch_mode_needs_an_output_and_says_so_in_one_line() {
    let server = emulator(Duration::ZERO, Batch::default(), Faults::default()).await;
    let out = bulk(
        &server,
        &["--mode".into(), "batch".into(), "-n".into(), "3".into()],
    )
    .await;
    out.assert_one_error_line("--mode batch needs --output", 0);
    assert!(server.stats().arrivals.is_empty(), "nothing sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_answer_is_only_used_for_the_prompt_it_was_asked_for() {
    let server = emulator(Duration::from_secs(1), Batch::default(), Faults::default()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 10);
    let output = dir.path().join("answers.jsonl");
    let args = batch_args(&prompts, &output, &[]);
    killed_once_submitted(&server, &args).await;
    // q3 is edited while its job runs: that job's answer is about the old text.
    let edited = std::fs::read_to_string(&prompts).expect("read").replace(
        "Question number 3 about",
        "Question number 3 (edited) about",
    );
    std::fs::write(&prompts, edited).expect("written");

    let out = bulk(&server, &args).await;
    out.assert_accounted(10, false);
    assert!(
        out.stderr.contains("1 prompt(s) of batches/"),
        "{}",
        out.stderr
    );
    assert_eq!(jobs(&server).await.len(), 2, "q3 went in a job of its own");
    assert_each_answered_once(&output, 10);
    let q3 = rows(&output)
        .into_iter()
        .find(|row| row["id"] == "q3")
        .expect("q3 answered");
    assert!(
        q3["text"].as_str().is_some_and(|t| t.contains("edited")),
        "{q3}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_intent_whose_create_never_reached_the_server_is_closed_and_its_prompts_sent() {
    let server = emulator(
        Duration::from_millis(100),
        Batch::default(),
        Faults::default(),
    )
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 5);
    let output = dir.path().join("answers.jsonl");
    // An old intent (written long ago) whose create never arrived.
    std::fs::write(
        dir.path().join("answers.jsonl.batches"),
        "{\"event\":\"intent\",\"display_name\":\"bulk-00000000000000aa-1\",\"set\":\"00000000000000aa\",\"attempt\":1,\"model\":\"gemini-flash-latest\",\"keys\":[\"q1\",\"q2\"],\"hashes\":[],\"at\":0}\n",
    )
    .expect("written");
    let out = bulk(&server, &batch_args(&prompts, &output, &[])).await;
    out.assert_accounted(5, false);
    assert!(
        out.stderr
            .contains("no job named bulk-00000000000000aa-1 is on the server"),
        "{}",
        out.stderr
    );
    assert_eq!(jobs(&server).await.len(), 1);
    assert_each_answered_once(&output, 5);
    let ledger = std::fs::read_to_string(dir.path().join("answers.jsonl.batches")).expect("ledger");
    assert!(ledger.contains("\"state\":\"NOT_FOUND\""), "{ledger}");
}
