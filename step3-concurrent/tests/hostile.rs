//! Step 3 against a hostile server (`testkit::hostile`) that
//! echoes the request headers into what it answers: the key must appear in
//! no output, human or `--json`.

use testkit::StepCommand;
use testkit::hostile::{self, KEY, Mode};

const STEP: &str = env!("CARGO_BIN_EXE_step3-concurrent");

#[tokio::test(flavor = "multi_thread")]
async fn echoed_headers_never_print_the_key() {
    for mode in [
        Mode::EchoStatus(400),
        Mode::EchoHtml502,
        Mode::EchoQuota429,
        Mode::EchoMalformed,
        Mode::EchoModelVersion,
        Mode::EchoEscaped,
        Mode::EchoEscapedQuota429,
    ] {
        for json in [false, true] {
            let addr = hostile::start(mode.clone()).await;
            let out = StepCommand::new(STEP)
                .env("GOOGLE_GEMINI_BASE_URL", &hostile::base_url(addr))
                .env("GOOGLE_API_KEY", KEY)
                .args(["-n", "3"])
                .args(json.then_some("--json"))
                .run()
                .await;
            out.assert_no_panic();
            for form in [KEY, r"\u0041\u0049", "%41%49"] {
                assert!(
                    !out.all().contains(form),
                    "{mode:?}: the key leaked\n{}",
                    out.dump()
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_absurd_retry_delay_is_a_failed_request_not_a_panic() {
    let addr = hostile::start(Mode::RetryDelay("9223372036854775807s")).await;
    let out = StepCommand::new(STEP)
        .env("GOOGLE_GEMINI_BASE_URL", &hostile::base_url(addr))
        .env("GOOGLE_API_KEY", KEY)
        .args(["-n", "2", "--json"])
        .run()
        .await;
    out.assert_no_panic();
    assert_eq!(out.code(), Some(1), "{}", out.dump());
    assert_eq!(out.summary()["failed"], 2, "{}", out.dump());
    assert!(
        out.errors().iter().all(|e| e.contains("given up")),
        "{}",
        out.dump()
    );
}
