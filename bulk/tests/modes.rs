//! The bill, `--mode flex` and `--mode auto` end to end: the binary against
//! the emulator on 127.0.0.1, with instant answers.
//!
//! The bill's arithmetic is tested on its own in `src/bill.rs`; here, that a
//! real run's bill counts the tokens its answers carried, at the prices of
//! the table in use and of the mode each answer went by.

use std::{path::Path, time::Duration};

use emulator::{Emulator, Flex, Settings};
use serde_json::Value;
use testkit::{StepCommand, StepOutput};

const BULK: &str = env!("CARGO_BIN_EXE_bulk");

async fn emulator(settings: Settings) -> Emulator {
    emulator::start(settings)
        .await
        .expect("the emulator starts")
}

async fn bulk(server: &Emulator, args: &[&str]) -> StepOutput {
    StepCommand::new(BULK)
        .against(server)
        .args(args)
        .run()
        .await
}

/// The sums of the answers' usage, from the `--json` result lines:
/// (input, output, thinking).
fn token_sums(out: &StepOutput) -> (u64, u64, u64) {
    let sum = |field: &str| -> u64 {
        out.results()
            .iter()
            .filter_map(|line| line["usage"][field].as_u64())
            .sum()
    };
    (
        sum("prompt_tokens"),
        sum("candidates_tokens"),
        sum("thoughts_tokens"),
    )
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-6)
}

#[tokio::test(flavor = "multi_thread")]
async fn every_run_ends_with_its_bill_at_the_published_price() {
    let server = emulator(Settings::instant()).await;
    let out = bulk(&server, &["-n", "3", "--tier", "tier1", "--json"]).await;
    out.assert_accounted(3, false);
    let bill = &out.summary()["bill"];
    let (input, output, thinking) = token_sums(&out);
    assert!(input > 0 && output > 0 && thinking > 0, "{bill}");
    assert_eq!(
        (
            &bill["input_tokens"],
            &bill["output_tokens"],
            &bill["thinking_tokens"]
        ),
        (
            &Value::from(input),
            &Value::from(output),
            &Value::from(thinking)
        )
    );
    // gemini-flash-latest is priced as gemini-2.5-flash: $0.30 in, $2.50 out (thinking included).
    assert_eq!(bill["priced_as"], "gemini-2.5-flash");
    let expected = (input as f64 * 0.30 + (output + thinking) as f64 * 2.50) / 1e6;
    assert!(close(&bill["cost_usd"], expected), "{bill}");
    assert!(close(&bill["standard_usd"], expected), "{bill}");
    assert!(close(&bill["billed_usd"], expected), "{bill}");
    assert_eq!(bill["mode"], "standard");

    let text = bulk(&server, &["-n", "2", "--tier", "tier1"]).await;
    let last = text.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(
            "bill: 2 answered on gemini-flash-latest (priced as gemini-2.5-flash) (standard): "
        ),
        "{}",
        text.dump()
    );
    assert!(last.contains(" at the standard price (prices: "), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_free_tier_bills_nothing_and_says_what_it_would_cost() {
    let server = emulator(Settings::instant()).await;
    let out = bulk(&server, &["-n", "2", "--json"]).await;
    let bill = &out.summary()["bill"];
    assert_eq!(bill["tier"], "free");
    assert!(close(&bill["billed_usd"], 0.0), "{bill}");
    assert!(
        bill["standard_usd"].as_f64().is_some_and(|usd| usd > 0.0),
        "{bill}"
    );
    assert!(
        out.stderr
            .contains("free tier: $0 billed (standard price would be $"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_prices_file_replaces_the_table() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prices = dir.path().join("prices.json");
    std::fs::write(
        &prices,
        r#"{"source": "our contract", "read": "2027-01-01",
            "modes": {"flex": 0.5, "batch": 0.25},
            "models": {"gemini-2.5-flash": {"input": 1.0, "output": 2.0}}}"#,
    )
    .expect("written");
    let path = prices.to_str().expect("UTF-8");
    let out = bulk(
        &server,
        &["-n", "2", "--tier", "tier1", "--json", "--prices", path],
    )
    .await;
    let bill = &out.summary()["bill"];
    let (input, output, thinking) = token_sums(&out);
    let expected = (input as f64 + (output + thinking) as f64 * 2.0) / 1e6;
    assert!(close(&bill["cost_usd"], expected), "{bill}");
    assert_eq!(bill["prices"], "our contract, read 2027-01-01");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_prices_file_is_one_line_and_sends_nothing() {
    let server = emulator(Settings::instant()).await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prices = dir.path().join("prices.json");
    for (bad, mentions) in [
        (
            r#"{"modes": {"flex": 0.5, "batch": 0.5}, "models": {"gemini-2.5-flash": {"input": -1, "output": 2}}}"#,
            "models.gemini-2.5-flash.input",
        ),
        (r#"{"modes": {"flex": 0.5, "batch": 0.5}}"#, "models"),
        ("not a table", "is not a usable price table"),
    ] {
        std::fs::write(&prices, bad).expect("written");
        let out = bulk(
            &server,
            &["-n", "2", "--prices", prices.to_str().expect("UTF-8")],
        )
        .await;
        out.assert_one_error_line(mentions, 0);
    }
    let missing = bulk(
        &server,
        &["-n", "2", "--prices", "/nonexistent/prices.json"],
    )
    .await;
    missing.assert_one_error_line("/nonexistent/prices.json", 0);
    assert!(server.stats().arrivals.is_empty(), "nothing was sent");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_shed_flex_request_is_retried_with_backoff_and_billed_at_half_price() {
    let server = emulator(Settings {
        flex: Flex {
            shed_every: 2,
            ..Flex::default()
        },
        ..Settings::instant()
    })
    .await;
    let out = bulk(
        &server,
        &[
            "-n",
            "6",
            "--mode",
            "flex",
            "--backoff",
            "10ms",
            "--tier",
            "tier1",
            "--json",
        ],
    )
    .await;
    let summary = out.assert_accounted(6, false);
    let shed = server
        .stats()
        .generates()
        .iter()
        .filter(|a| a.status == 429)
        .count();
    assert!(shed > 0, "the emulator shed some");
    assert_eq!(summary["rate_limited"].as_u64(), Some(shed as u64));
    assert!(
        summary["retries"]
            .as_u64()
            .is_some_and(|r| r >= shed as u64),
        "{summary}"
    );
    assert!(
        out.stderr
            .contains(&format!("the server shed {shed} flex attempt(s)")),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr
            .contains("although the limiter kept to its limits"),
        "{}",
        out.stderr
    );
    let bill = &summary["bill"];
    assert_eq!(bill["by_mode"].as_array().map(Vec::len), Some(1), "{bill}");
    assert_eq!(
        bill["by_mode"][0]["mode"], "flex",
        "the server said flex served them"
    );
    let (cost, standard) = (
        bill["cost_usd"].as_f64().expect("priced"),
        bill["standard_usd"].as_f64().expect("priced"),
    );
    assert!(cost > 0.0 && (2.0 * cost - standard).abs() < 1e-6, "{bill}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fallback_sends_what_is_left_at_the_standard_price() {
    // Every flex request is shed: only the fallback gets answers.
    let server = emulator(Settings {
        flex: Flex {
            shed_every: 1,
            ..Flex::default()
        },
        ..Settings::instant()
    })
    .await;
    let out = bulk(
        &server,
        &[
            "-n",
            "3",
            "--mode",
            "flex",
            "--fallback",
            "standard",
            "--fallback-after",
            "300ms",
            "--backoff",
            "100ms",
            "--max-retries",
            "20",
            "--tier",
            "tier1",
            "--json",
        ],
    )
    .await;
    let summary = out.assert_accounted(3, false);
    assert!(
        summary["rate_limited"].as_u64().is_some_and(|n| n >= 3),
        "{summary}"
    );
    let bill = &summary["bill"];
    assert_eq!(bill["by_mode"].as_array().map(Vec::len), Some(1), "{bill}");
    assert_eq!(bill["by_mode"][0]["mode"], "standard");
    assert_eq!(bill["mode"], "flex", "the run was asked for flex");
}

fn prompts_file(dir: &Path, n: usize) -> String {
    let path = dir.join("prompts.jsonl");
    let text: String = (1..=n)
        .map(|i| format!("{{\"prompt\":\"Question {i}?\",\"id\":\"q{i}\"}}\n"))
        .collect();
    std::fs::write(&path, text).expect("written");
    path.to_str().expect("UTF-8").to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_picks_the_cheapest_mode_in_time_and_says_why_first() {
    let server = emulator(Settings {
        batch: emulator::Batch {
            turnaround: Duration::from_millis(100),
            ..emulator::Batch::default()
        },
        ..Settings::instant()
    })
    .await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let prompts = prompts_file(dir.path(), 5);
    let output = dir.path().join("answers.jsonl");
    let output = output.to_str().expect("UTF-8");
    let out = bulk(
        &server,
        &[
            "--prompts",
            &prompts,
            "--output",
            output,
            "--mode",
            "auto",
            "--deadline",
            "1h",
            "--batch-expect",
            "1s",
            "--batch-poll",
            "100ms",
            "--tier",
            "tier1",
            "--json",
        ],
    )
    .await;
    out.assert_accounted(5, false);
    let first = out.stderr.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("--mode auto chose batch, the cheapest that finishes within 1 h"),
        "{}",
        out.stderr
    );
    for mode in ["standard about", "flex about", "batch within 1 s"] {
        assert!(first.contains(mode), "{mode}: {first}");
    }
    assert_eq!(out.summary()["bill"]["mode"], "batch");
    let jobs = server
        .stats()
        .arrivals
        .iter()
        .filter(|a| a.method == "batchGenerateContent")
        .count();
    assert_eq!(jobs, 1);

    // Without --output, batch is out: flex is the cheapest left.
    let out = bulk(
        &server,
        &[
            "-n",
            "2",
            "--mode",
            "auto",
            "--deadline",
            "2d",
            "--tier",
            "tier1",
            "--json",
        ],
    )
    .await;
    out.assert_accounted(2, false);
    assert!(
        out.stderr.contains("--mode auto chose flex"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("needs --output"), "{}", out.stderr);
    assert_eq!(out.summary()["bill"]["by_mode"][0]["mode"], "flex");
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_needs_a_deadline_and_a_fallback_needs_flex() {
    let server = emulator(Settings::instant()).await;
    bulk(&server, &["--mode", "auto"])
        .await
        .assert_usage_error();
    let out = bulk(
        &server,
        &[
            "--mode",
            "standard",
            "--fallback",
            "standard",
            "--fallback-after",
            "1m",
        ],
    )
    .await;
    out.assert_one_error_line("--fallback applies to --mode flex", 0);
    assert!(server.stats().arrivals.is_empty());
}
