//! Reading request bodies the way Google's front end does: strict about JSON and unknown
//! fields, lenient about camelCase vs snake_case names, and with the real error messages.
//!
//! Only what the emulator needs is extracted: the prompt text, its token count, the few
//! generation settings that change the answer (`maxOutputTokens`, `thinkingConfig`), and the
//! service tier that serves it (`serviceTier`).

use serde_json::{Map, Value};

use crate::errors::ApiError;
use crate::tokens;

/// Tokens charged for a non-text part (inline or file data). Gemini charges 258 tokens for an
/// image up to 384x384 px; the emulator uses that for every blob.
const BLOB_TOKENS: u32 = 258;

const GENERATE_FIELDS: &[&str] = &[
    "contents",
    "model",
    "tools",
    "toolConfig",
    "tool_config",
    "safetySettings",
    "safety_settings",
    "systemInstruction",
    "system_instruction",
    "generationConfig",
    "generation_config",
    "cachedContent",
    "cached_content",
    "serviceTier",
    "service_tier",
];

const COUNT_FIELDS: &[&str] = &[
    "contents",
    "generateContentRequest",
    "generate_content_request",
];

const CONTENT_FIELDS: &[&str] = &["role", "parts"];

/// What the emulator takes from a GenerateContentRequest.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GenerateRequest {
    /// The text of the last user turn: what the answer is about.
    pub prompt: String,
    /// Tokens of every text in `contents` and `systemInstruction` (plus blobs).
    pub prompt_tokens: u32,
    /// `generationConfig.maxOutputTokens`: caps thoughts + answer, as on Gemini 2.5.
    pub max_output_tokens: Option<u32>,
    /// `generationConfig.thinkingConfig.thinkingBudget` (-1 = dynamic, 0 = off).
    pub thinking_budget: Option<i64>,
    /// `generationConfig.thinkingConfig.includeThoughts`.
    pub include_thoughts: bool,
    /// `serviceTier`, when the request names one.
    pub service_tier: Option<ServiceTier>,
}

/// The tier that serves a synchronous request: Flex is cheaper, slower and may be shed,
/// Priority costs more (docs/wire.md#flex-and-priority).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ServiceTier {
    /// The default when no tier is named.
    #[default]
    Standard,
    /// Best effort, longer latency.
    Flex,
    /// Paid tiers 2 and 3; served like Standard here.
    Priority,
}

impl ServiceTier {
    /// The value as Google's Python SDK writes it (`ServiceTier.FLEX.value == "flex"`), and as
    /// the emulator reports it in `usageMetadata.serviceTier`.
    pub fn wire_name(self) -> &'static str {
        match self {
            ServiceTier::Standard => "standard",
            ServiceTier::Flex => "flex",
            ServiceTier::Priority => "priority",
        }
    }

    /// Reads a tier in any letter case: the SDK sends `flex`, Google's curl sample `FLEX`.
    /// `unspecified` (the SDK's default member) means Standard.
    fn parse(value: &Value, version: &str) -> Result<ServiceTier, ApiError> {
        let tier = value.as_str().map(str::to_ascii_lowercase);
        match tier.as_deref() {
            Some("flex") => Ok(ServiceTier::Flex),
            Some("standard" | "unspecified") => Ok(ServiceTier::Standard),
            Some("priority") => Ok(ServiceTier::Priority),
            // Inferred: the proto JSON parser's wording for an unknown enum value.
            _ => Err(ApiError::invalid_value(
                "service_tier",
                &format!(
                    "type.googleapis.com/google.ai.generativelanguage.{version}.GenerateContentRequest.ServiceTier"
                ),
                value,
            )),
        }
    }
}

/// Parses a body into a JSON object: UTF-8 first, then JSON syntax. An empty body counts as
/// `{}` (the front end treats it so, and then complains about the missing `contents`).
pub fn decode(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    // Inferred wording: the real parser's message for invalid UTF-8 was not captured.
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::invalid_json("Invalid UTF-8 in request body."))?;
    if text.trim().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid_json("Unexpected token.")),
        Err(e) if e.is_eof() => Err(ApiError::invalid_json("Unexpected end of string.")),
        Err(_) => Err(ApiError::invalid_json("Unexpected token.")),
    }
}

/// Looks a field up by its camelCase or snake_case name.
pub(crate) fn field<'a>(
    obj: &'a Map<String, Value>,
    camel: &str,
    snake: &str,
) -> Option<&'a Value> {
    obj.get(camel)
        .or_else(|| obj.get(snake))
        .filter(|v| !v.is_null())
}

pub(crate) fn reject_unknown(
    obj: &Map<String, Value>,
    known: &[&str],
    at: Option<&str>,
) -> Result<(), ApiError> {
    match obj.keys().find(|k| !known.contains(&k.as_str())) {
        Some(name) => Err(ApiError::unknown_name(name, at)),
        None => Ok(()),
    }
}

/// A repeated field: an array, or (as the front end also accepts) a single value.
fn repeated(value: &Value) -> Vec<&Value> {
    match value {
        Value::Array(items) => items.iter().collect(),
        other => vec![other],
    }
}

fn content_type(version: &str) -> String {
    format!("type.googleapis.com/google.ai.generativelanguage.{version}.Content")
}

/// Reads a GenerateContentRequest (for generateContent and streamGenerateContent).
pub fn generate_request(
    obj: &Map<String, Value>,
    version: &str,
) -> Result<GenerateRequest, ApiError> {
    reject_unknown(obj, GENERATE_FIELDS, None)?;
    let mut request = contents(obj, version, "GenerateContentRequest")?;
    if let Some(system) = field(obj, "systemInstruction", "system_instruction") {
        let system = system.as_object().ok_or_else(|| {
            ApiError::invalid_value("system_instruction", &content_type(version), system)
        })?;
        if let Some(parts) = system.get("parts") {
            for (j, part) in repeated(parts).into_iter().enumerate() {
                request.prompt_tokens +=
                    part_tokens(part, &format!("system_instruction.parts[{j}]"))?.0;
            }
        }
    }
    if let Some(config) = field(obj, "generationConfig", "generation_config") {
        read_generation_config(config, &mut request)?;
    }
    if let Some(tier) = field(obj, "serviceTier", "service_tier") {
        request.service_tier = Some(ServiceTier::parse(tier, version)?);
    }
    Ok(request)
}

/// Reads a CountTokensRequest: `contents`, or a whole `generateContentRequest`. Returns the
/// token count, identical to the `promptTokenCount` generateContent would report.
pub fn count_tokens_request(obj: &Map<String, Value>, version: &str) -> Result<u32, ApiError> {
    reject_unknown(obj, COUNT_FIELDS, None)?;
    if let Some(inner) = field(obj, "generateContentRequest", "generate_content_request") {
        let inner = inner.as_object().ok_or_else(|| {
            ApiError::invalid_value(
                "generate_content_request",
                "type.googleapis.com/google.ai.generativelanguage.GenerateContentRequest",
                inner,
            )
        })?;
        return Ok(generate_request(inner, version)?.prompt_tokens);
    }
    // Inferred: the same validation message as generateContent, with this request's name.
    Ok(contents(obj, version, "CountTokensRequest")?.prompt_tokens)
}

/// Validates `contents` and collects the prompt and its tokens.
fn contents(
    obj: &Map<String, Value>,
    version: &str,
    request_name: &str,
) -> Result<GenerateRequest, ApiError> {
    let missing = || {
        ApiError::validation(
            &format!("{request_name}.contents"),
            "contents is not specified",
        )
    };
    let items = field(obj, "contents", "contents")
        .map(repeated)
        .unwrap_or_default();
    if items.is_empty() {
        return Err(missing());
    }
    let mut request = GenerateRequest::default();
    for (i, item) in items.into_iter().enumerate() {
        let at = format!("contents[{i}]");
        let content = item
            .as_object()
            .ok_or_else(|| ApiError::invalid_value(&at, &content_type(version), item))?;
        reject_unknown(content, CONTENT_FIELDS, Some(&at))?;
        let parts = field(content, "parts", "parts")
            .map(repeated)
            .unwrap_or_default();
        if parts.is_empty() {
            return Err(ApiError::validation(
                &format!("{request_name}.{at}.parts"),
                "contents.parts must not be empty.",
            ));
        }
        let mut text = String::new();
        for (j, part) in parts.into_iter().enumerate() {
            let (tokens, part_text) = part_tokens(part, &format!("{at}.parts[{j}]"))?;
            request.prompt_tokens += tokens;
            text.push_str(part_text);
        }
        let role = content
            .get("role")
            .and_then(Value::as_str)
            .unwrap_or("user");
        if role != "model" {
            request.prompt = text;
        }
    }
    Ok(request)
}

/// Tokens and text of one part.
fn part_tokens<'a>(part: &'a Value, at: &str) -> Result<(u32, &'a str), ApiError> {
    let part = part.as_object().ok_or_else(|| {
        ApiError::invalid_value(
            at,
            "type.googleapis.com/google.ai.generativelanguage.Part",
            part,
        )
    })?;
    let mut tokens = 0;
    let mut text = "";
    if let Some(value) = part.get("text") {
        text = value
            .as_str()
            .ok_or_else(|| ApiError::invalid_value(&format!("{at}.text"), "TYPE_STRING", value))?;
        tokens += tokens::count(text);
    }
    if ["inlineData", "inline_data", "fileData", "file_data"]
        .iter()
        .any(|k| part.contains_key(*k))
    {
        tokens += BLOB_TOKENS;
    }
    Ok((tokens, text))
}

/// An int32 field: a JSON number or a numeric string, as proto JSON allows.
fn int_field(value: &Value, path: &str) -> Result<i64, ApiError> {
    let parsed = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    parsed
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| ApiError::invalid_value(path, "TYPE_INT32", value))
}

fn read_generation_config(config: &Value, request: &mut GenerateRequest) -> Result<(), ApiError> {
    let Some(config) = config.as_object() else {
        return Err(ApiError::invalid_value(
            "generation_config",
            "type.googleapis.com/google.ai.generativelanguage.GenerationConfig",
            config,
        ));
    };
    if let Some(max) = field(config, "maxOutputTokens", "max_output_tokens") {
        let max = int_field(max, "generation_config.max_output_tokens")?;
        // Zero or negative means "not set" to the real API.
        request.max_output_tokens = u32::try_from(max).ok().filter(|m| *m > 0);
    }
    if let Some(thinking) =
        field(config, "thinkingConfig", "thinking_config").and_then(Value::as_object)
    {
        if let Some(budget) = field(thinking, "thinkingBudget", "thinking_budget") {
            request.thinking_budget = Some(int_field(
                budget,
                "generation_config.thinking_config.thinking_budget",
            )?);
        }
        request.include_thoughts = field(thinking, "includeThoughts", "include_thoughts")
            .and_then(Value::as_bool)
            .unwrap_or(false);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<GenerateRequest, ApiError> {
        generate_request(&decode(body.as_bytes())?, "v1beta")
    }

    #[test]
    fn reads_prompt_tokens_and_config() {
        let request = parse(
            r#"{"contents":[{"role":"user","parts":[{"text":"why is the sky blue?"}]}],
                "systemInstruction":{"parts":[{"text":"be brief"}]},
                "generationConfig":{"maxOutputTokens":"200","thinkingConfig":{"thinkingBudget":50,"includeThoughts":true}}}"#,
        )
        .unwrap();
        assert_eq!(request.prompt, "why is the sky blue?");
        assert_eq!(request.prompt_tokens, 6 + 2);
        assert_eq!(request.max_output_tokens, Some(200));
        assert_eq!(request.thinking_budget, Some(50));
        assert!(request.include_thoughts);
    }

    #[test]
    fn bad_bodies_get_the_real_messages() {
        let message = |body: &str| parse(body).unwrap_err().message;
        assert_eq!(
            message("{\"contents\": ["),
            "Invalid JSON payload received. Unexpected end of string."
        );
        assert_eq!(
            message("{contents}"),
            "Invalid JSON payload received. Unexpected token."
        );
        assert_eq!(
            message(r#"{"contents":[],"foo":1}"#),
            "Invalid JSON payload received. Unknown name \"foo\": Cannot find field."
        );
        assert_eq!(
            message(r#"{"contents":[{"content":"x","parts":[{"text":"a"}]}]}"#),
            "Invalid JSON payload received. Unknown name \"content\" at 'contents[0]': Cannot find field."
        );
        assert_eq!(
            message("{}"),
            "* GenerateContentRequest.contents: contents is not specified\n"
        );
        assert_eq!(
            message(r#"{"contents":[]}"#),
            "* GenerateContentRequest.contents: contents is not specified\n"
        );
        assert_eq!(
            message(r#"{"contents":[{"parts":[]}]}"#),
            "* GenerateContentRequest.contents[0].parts: contents.parts must not be empty.\n"
        );
        assert_eq!(
            message(r#"{"contents":[{"parts":[{"text":5}]}]}"#),
            "Invalid value at 'contents[0].parts[0].text' (TYPE_STRING), 5"
        );
        assert_eq!(decode(b"{\"a\":\"\xff\"}").unwrap_err().code, 400);
    }

    #[test]
    fn service_tiers_are_read_in_any_case_and_unknown_ones_refused() {
        let tier = |json: &str| {
            parse(&format!(
                r#"{{"contents":[{{"parts":[{{"text":"hi"}}]}}],{json}}}"#
            ))
        };
        assert_eq!(
            tier(r#""serviceTier":"flex""#).unwrap().service_tier,
            Some(ServiceTier::Flex)
        );
        assert_eq!(
            tier(r#""service_tier":"FLEX""#).unwrap().service_tier,
            Some(ServiceTier::Flex)
        );
        assert_eq!(
            tier(r#""serviceTier":"priority""#).unwrap().service_tier,
            Some(ServiceTier::Priority)
        );
        assert_eq!(
            tier(r#""serviceTier":"unspecified""#).unwrap().service_tier,
            Some(ServiceTier::Standard)
        );
        assert_eq!(
            parse(r#"{"contents":[{"parts":[{"text":"hi"}]}]}"#)
                .unwrap()
                .service_tier,
            None
        );
        let error = tier(r#""serviceTier":"turbo""#).unwrap_err();
        assert_eq!((error.code, error.status), (400, "INVALID_ARGUMENT"));
        assert!(
            error.message.starts_with("Invalid value at 'service_tier'"),
            "{}",
            error.message
        );
        assert_eq!(tier(r#""serviceTier":3"#).unwrap_err().code, 400);
    }

    #[test]
    fn count_tokens_matches_generate() {
        let body =
            r#"{"contents":[{"parts":[{"text":"The quick brown fox jumps over the lazy dog."}]}]}"#;
        let obj = decode(body.as_bytes()).unwrap();
        assert_eq!(
            count_tokens_request(&obj, "v1").unwrap(),
            parse(body).unwrap().prompt_tokens
        );
        let wrapped = format!(r#"{{"generateContentRequest":{body}}}"#);
        assert_eq!(
            count_tokens_request(&decode(wrapped.as_bytes()).unwrap(), "v1").unwrap(),
            10
        );
    }
}
