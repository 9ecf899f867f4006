//! Typing what a server sent, with the client's secrets taken out first.
//!
//! Every answer, streamed event and error body goes through here. Two promises meet:
//! nothing a server echoes may carry a secret out (the key, a URL's password, in any
//! form: as written, JSON-escaped, percent-encoded), and a clean answer -- nearly all of
//! them -- costs no more than `serde_json::from_slice` into its type. So the raw bytes are
//! asked first whether they could hold a secret at all ([`Redactor::is_clean`], a
//! vectorised search); only a body that could is parsed into a `serde_json::Value`,
//! scrubbed string by string, and typed from that.

use std::sync::LazyLock;

use memchr::memmem::Finder;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{ApiError, Error, Result};
use crate::escaped::json_escape;
use crate::redact::Redactor;

/// Parses a 2xx payload; an `{"error":...}` object in it is the server's error, not an empty answer.
///
/// (Unknown fields are ignored, so without this check an error object would
/// parse as a response with no candidates.) A payload that could hold a secret has
/// every string (and member name) scrubbed before it is typed; the common payload,
/// clean and with no member named `error`, is typed in one pass, straight from the bytes.
pub(crate) fn parse<T: DeserializeOwned>(
    bytes: &[u8],
    what: &'static str,
    redactor: &Redactor,
) -> Result<T> {
    if redactor.is_clean(bytes) && !may_name_an_error(bytes) {
        // Checked as UTF-8 once, whole (quicker than string by string, as `from_slice` does).
        let text = std::str::from_utf8(bytes).map_err(|e| Error::decode(what, e, bytes))?;
        return serde_json::from_str(text).map_err(|e| Error::decode(what, e, bytes));
    }
    let decode_error = |e: serde_json::Error| Error::decode(what, e, &redactor.body(bytes));
    let mut value: Value = serde_json::from_slice(bytes).map_err(decode_error)?;
    if value.get("error").is_some() {
        return Err(api_error(None, bytes, redactor));
    }
    redactor.json(&mut value);
    T::deserialize(value).map_err(decode_error)
}

/// The error a server's error body describes (`http_status` if it came with one), with
/// every secret out of it: the body is scrubbed before it is parsed or cut into a
/// snippet, and every text of the error after (a secret escaped twice surfaces only then).
pub(crate) fn api_error(http_status: Option<u16>, body: &[u8], redactor: &Redactor) -> Error {
    let body = redactor.body(body);
    redactor.error(Error::from(ApiError::from_body(http_status, &body)))
}

/// Whether a JSON payload may have a member named `error`: it holds `"error"`, or a
/// `\uXXXX` escape of one of its letters (`"\u0065rror"` parses to the same name).
fn may_name_an_error(bytes: &[u8]) -> bool {
    static NAME: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
    static ESCAPE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\\u"));
    NAME.find(bytes).is_some()
        || ESCAPE
            .find_iter(bytes)
            .filter_map(|at| json_escape(bytes, at))
            .any(|(c, _)| matches!(c, 'e' | 'r' | 'o'))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::redact::REDACTED;
    use crate::types::GenerateContentResponse;

    const KEY: &str = "AIzaSyPayload_test-0123/456789abcdefXYZ";

    /// An answer with `text`, `version` and `id` in its string fields, and `extra` in a
    /// field the type does not know.
    fn answer(text: &str, version: &str, id: &str, extra: &str) -> String {
        format!(
            r#"{{"candidates":[{{"content":{{"parts":[{{"text":"{text}"}}],"role":"model"}},"finishReason":"STOP","index":0}}],"usageMetadata":{{"promptTokenCount":5,"candidatesTokenCount":7,"totalTokenCount":12}},"modelVersion":"{version}","responseId":"{id}","unknownField":"{extra}"}}"#
        )
    }

    #[test]
    fn an_error_object_in_a_200_payload_is_an_error() {
        let body = br#"{"error":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#;
        let result: Result<GenerateContentResponse> = parse(body, "x", &Redactor::default());
        assert_eq!(result.unwrap_err().api().unwrap().http_status, 503);
        // The member's name written with an escape is the same name.
        let body = br#"{"\u0065rror":{"code":503,"message":"overloaded","status":"UNAVAILABLE"}}"#;
        let result: Result<GenerateContentResponse> = parse(body, "x", &Redactor::default());
        assert_eq!(result.unwrap_err().api().unwrap().http_status, 503);
    }

    #[test]
    fn a_clean_answer_is_typed_as_the_scrubbing_path_types_it() {
        let body = answer(r#"line\none \"q\" \u003cb\u003e 100%"#, "v1", "id", "x");
        let fast: GenerateContentResponse =
            parse(body.as_bytes(), "x", &Redactor::new([KEY])).unwrap();
        let slow: GenerateContentResponse =
            serde_json::from_value(serde_json::from_str(&body).unwrap()).unwrap();
        assert_eq!(fast, slow);
        assert_eq!(fast.text(), "line\none \"q\" <b> 100%");
    }

    #[test]
    fn a_decode_error_quotes_no_secret() {
        let body = format!(r#"{{"candidates": [ \u0041{} "#, &KEY[1..]);
        let error = parse::<GenerateContentResponse>(body.as_bytes(), "x", &Redactor::new([KEY]))
            .unwrap_err();
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(&KEY[1..]), "{shown}");
    }

    /// One way to write `c` in a JSON string: as itself, a `\u` escape, `%XX` (its
    /// digits maybe escaped), or `\/`.
    fn spelling(c: char) -> impl Strategy<Value = String> {
        let byte = c as u32;
        prop_oneof![
            Just(c.to_string()),
            Just(format!("\\u{byte:04x}")),
            Just(format!("\\u{byte:04X}")),
            Just(format!("%{byte:02X}")),
            Just(format!("%{byte:02x}")),
            Just(format!("\\u0025{byte:02x}")),
            Just(format!(
                "%\\u{:04x}{:x}",
                u32::from(b"0123456789abcdef"[(byte >> 4) as usize]),
                byte & 0xf
            )),
            Just(if c == '/' {
                "\\/".to_string()
            } else {
                c.to_string()
            }),
        ]
    }

    /// The key, each of its characters written in its own way.
    fn escaped_key() -> impl Strategy<Value = String> {
        KEY.chars()
            .map(spelling)
            .collect::<Vec<_>>()
            .prop_map(|parts| parts.concat())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// However the key is escaped, in whichever string field, the typed answer shows
        /// `[redacted]` in its place and the key nowhere.
        #[test]
        fn any_escaping_of_the_key_in_any_field_is_caught(
            key in escaped_key(),
            field in 0..4usize,
            before in "[a-z .,!?]{0,12}",
            after in "[a-z .,!?]{0,12}",
        ) {
            let echo = format!("{before}{key}{after}");
            let mut fields = ["answer", "version", "id", "extra"].map(str::to_string);
            fields[field] = echo;
            let body = answer(&fields[0], &fields[1], &fields[2], &fields[3]);
            let redactor = Redactor::new([KEY]);
            prop_assert!(!redactor.is_clean(body.as_bytes()));
            let typed: GenerateContentResponse = parse(body.as_bytes(), "x", &redactor).unwrap();
            let expected = format!("{before}{REDACTED}{after}");
            let shown = [
                typed.text(),
                typed.model_version.clone().unwrap_or_default(),
                typed.response_id.clone().unwrap_or_default(),
            ];
            if field < 3 {
                prop_assert_eq!(&shown[field], &expected);
            }
            let all = format!("{typed:?}");
            prop_assert!(!all.contains(KEY), "{}", all);
            prop_assert!(!all.contains(&KEY[4..]), "{}", all);
        }

        /// The same in an error body: no text of the error carries the key.
        #[test]
        fn any_escaping_of_the_key_in_an_error_body_is_caught(
            key in escaped_key(),
            before in "[a-z .,!?]{0,12}",
        ) {
            let body = format!(
                r#"{{"error":{{"code":429,"message":"{before}{key}","status":"RESOURCE_EXHAUSTED","details":[{{"@type":"type.googleapis.com/google.rpc.QuotaFailure","violations":[{{"quotaMetric":"m","quotaId":"PerMinute-{key}"}}]}}]}}}}"#
            );
            let redactor = Redactor::new([KEY]);
            let error = api_error(Some(429), body.as_bytes(), &redactor);
            let shown = format!("{error} {error:?}");
            prop_assert!(!shown.contains(KEY), "{}", shown);
            prop_assert!(!shown.contains(&KEY[4..]), "{}", shown);
            let quota_id = error.api().and_then(|api| api.quota.as_ref()).map(|q| q.quota_id.clone());
            prop_assert_eq!(quota_id, Some(format!("PerMinute-{REDACTED}")));
        }
    }
}
