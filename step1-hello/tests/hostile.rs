//! Step 1 against a hostile server (`testkit::hostile`): a
//! server that echoes the request headers, sends an endless body or line,
//! or trickles. The key must appear in no output, and every case must end
//! as one clear error line and exit code 1, not a panic, a hang or a leak.

use testkit::hostile::{self, KEY, Mode};
use testkit::{StepCommand, StepOutput};

const STEP: &str = env!("CARGO_BIN_EXE_step1-hello");

/// Step 1 against a fresh hostile server in `mode`, with `args`.
async fn ask(mode: Mode, args: &[&str]) -> StepOutput {
    let addr = hostile::start(mode).await;
    StepCommand::new(STEP)
        .env("GOOGLE_GEMINI_BASE_URL", &hostile::base_url(addr))
        .env("GOOGLE_API_KEY", KEY)
        .args(args)
        .run()
        .await
}

/// The key is nowhere in what the step printed, and nothing panicked.
fn assert_clean(out: &StepOutput) {
    out.assert_no_panic();
    assert!(!out.all().contains(KEY), "the key leaked:\n{}", out.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn echoed_headers_never_print_the_key() {
    let cases = [
        (Mode::EchoStatus(400), &[][..]),
        (Mode::EchoStatus(403), &[]),
        (Mode::EchoHtml502, &[]),
        (Mode::EchoQuota429, &[]),
        (Mode::EchoMalformed, &[]),
        (Mode::EchoHtml502, &["--stream"]),
        (Mode::EchoQuota429, &["--json"]),
    ];
    for (mode, args) in cases {
        let out = ask(mode.clone(), args).await;
        assert_clean(&out);
        assert_eq!(out.code(), Some(1), "{mode:?}\n{}", out.dump());
        assert!(out.all().contains("[redacted]"), "{mode:?}\n{}", out.dump());
    }
    for args in [&[][..], &["--json"], &["--stream"]] {
        let out = ask(Mode::EchoModelVersion, args).await;
        assert_clean(&out);
    }
    let out = ask(Mode::EchoStream, &["--stream"]).await;
    assert_clean(&out);
    assert_eq!(out.code(), Some(0), "{}", out.dump());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_endless_body_or_line_is_one_error_line() {
    for (mode, args) in [
        (Mode::EndlessBody, &["--max-response-mib", "1"][..]),
        (Mode::EndlessBody, &[]),
        (
            Mode::EndlessSseLine,
            &["--stream", "--max-response-mib", "1"],
        ),
    ] {
        let out = ask(mode.clone(), args).await;
        assert_clean(&out);
        assert_eq!(out.code(), Some(1), "{mode:?}\n{}", out.dump());
        assert!(
            out.stderr.contains("was larger than"),
            "{mode:?}\n{}",
            out.dump()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickling_stream_ends_at_the_timeout() {
    let out = ask(Mode::Trickle, &["--stream", "--timeout", "3"]).await;
    assert_clean(&out);
    assert_eq!(out.code(), Some(1), "{}", out.dump());
    assert!(out.stderr.contains("no answer within 3s"), "{}", out.dump());
}
