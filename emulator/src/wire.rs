//! Response bodies as they go on the wire: types in the real field order, and the two
//! encodings the real server uses.
//!
//! Field order matters to anyone diffing bodies against a capture, and `serde_json::Value`
//! sorts keys, so every body is a struct whose fields are declared in the order the server
//! sends them (`fixtures/unary-success-thinking-reply-thought-summary.json`). Zero counts are
//! left out, as the real API (proto3 JSON) does.
//!
//! - unary bodies and errors: pretty-printed, 2-space indent, trailing newline;
//! - SSE events: `data: ` + compact JSON with `": "` after keys and a bare `,` between members
//!   (exactly the bytes of `fixtures/streaming-*.txt`) + `\r\n\r\n`.

use std::io;

use bytes::Bytes;
use serde::Serialize;
use serde_json::ser::Formatter;

/// A GenerateContentResponse, or one stream chunk of it.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// Absent when the prompt was blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidates: Option<Vec<Candidate>>,
    /// Present when the prompt was blocked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Token accounting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    /// The model that actually ran.
    pub model_version: String,
    /// Same id in every chunk of one response.
    pub response_id: String,
    /// Fields a newer server might add (used by the "odd body" fault).
    #[serde(flatten)]
    pub extra: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One candidate answer.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// Absent on some finishes (e.g. RECITATION); may have no `parts`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Only on the final chunk.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Always 0; Gemini 2.5 sends it even though it is zero.
    pub index: u32,
}

/// The model's turn.
#[derive(Clone, Debug, Serialize)]
pub struct Content {
    /// Absent when the model produced nothing (MAX_TOKENS spent on thinking).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parts: Option<Vec<Part>>,
    /// Always `model`.
    pub role: &'static str,
}

/// A text part; thought summaries carry `"thought": true`.
#[derive(Clone, Debug, Serialize)]
pub struct Part {
    /// The text.
    pub text: String,
    /// True for a thought summary.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thought: Option<bool>,
}

/// `usageMetadata`, zero fields omitted.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UsageMetadata {
    /// Prompt tokens.
    #[serde(skip_serializing_if = "is_zero")]
    pub prompt_token_count: u32,
    /// Answer tokens so far (thoughts excluded).
    #[serde(skip_serializing_if = "is_zero")]
    pub candidates_token_count: u32,
    /// prompt + candidates + thoughts.
    #[serde(skip_serializing_if = "is_zero")]
    pub total_token_count: u32,
    /// `[{"modality": "TEXT", "tokenCount": prompt}]`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
    /// Thinking tokens.
    #[serde(skip_serializing_if = "is_zero")]
    pub thoughts_token_count: u32,
    /// The tier that served the request (`flex`, `standard`, `priority`), when the request
    /// named one. The field is in the SDK's `UsageMetadata`; its values here are *assumed*
    /// (docs/wire.md#flex-and-priority).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<&'static str>,
}

impl UsageMetadata {
    /// Usage with the total computed as prompt + candidates + thoughts.
    pub fn new(prompt: u32, candidates: u32, thoughts: u32) -> UsageMetadata {
        UsageMetadata {
            prompt_token_count: prompt,
            candidates_token_count: candidates,
            total_token_count: prompt + candidates + thoughts,
            prompt_tokens_details: text_details(prompt),
            thoughts_token_count: thoughts,
            service_tier: None,
        }
    }
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// `[{"modality": "TEXT", "tokenCount": n}]`, or nothing for zero.
pub fn text_details(n: u32) -> Vec<ModalityTokenCount> {
    if n == 0 {
        Vec::new()
    } else {
        vec![ModalityTokenCount {
            modality: "TEXT",
            token_count: n,
        }]
    }
}

/// Tokens of one modality.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ModalityTokenCount {
    /// `TEXT` here.
    pub modality: &'static str,
    /// The count.
    pub token_count: u32,
}

/// Why a prompt was blocked.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// e.g. `SAFETY`.
    pub block_reason: &'static str,
    /// The ratings that caused it.
    pub safety_ratings: Vec<SafetyRating>,
}

/// A safety rating.
#[derive(Clone, Debug, Serialize)]
pub struct SafetyRating {
    /// `HARM_CATEGORY_*`.
    pub category: &'static str,
    /// `NEGLIGIBLE`, `LOW`, `MEDIUM` or `HIGH`.
    pub probability: &'static str,
}

/// `countTokens` response.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CountTokensResponse {
    /// Always present (clients expect it even for an empty prompt).
    pub total_tokens: u32,
    /// Per-modality split.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub prompt_tokens_details: Vec<ModalityTokenCount>,
}

/// One Model resource (`models.get`, and each entry of `models.list`).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Model {
    /// `models/<id>`.
    pub name: String,
    /// Free text version.
    pub version: &'static str,
    /// Display name.
    pub display_name: &'static str,
    /// Description.
    pub description: &'static str,
    /// Input limit.
    pub input_token_limit: u32,
    /// Output limit.
    pub output_token_limit: u32,
    /// Methods.
    pub supported_generation_methods: &'static [&'static str],
    /// Default temperature (an integer on the wire: `1`).
    pub temperature: u32,
    /// Default topP.
    pub top_p: f64,
    /// Default topK.
    pub top_k: u32,
    /// Highest temperature allowed (`2`).
    pub max_temperature: u32,
    /// Whether the model thinks (left out, not `false`, on models that do not).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub thinking: bool,
}

impl From<&crate::catalog::ModelInfo> for Model {
    fn from(info: &crate::catalog::ModelInfo) -> Model {
        Model {
            name: format!("models/{}", info.id),
            version: info.version,
            display_name: info.display_name,
            description: info.description,
            input_token_limit: info.input_token_limit,
            output_token_limit: info.output_token_limit,
            supported_generation_methods: &crate::catalog::SUPPORTED_GENERATION_METHODS,
            temperature: 1,
            top_p: 0.95,
            top_k: info.top_k,
            max_temperature: 2,
            thinking: info.thinking,
        }
    }
}

/// `models.list` response; `nextPageToken` is left out on the last page.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListModelsResponse {
    /// This page.
    pub models: Vec<Model>,
    /// Token for the next page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

/// Pretty JSON with a trailing newline: the unary body format.
pub fn pretty<T: Serialize>(value: &T) -> Bytes {
    let mut out = serde_json::to_vec_pretty(value).unwrap_or_else(|_| b"{}".to_vec());
    out.push(b'\n');
    Bytes::from(out)
}

/// Compact JSON with `": "` after keys, as in real SSE chunks.
pub fn chunk_json<T: Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, SseFormatter);
    if value.serialize(&mut serializer).is_err() {
        out = b"{}".to_vec();
    }
    out
}

/// One SSE event: `data: {json}\r\n\r\n`.
pub fn sse_event<T: Serialize>(value: &T) -> Bytes {
    let mut out = b"data: ".to_vec();
    out.extend(chunk_json(value));
    out.extend_from_slice(b"\r\n\r\n");
    Bytes::from(out)
}

/// serde_json's compact output, except for a space after each key's colon.
struct SseFormatter;

impl Formatter for SseFormatter {
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, writer: &mut W) -> io::Result<()> {
        writer.write_all(b": ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_chunks_use_the_real_spacing() {
        let chunk = GenerateContentResponse {
            candidates: Some(vec![Candidate {
                content: Some(Content {
                    parts: Some(vec![Part {
                        text: "The".into(),
                        thought: None,
                    }]),
                    role: "model",
                }),
                finish_reason: None,
                index: 0,
            }]),
            usage_metadata: Some(UsageMetadata::new(7, 0, 0)),
            model_version: "gemini-2.0-flash".into(),
            ..Default::default()
        };
        let bytes = sse_event(&chunk);
        let text = std::str::from_utf8(&bytes).unwrap();
        // The first event of fixtures/streaming-success-basic-reply-short.txt, plus index and
        // responseId which 2.5 models send.
        assert_eq!(
            text,
            "data: {\"candidates\": [{\"content\": {\"parts\": [{\"text\": \"The\"}],\"role\": \"model\"},\"index\": 0}],\
             \"usageMetadata\": {\"promptTokenCount\": 7,\"totalTokenCount\": 7,\"promptTokensDetails\": \
             [{\"modality\": \"TEXT\",\"tokenCount\": 7}]},\"modelVersion\": \"gemini-2.0-flash\",\"responseId\": \"\"}\r\n\r\n"
        );
    }

    #[test]
    fn models_serialize_like_the_capture() {
        let model = Model::from(crate::catalog::find("gemini-2.5-flash").unwrap());
        let body = String::from_utf8(pretty(&model).to_vec()).unwrap();
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../common/tests/fixtures/");
        let expected = std::fs::read_to_string(format!(
            "{root}reconstructed/200-models-get-gemini-2.5-flash.json"
        ))
        .expect("the recorded models.get body is in the repo");
        assert_eq!(body, expected);
    }
}
