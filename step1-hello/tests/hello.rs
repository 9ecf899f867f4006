//! Step 1 end to end: one question, one answer, printed.

use emulator::Settings;
use testkit::StepCommand;

const STEP: &str = env!("CARGO_BIN_EXE_step1-hello");

#[tokio::test(flavor = "multi_thread")]
async fn prints_the_answer_and_a_footer() {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let out = StepCommand::new(STEP).against(&server).run().await;

    assert!(out.status.success(), "{}", out.all());
    assert!(
        out.stdout.to_lowercase().contains("migrat"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("tokens:"), "{}", out.stdout);
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_the_same_kind_of_answer() {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["--stream", "--prompt", "Why is the sky blue?"])
        .run()
        .await;

    assert!(out.status.success(), "{}", out.all());
    assert!(out.stdout.len() > 40, "{}", out.stdout);
    let calls: Vec<String> = server
        .stats()
        .arrivals
        .iter()
        .map(|a| a.method.clone())
        .collect();
    assert!(
        calls.contains(&"streamGenerateContent".to_string()),
        "{calls:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn json_gives_the_shared_summary_object() {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["--json"])
        .run()
        .await;

    let summary = out.summary();
    assert_eq!(summary["requests"], 1);
    assert_eq!(summary["succeeded"], 1);
    assert!(summary["latency_ms"]["max"].is_u64());
}

#[tokio::test(flavor = "multi_thread")]
async fn runs_offline_on_the_built_in_emulator_without_a_key() {
    // The newcomer's path: no key, no base URL. The default emulator has
    // realistic latency, so this one test takes a few seconds.
    let out = StepCommand::new(STEP).run().await;

    assert!(out.status.success(), "{}", out.all());
    assert!(out.stderr.contains("emulator"), "{}", out.stderr);
    assert!(
        out.stdout.to_lowercase().contains("migrat"),
        "{}",
        out.stdout
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn timeline_draws_the_one_request() {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let path = std::env::temp_dir().join(format!("step1-timeline-{}.svg", std::process::id()));
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["--timeline".as_ref(), path.as_os_str()])
        .run()
        .await;

    assert!(out.status.success(), "{}", out.all());
    let svg = std::fs::read_to_string(&path).expect("the timeline was written");
    let _ = std::fs::remove_file(&path);
    assert_eq!(svg.matches(r#"class="ok""#).count(), 1, "{svg}");
    assert!(svg.contains("step1-hello: 1 request, 1 answered"), "{svg}");
}

/// A typo in the model name ends with one line that names the real models,
/// the intended one first: the built-in emulator is gone after the run, so
/// "ask the server for its list" would be no help.
#[tokio::test(flavor = "multi_thread")]
async fn a_typo_in_the_model_lists_the_closest_models() {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["--model", "gemini-flash-lates"])
        .run()
        .await;

    assert_eq!(out.code(), Some(1), "{}", out.all());
    let line = out
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_else(|| panic!("an error line\n{}", out.all()));
    let (_, models) = line
        .split_once("models, closest first: ")
        .unwrap_or_else(|| panic!("a list of models in {line}"));
    let models: Vec<&str> = models.split(", ").collect();
    assert_eq!(models[0], "gemini-flash-latest", "{line}");
    assert!(models.contains(&"gemini-2.5-flash"), "{line}");
    assert!(!line.contains("GET /v1beta/models"), "{line}");
    assert!(out.stdout.is_empty(), "{}", out.all());
}

/// A real model of the recorded list, not only the aliases, answers offline.
#[tokio::test(flavor = "multi_thread")]
async fn a_real_older_model_works_offline() {
    let server = emulator::start(Settings::instant())
        .await
        .expect("emulator starts");
    let out = StepCommand::new(STEP)
        .against(&server)
        .args(["--model", "gemini-2.0-flash"])
        .run()
        .await;

    assert!(out.status.success(), "{}", out.all());
    assert!(out.stdout.contains("[gemini-2.0-flash |"), "{}", out.stdout);
    assert!(out.stdout.contains(" 0 thinking"), "{}", out.stdout);
}
