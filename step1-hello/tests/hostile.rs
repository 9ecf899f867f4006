//! Step 1 against a hostile server (`testkit::hostile`): a
//! server that echoes the request headers, sends an endless body or line,
//! or trickles. The key must appear in no output, and every case must end
//! as one clear error line and exit code 1, not a panic, a hang or a leak.
//! Named as the proxy, it echoes the proxy's password: that must appear in
//! no output either, and a proxy URL whose password the HTTP stack would
//! misread is one error line that says to percent-encode it.

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

/// The key is nowhere in what the step printed, written as itself or with the escapes of
/// the escaping modes (`\u0041\u0049...`, `%41%49...`), and nothing panicked.
fn assert_clean(out: &StepOutput) {
    out.assert_no_panic();
    let all = out.all();
    for form in [KEY, r"\u0041\u0049", "%41%49"] {
        assert!(!all.contains(form), "the key leaked:\n{}", out.dump());
    }
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
        (Mode::EchoEscapedQuota429, &[]),
        (Mode::EchoEscapedQuota429, &["--json"]),
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
        // The key with every character escaped parses to the key: an answer, scrubbed.
        let out = ask(Mode::EchoEscaped, args).await;
        assert_clean(&out);
        assert_eq!(out.code(), Some(0), "{}", out.dump());
        assert!(out.all().contains("[redacted]"), "{}", out.dump());
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

/// The two halves of the proxy password below, each of which must never be printed.
const PROXY_PASSWORD_PIECES: [&str; 2] = ["Hunter7Left", "Hunter7Right"];

/// Step 1 with `var` naming a proxy for a plain-http base URL (so that the
/// whole request, `Proxy-Authorization` included, goes to the proxy).
async fn through_proxy(var: &str, proxy: &str, base_url: &str, args: &[&str]) -> StepOutput {
    StepCommand::new(STEP)
        .env("GOOGLE_GEMINI_BASE_URL", base_url)
        .env("GOOGLE_API_KEY", KEY)
        .env(var, proxy)
        .env("NO_PROXY", "")
        .env("no_proxy", "")
        .args(args)
        .run()
        .await
}

/// No half of the proxy password, and not the key, is in what the step printed.
fn assert_no_proxy_password(out: &StepOutput) {
    assert_clean(out);
    for piece in PROXY_PASSWORD_PIECES {
        assert!(
            !out.all().contains(piece),
            "{piece} leaked:\n{}",
            out.dump()
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_that_echoes_its_password_never_gets_it_printed() {
    // A password with a / (percent-encoded, as it must be) and one with a raw :,
    // with the Basic value the HTTP stack sends for each.
    let cases = [
        (
            "Hunter7Left%2FHunter7Right",
            "YW5uOkh1bnRlcjdMZWZ0L0h1bnRlcjdSaWdodA==",
        ),
        (
            "Hunter7Left:Hunter7Right",
            "YW5uOkh1bnRlcjdMZWZ0Okh1bnRlcjdSaWdodA==",
        ),
    ];
    let proxy = hostile::start(Mode::EchoStatus(400)).await;
    // Nothing listens at the base URL: only the proxy answers.
    let base_url = testkit::closed_port();
    for (var, (password, basic)) in ["HTTP_PROXY", "http_proxy", "ALL_PROXY"]
        .into_iter()
        .zip(cases.into_iter().cycle())
    {
        let proxy_url = format!("http://ann:{password}@{proxy}");
        for args in [&[][..], &["--json"]] {
            let out = through_proxy(var, &proxy_url, &base_url, args).await;
            assert_no_proxy_password(&out);
            assert!(!out.all().contains(basic), "{}", out.dump());
            assert_eq!(out.code(), Some(1), "{var}\n{}", out.dump());
            // The proxy did echo the header: its value shows as redacted.
            assert!(
                out.all().contains("Basic [redacted]"),
                "{var}\n{}",
                out.dump()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_proxy_password_the_http_stack_would_misread_is_one_error_line() {
    let base_url = testkit::closed_port();
    for (var, password) in [
        ("HTTPS_PROXY", "Hunter7Left/Hunter7Right"),
        ("https_proxy", "Hunter7Left?Hunter7Right"),
        ("HTTP_PROXY", "Hunter7Left#Hunter7Right"),
        ("ALL_PROXY", "Hunter7Left@Hunter7Right"),
    ] {
        let proxy_url = format!("http://ann:{password}@127.0.0.1:9");
        let out = through_proxy(var, &proxy_url, &base_url, &[]).await;
        assert_no_proxy_password(&out);
        out.assert_one_error_line(var, 0);
        assert!(out.stderr.contains("percent-encoded"), "{}", out.dump());
    }
}
