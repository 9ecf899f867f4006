//! The Gemini request and response bodies, as Rust types (serde, camelCase on the wire).
//!
//! These follow docs/wire.md (#request, #response) and the recorded fixtures. The guiding rule is
//! to be as tolerant as Google's own clients, because the API grows faster
//! than any client:
//!
//! - unknown fields are ignored (the Oct 2025 responses carry an undocumented
//!   `turnToken`);
//! - unknown enum values are kept, not rejected: every string enum here has an
//!   `Unknown(String)` variant (a new `finishReason` must not turn a good
//!   answer into a parse failure);
//! - a candidate without `parts` (thinking used the whole budget) is valid and
//!   has empty text; a blocked prompt has no `candidates` at all, which is an
//!   outcome ([`GenerateContentResponse::blocked`]), not an error;
//! - usage counts the server omits (it omits zeros) read as 0.
//!
//! On the request side every optional key is skipped when unset, so what we
//! send is exactly what the caller asked for.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Declares a string enum that keeps values it does not know as `Unknown(String)`.
///
/// `#[serde(other)]` would drop the unknown value and only works for unit
/// variants; keeping the text lets a report show what the server really said.
macro_rules! open_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $wire:literal,)* }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)*
            /// A value this client does not know yet, kept verbatim.
            Unknown(String),
        }

        impl $name {
            /// The value as it is spelled on the wire.
            pub fn as_str(&self) -> &str {
                match self {
                    $($name::$variant => $wire,)*
                    $name::Unknown(other) => other,
                }
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                match text {
                    $($wire => $name::$variant,)*
                    other => $name::Unknown(other.to_string()),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                Ok($name::from(text.as_str()))
            }
        }
    };
}

open_enum! {
    /// Who wrote a turn of the conversation.
    Role {
        /// The person (also used for `systemInstruction`).
        User = "user",
        /// The model's answer.
        Model = "model",
    }
}

open_enum! {
    /// Why the model stopped (PY `types.py` FinishReason).
    FinishReason {
        /// Not specified.
        Unspecified = "FINISH_REASON_UNSPECIFIED",
        /// Natural end or a stop sequence.
        Stop = "STOP",
        /// `maxOutputTokens` reached (thinking may have used it all).
        MaxTokens = "MAX_TOKENS",
        /// Stopped for safety reasons.
        Safety = "SAFETY",
        /// Stopped because the output recited training data.
        Recitation = "RECITATION",
        /// Unsupported language.
        Language = "LANGUAGE",
        /// Some other reason (see `finishMessage`).
        Other = "OTHER",
        /// Forbidden terms.
        Blocklist = "BLOCKLIST",
        /// Prohibited content.
        ProhibitedContent = "PROHIBITED_CONTENT",
        /// Sensitive personally identifiable information.
        Spii = "SPII",
        /// An invalid function call was generated.
        MalformedFunctionCall = "MALFORMED_FUNCTION_CALL",
        /// Generated image had safety violations.
        ImageSafety = "IMAGE_SAFETY",
        /// A tool call was generated with no tools enabled.
        UnexpectedToolCall = "UNEXPECTED_TOOL_CALL",
        /// Too many tool calls in a row.
        TooManyToolCalls = "TOO_MANY_TOOL_CALLS",
    }
}

open_enum! {
    /// Why a prompt was blocked before any answer (PY BlockedReason).
    BlockReason {
        /// Not specified (also used when the server sends only a `blockReasonMessage`).
        Unspecified = "BLOCK_REASON_UNSPECIFIED",
        /// Safety filters.
        Safety = "SAFETY",
        /// Some other reason.
        Other = "OTHER",
        /// Forbidden terms.
        Blocklist = "BLOCKLIST",
        /// Prohibited content.
        ProhibitedContent = "PROHIBITED_CONTENT",
        /// Unsafe image in the prompt.
        ImageSafety = "IMAGE_SAFETY",
    }
}

open_enum! {
    /// Which capacity serves a synchronous request (docs/wire.md#flex-and-priority):
    /// `flex` costs half and may take minutes or be shed, `priority` costs more.
    /// Omitted, a request is served at standard.
    ServiceTier {
        /// The ordinary tier, at the standard price.
        Standard = "standard",
        /// Half price, minutes of latency, sheddable (Preview).
        Flex = "flex",
        /// Dearer, served first (paid tiers 2 and 3).
        Priority = "priority",
    }
}

open_enum! {
    /// A harm category for safety settings and ratings.
    HarmCategory {
        /// Harassment.
        Harassment = "HARM_CATEGORY_HARASSMENT",
        /// Hate speech.
        HateSpeech = "HARM_CATEGORY_HATE_SPEECH",
        /// Sexually explicit content.
        SexuallyExplicit = "HARM_CATEGORY_SEXUALLY_EXPLICIT",
        /// Dangerous content.
        DangerousContent = "HARM_CATEGORY_DANGEROUS_CONTENT",
        /// Civic integrity.
        CivicIntegrity = "HARM_CATEGORY_CIVIC_INTEGRITY",
    }
}

open_enum! {
    /// How strictly to block a harm category (PY HarmBlockThreshold).
    HarmBlockThreshold {
        /// Block low probability and above.
        BlockLowAndAbove = "BLOCK_LOW_AND_ABOVE",
        /// Block medium probability and above.
        BlockMediumAndAbove = "BLOCK_MEDIUM_AND_ABOVE",
        /// Block only high probability.
        BlockOnlyHigh = "BLOCK_ONLY_HIGH",
        /// Never block (still rated).
        BlockNone = "BLOCK_NONE",
        /// Turn the filter off.
        Off = "OFF",
    }
}

open_enum! {
    /// How likely a piece of content is harmful.
    HarmProbability {
        /// Negligible.
        Negligible = "NEGLIGIBLE",
        /// Low.
        Low = "LOW",
        /// Medium.
        Medium = "MEDIUM",
        /// High.
        High = "HIGH",
    }
}

/// One turn of a conversation: a role and its parts.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Content {
    /// `user` or `model`; absent in some response chunks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The parts; a response may have none at all (docs/wire.md#response, MAX_TOKENS on thinking models).
    #[serde(default)]
    pub parts: Vec<Part>,
}

impl Content {
    /// A user turn holding one text part.
    pub fn user(text: impl Into<String>) -> Content {
        Content {
            role: Some(Role::User),
            parts: vec![Part::text(text)],
        }
    }
}

/// One part of a turn. Only text is modelled in detail; other kinds are kept as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Part {
    /// The text of a text part.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// True for a thought summary (sent with `includeThoughts`), not part of the answer.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub thought: bool,
    /// Opaque signature of the model's reasoning, to send back in multi-turn chats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thought_signature: Option<String>,
    /// Inline bytes (`{mimeType, data}`), kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline_data: Option<Value>,
    /// A function call the model asks for, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_call: Option<Value>,
    /// A function result sent back to the model, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_response: Option<Value>,
}

impl Part {
    /// A text part.
    pub fn text(text: impl Into<String>) -> Part {
        Part {
            text: Some(text.into()),
            ..Part::default()
        }
    }
}

/// `generationConfig`: every key PY sends for the Developer API (docs/wire.md#request), all optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(missing_docs)] // The fields are the API's own names; ai.google.dev documents each.
pub struct GenerationConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub candidate_count: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output_tokens: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_sequences: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_logprobs: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logprobs: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_mime_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_json_schema: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_modalities: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_resolution: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speech_config: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_config: Option<ThinkingConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_config: Option<Value>,
}

/// `generationConfig.thinkingConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ThinkingConfig {
    /// Token budget for thinking (0 turns it off on Flash; -1 = dynamic).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_budget: Option<i32>,
    /// Also return thought summaries (as parts with `thought: true`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_thoughts: Option<bool>,
}

/// One entry of `safetySettings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetySetting {
    /// The category this setting is for.
    pub category: HarmCategory,
    /// How strictly to block it.
    pub threshold: HarmBlockThreshold,
}

/// The body of `generateContent` and `streamGenerateContent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentRequest {
    /// The conversation so far, oldest first; the last turn is the user's.
    pub contents: Vec<Content>,
    /// A system prompt (a Content; the SDKs send it with role `user`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_instruction: Option<Content>,
    /// Sampling and output options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_config: Option<GenerationConfig>,
    /// Per-category safety thresholds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub safety_settings: Option<Vec<SafetySetting>>,
    /// Tool declarations, kept as JSON (not used by the tutorial).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Value>,
    /// Tool configuration, kept as JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_config: Option<Value>,
    /// Name of a cached content to use as prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_content: Option<String>,
    /// The tier to serve it at (`flex` for half price); unset is standard.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
}

impl GenerateContentRequest {
    /// The simplest request: one user turn holding `prompt`.
    pub fn from_prompt(prompt: &str) -> GenerateContentRequest {
        GenerateContentRequest {
            contents: vec![Content::user(prompt)],
            ..GenerateContentRequest::default()
        }
    }

    /// Adds a system instruction (builder style).
    pub fn with_system_instruction(mut self, text: &str) -> Self {
        self.system_instruction = Some(Content::user(text));
        self
    }

    /// Sets the generation config (builder style).
    pub fn with_generation_config(mut self, config: GenerationConfig) -> Self {
        self.generation_config = Some(config);
        self
    }
}

/// The body of `countTokens` on the Developer API: only `contents` is accepted (docs/wire.md#request).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CountTokensRequest {
    /// What to count.
    pub contents: Vec<Content>,
}

/// A safety rating of a prompt or a candidate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SafetyRating {
    /// The category rated.
    pub category: HarmCategory,
    /// How likely the content is harmful in that category.
    pub probability: HarmProbability,
    /// True when this rating caused a block.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub blocked: bool,
}

/// One answer of the model.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The answer; absent after some stops (RECITATION, OTHER).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Content>,
    /// Why generation stopped; only on the last chunk of a stream.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<FinishReason>,
    /// A human explanation next to some finish reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_message: Option<String>,
    /// Safety ratings (2.5 models often omit them).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safety_ratings: Vec<SafetyRating>,
    /// The candidate's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
    /// Average log probability (2.0-era models).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avg_logprobs: Option<f64>,
}

/// Why the prompt itself was blocked, when it was.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PromptFeedback {
    /// Set when the prompt was blocked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason: Option<BlockReason>,
    /// A human explanation of the block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_reason_message: Option<String>,
    /// Ratings of the prompt.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub safety_ratings: Vec<SafetyRating>,
}

/// Token accounting. The server omits zero counts; they read as 0 here.
///
/// `total = prompt + candidates + thoughts` (docs/wire.md#response); `candidates` excludes thoughts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UsageMetadata {
    /// Tokens in the prompt (input tokens: what TPM quotas count).
    pub prompt_token_count: u32,
    /// Tokens in the answer, thoughts excluded (cumulative across stream chunks).
    pub candidates_token_count: u32,
    /// Tokens spent thinking.
    pub thoughts_token_count: u32,
    /// Everything billed.
    pub total_token_count: u32,
    /// Prompt tokens served from a cache.
    pub cached_content_token_count: u32,
    /// Tokens of tool-use prompts.
    pub tool_use_prompt_token_count: u32,
    /// Which tier served the request, when the server says (a request that
    /// named a tier; docs/wire.md#flex-and-priority).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service_tier: Option<ServiceTier>,
}

/// The answer of `generateContent`, and each chunk of `streamGenerateContent`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateContentResponse {
    /// The answers; empty (absent on the wire) when the prompt was blocked.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub candidates: Vec<Candidate>,
    /// Present when the prompt was blocked (and sometimes otherwise).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_feedback: Option<PromptFeedback>,
    /// Token counts; `None` when the server sent none (see [`usage`](Self::usage) for zeros instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage_metadata: Option<UsageMetadata>,
    /// The model that really answered (shows what an alias points at).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_version: Option<String>,
    /// The server's id for this answer (repeated in every chunk of a stream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_id: Option<String>,
}

/// Returned by `blocked()` for feedback that explains a block without naming a reason.
static UNSPECIFIED_BLOCK: BlockReason = BlockReason::Unspecified;

impl GenerateContentResponse {
    /// The answer: the non-thought text parts of the first candidate, joined.
    ///
    /// Empty when there is no candidate, no content or no parts; check
    /// [`blocked`](Self::blocked) and [`finish_reason`](Self::finish_reason) to tell why.
    pub fn text(&self) -> String {
        self.parts()
            .filter(|p| !p.thought)
            .filter_map(|p| p.text.as_deref())
            .collect()
    }

    /// The thought summaries of the first candidate, joined (empty unless `includeThoughts`).
    pub fn thoughts(&self) -> String {
        self.parts()
            .filter(|p| p.thought)
            .filter_map(|p| p.text.as_deref())
            .collect()
    }

    /// Why the prompt was blocked, if it was.
    ///
    /// A response with feedback and no candidates at all is a block even when
    /// the server gives only a `blockReasonMessage`; that reads as `Unspecified`.
    pub fn blocked(&self) -> Option<&BlockReason> {
        let feedback = self.prompt_feedback.as_ref()?;
        match &feedback.block_reason {
            Some(reason) => Some(reason),
            None if self.candidates.is_empty() => Some(&UNSPECIFIED_BLOCK),
            None => None,
        }
    }

    /// The token counts, all zero when the server sent none.
    pub fn usage(&self) -> UsageMetadata {
        self.usage_metadata.clone().unwrap_or_default()
    }

    /// Why the first candidate stopped (only the last chunk of a stream has it).
    pub fn finish_reason(&self) -> Option<&FinishReason> {
        self.candidates.first()?.finish_reason.as_ref()
    }

    /// The parts of the first candidate (none when it has no content).
    fn parts(&self) -> impl Iterator<Item = &Part> {
        self.candidates
            .first()
            .and_then(|c| c.content.as_ref())
            .map(|c| c.parts.as_slice())
            .unwrap_or_default()
            .iter()
    }
}

/// The answer of `countTokens`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CountTokensResponse {
    /// Tokens in the contents (the same count the prompt will be billed and rate-limited on).
    pub total_tokens: u32,
    /// Of which served from a cache.
    #[serde(skip_serializing_if = "is_zero")]
    pub cached_content_token_count: u32,
}

/// Serde helper: skip zero counts, as the server does.
fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A model, as `models.get` and `models.list` describe it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Model {
    /// Resource name, `models/gemini-2.5-flash`.
    pub name: String,
    /// Version string (`001`, or a label for aliases).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Human name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Max input tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input_token_limit: Option<u32>,
    /// Max output tokens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_token_limit: Option<u32>,
    /// Methods it supports (streaming works although it is not listed).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub supported_generation_methods: Vec<String>,
    /// Default temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// Default topP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    /// Default topK.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_k: Option<u32>,
    /// Highest temperature allowed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_temperature: Option<f64>,
    /// Whether the model thinks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub thinking: Option<bool>,
}

impl Model {
    /// The bare id (`gemini-2.5-flash`), as used in URLs and `--model`.
    pub fn id(&self) -> &str {
        self.name.strip_prefix("models/").unwrap_or(&self.name)
    }
}

/// One page of `models.list`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ListModelsResponse {
    /// The models on this page.
    pub models: Vec<Model>,
    /// Token for the next page; absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_page_token: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_is_camel_case_and_skips_unset_keys() {
        let req = GenerateContentRequest::from_prompt("hi")
            .with_system_instruction("be brief")
            .with_generation_config(GenerationConfig {
                max_output_tokens: Some(20),
                thinking_config: Some(ThinkingConfig {
                    thinking_budget: Some(0),
                    include_thoughts: None,
                }),
                ..GenerationConfig::default()
            });
        assert_eq!(
            serde_json::to_value(&req).unwrap(),
            json!({
                "contents": [{"role": "user", "parts": [{"text": "hi"}]}],
                "systemInstruction": {"role": "user", "parts": [{"text": "be brief"}]},
                "generationConfig": {"maxOutputTokens": 20, "thinkingConfig": {"thinkingBudget": 0}}
            })
        );
    }

    #[test]
    fn the_service_tier_goes_on_the_wire_lowercase_and_comes_back_in_the_usage() {
        let mut req = GenerateContentRequest::from_prompt("hi");
        req.service_tier = Some(ServiceTier::Flex);
        assert_eq!(serde_json::to_value(&req).unwrap()["serviceTier"], "flex");
        let r: GenerateContentResponse = serde_json::from_value(json!({
            "usageMetadata": {"promptTokenCount": 3, "serviceTier": "flex"}
        }))
        .unwrap();
        assert_eq!(r.usage().service_tier, Some(ServiceTier::Flex));
        let untiered = serde_json::to_value(UsageMetadata::default()).unwrap();
        assert!(untiered.get("serviceTier").is_none(), "{untiered}");
    }

    #[test]
    fn unknown_enum_values_are_kept() {
        let r: GenerateContentResponse = serde_json::from_value(json!({
            "candidates": [{"finishReason": "BRAND_NEW", "content": {"role": "critic"}}],
            "promptFeedback": {"blockReason": "NEW_BLOCK"}
        }))
        .unwrap();
        assert_eq!(
            r.finish_reason(),
            Some(&FinishReason::Unknown("BRAND_NEW".into()))
        );
        assert_eq!(r.blocked(), Some(&BlockReason::Unknown("NEW_BLOCK".into())));
        let back = serde_json::to_value(&r).unwrap();
        assert_eq!(back["candidates"][0]["finishReason"], "BRAND_NEW");
        assert_eq!(back["candidates"][0]["content"]["role"], "critic");
    }

    #[test]
    fn text_skips_thoughts_and_tolerates_missing_parts() {
        let r: GenerateContentResponse = serde_json::from_value(json!({
            "candidates": [{"content": {"parts": [
                {"text": "hmm", "thought": true}, {"text": "Mountain "}, {"text": "View"}
            ]}}]
        }))
        .unwrap();
        assert_eq!(r.text(), "Mountain View");
        assert_eq!(r.thoughts(), "hmm");
        let empty: GenerateContentResponse =
            serde_json::from_value(json!({"candidates": [{"content": {"role": "model"}}]}))
                .unwrap();
        assert_eq!(empty.text(), "");
        assert_eq!(GenerateContentResponse::default().text(), "");
    }

    #[test]
    fn feedback_with_only_a_message_and_no_candidates_is_a_block() {
        let r: GenerateContentResponse = serde_json::from_value(
            json!({"candidates": [], "promptFeedback": {"blockReasonMessage": "Message"}}),
        )
        .unwrap();
        assert_eq!(r.blocked(), Some(&BlockReason::Unspecified));
    }

    #[test]
    fn model_id_strips_the_prefix() {
        let m = Model {
            name: "models/gemini-2.5-flash".into(),
            ..Model::default()
        };
        assert_eq!(m.id(), "gemini-2.5-flash");
    }
}
