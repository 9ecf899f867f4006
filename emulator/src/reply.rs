//! Turning a request into a reply: how much the model thinks, where the answer is cut, how it
//! is split into stream chunks, and the bodies that carry it.
//!
//! Token arithmetic follows the real API (docs/wire.md#response): `totalTokenCount = prompt + candidates
//! + thoughts`; `maxOutputTokens` caps thoughts *and* answer together on Gemini 2.5, so a tight
//! cap can leave a `MAX_TOKENS` candidate with no parts at all; stream chunks repeat the
//! response id and model version, carry usage with a growing `candidatesTokenCount`, and only
//! the last one has `finishReason`.

use rand::Rng;
use rand::rngs::SmallRng;
use serde_json::{Map, Value, json};

use crate::catalog::ModelInfo;
use crate::faults::Odd;
use crate::request::{GenerateRequest, ServiceTier};
use crate::wire::{
    Candidate, Content, GenerateContentResponse, Part, PromptFeedback, SafetyRating, UsageMetadata,
};
use crate::{text, tokens};

const ID_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Everything decided about one reply before any byte is sent.
#[derive(Clone, Debug)]
pub struct Plan {
    /// Same in every chunk.
    pub response_id: String,
    /// The model that "ran".
    pub model_version: &'static str,
    /// Prompt tokens (as countTokens reports them).
    pub prompt_tokens: u32,
    /// Thinking tokens.
    pub thoughts: u32,
    /// The thought summary part, when `includeThoughts` asked for it.
    pub thought_summary: Option<String>,
    /// The answer, cut into stream deltas, each with its token count.
    pub chunks: Vec<(String, u32)>,
    /// `STOP`, or `MAX_TOKENS` when the cap cut the answer.
    pub finish_reason: &'static str,
    /// The odd-body fault, if drawn.
    pub odd: Option<Odd>,
    /// The tier named in the request, reported back in `usageMetadata.serviceTier`.
    pub service_tier: Option<&'static str>,
}

/// One stream event and the tokens written before it (for pacing).
#[derive(Clone, Debug)]
pub struct Event {
    /// The chunk.
    pub body: GenerateContentResponse,
    /// Answer tokens in this chunk.
    pub tokens: u32,
}

impl Plan {
    /// Answer tokens in total.
    pub fn answer_tokens(&self) -> u32 {
        self.chunks.iter().map(|(_, n)| n).sum()
    }

    fn answer_text(&self) -> String {
        self.chunks.iter().map(|(t, _)| t.as_str()).collect()
    }

    fn usage(&self, candidates: u32) -> UsageMetadata {
        UsageMetadata {
            service_tier: self.service_tier,
            ..UsageMetadata::new(self.prompt_tokens, candidates, self.thoughts)
        }
    }

    fn response(&self, candidate: Candidate, usage: UsageMetadata) -> GenerateContentResponse {
        GenerateContentResponse {
            candidates: Some(vec![candidate]),
            usage_metadata: Some(usage),
            model_version: self.model_version.to_string(),
            response_id: self.response_id.clone(),
            ..Default::default()
        }
    }

    fn final_reason(&self) -> &'static str {
        match self.odd {
            Some(Odd::UnknownFinishReason) => "NEW_REASON_2027",
            Some(Odd::NoPartsMaxTokens) => "MAX_TOKENS",
            _ => self.finish_reason,
        }
    }

    /// The blocked-prompt body: feedback, prompt usage, no candidates.
    fn blocked(&self) -> GenerateContentResponse {
        let ratings = [
            ("HARM_CATEGORY_SEXUALLY_EXPLICIT", "NEGLIGIBLE"),
            ("HARM_CATEGORY_HATE_SPEECH", "HIGH"),
            ("HARM_CATEGORY_HARASSMENT", "NEGLIGIBLE"),
            ("HARM_CATEGORY_DANGEROUS_CONTENT", "NEGLIGIBLE"),
        ];
        GenerateContentResponse {
            prompt_feedback: Some(PromptFeedback {
                block_reason: "SAFETY",
                safety_ratings: ratings
                    .iter()
                    .map(|&(category, probability)| SafetyRating {
                        category,
                        probability,
                    })
                    .collect(),
            }),
            usage_metadata: Some(UsageMetadata {
                service_tier: self.service_tier,
                ..UsageMetadata::new(self.prompt_tokens, 0, 0)
            }),
            model_version: self.model_version.to_string(),
            response_id: self.response_id.clone(),
            ..Default::default()
        }
    }

    fn extra_fields(&self) -> Option<Map<String, Value>> {
        if self.odd != Some(Odd::UnknownFields) {
            return None;
        }
        let value = json!({
            "turnToken": format!("v1:{}", self.response_id),
            "experimentalMetrics": {"cacheHit": false, "servingRegion": "emulator"},
        });
        value.as_object().cloned()
    }

    /// The unary generateContent body.
    pub fn unary_body(&self) -> GenerateContentResponse {
        if self.odd == Some(Odd::BlockedPrompt) {
            return self.blocked();
        }
        let mut parts = Vec::new();
        if let Some(summary) = &self.thought_summary {
            parts.push(Part {
                text: summary.clone(),
                thought: Some(true),
            });
        }
        let answer = self.answer_text();
        let no_parts = self.odd == Some(Odd::NoPartsMaxTokens);
        if !answer.is_empty() && !no_parts {
            parts.push(Part {
                text: answer,
                thought: None,
            });
        }
        let candidates = if no_parts { 0 } else { self.answer_tokens() };
        let mut body = self.response(
            Candidate {
                content: Some(Content {
                    parts: (!parts.is_empty() && !no_parts).then_some(parts),
                    role: "model",
                }),
                finish_reason: Some(self.final_reason().to_string()),
                index: 0,
            },
            self.usage(candidates),
        );
        body.extra = self.extra_fields();
        body
    }

    /// The stream events, in order; the last one carries `finishReason`.
    pub fn events(&self) -> Vec<Event> {
        if self.odd == Some(Odd::BlockedPrompt) {
            return vec![Event {
                body: self.blocked(),
                tokens: 0,
            }];
        }
        let mut events = Vec::new();
        if let Some(summary) = &self.thought_summary {
            let part = Part {
                text: summary.clone(),
                thought: Some(true),
            };
            events.push(self.chunk_event(Some(part), 0, 0, None));
        }
        let chunks: &[(String, u32)] = if self.odd == Some(Odd::NoPartsMaxTokens) {
            &[]
        } else {
            &self.chunks
        };
        let mut sent = 0;
        for (i, (delta, n)) in chunks.iter().enumerate() {
            sent += n;
            let last = i + 1 == chunks.len();
            let part = Part {
                text: delta.clone(),
                thought: None,
            };
            events.push(self.chunk_event(Some(part), *n, sent, last.then(|| self.final_reason())));
        }
        if chunks.is_empty() {
            events.push(self.chunk_event(None, 0, 0, Some(self.final_reason())));
        }
        if let Some(last) = events.last_mut() {
            last.body.extra = self.extra_fields();
        }
        events
    }

    fn chunk_event(
        &self,
        part: Option<Part>,
        tokens: u32,
        sent: u32,
        finish: Option<&str>,
    ) -> Event {
        let candidate = Candidate {
            content: Some(Content {
                parts: part.map(|p| vec![p]),
                role: "model",
            }),
            finish_reason: finish.map(str::to_string),
            index: 0,
        };
        Event {
            body: self.response(candidate, self.usage(sent)),
            tokens,
        }
    }
}

/// Decides the reply to `request` on `model`.
pub fn plan(
    request: &GenerateRequest,
    model: &'static ModelInfo,
    odd: Option<Odd>,
    rng: &mut SmallRng,
) -> Plan {
    let full_answer = text::answer(&request.prompt);
    let full_tokens = tokens::count(&full_answer);
    let mut thoughts = thought_tokens(request, model, full_tokens, rng);
    let mut finish_reason = "STOP";
    let mut answer: &str = &full_answer;
    if let Some(cap) = request.max_output_tokens {
        if thoughts >= cap {
            // Thinking used the whole budget: MAX_TOKENS with no parts (python-genai#811).
            thoughts = cap;
            answer = "";
            finish_reason = "MAX_TOKENS";
        } else if full_tokens > cap - thoughts {
            answer = tokens::truncate(&full_answer, cap - thoughts).0;
            finish_reason = "MAX_TOKENS";
        }
    }
    let thought_summary =
        (request.include_thoughts && thoughts > 0).then(|| text::thought_summary(&request.prompt));
    Plan {
        response_id: response_id(rng),
        model_version: model.model_version,
        prompt_tokens: request.prompt_tokens,
        thoughts,
        thought_summary,
        chunks: split_chunks(answer, rng),
        finish_reason,
        odd,
        service_tier: request.service_tier.map(ServiceTier::wire_name),
    }
}

/// How long the model thinks, in tokens: roughly proportional to the answer, with spread.
fn thought_tokens(
    request: &GenerateRequest,
    model: &ModelInfo,
    answer_tokens: u32,
    rng: &mut SmallRng,
) -> u32 {
    let dynamic = 100 + answer_tokens / 2 + rng.random_range(0..=300);
    match request.thinking_budget {
        Some(0) => 0,
        Some(budget) if budget > 0 => dynamic.min(u32::try_from(budget).unwrap_or(u32::MAX)),
        Some(_) => dynamic,
        None if model.thinks_by_default => dynamic,
        None => 0,
    }
}

/// Cuts the answer into deltas of about 30 to 60 tokens (the size of real 2.5 chunks).
fn split_chunks(answer: &str, rng: &mut SmallRng) -> Vec<(String, u32)> {
    let mut chunks = Vec::new();
    let mut current = String::new();
    let mut current_tokens = 0;
    let mut target = rng.random_range(30..=60);
    for piece in tokens::pieces(answer) {
        current.push_str(piece.text);
        current_tokens += piece.tokens;
        if current_tokens >= target {
            chunks.push((std::mem::take(&mut current), current_tokens));
            current_tokens = 0;
            target = rng.random_range(30..=60);
        }
    }
    if !current.is_empty() {
        match chunks.last_mut() {
            // Trailing whitespace alone does not make a chunk of its own.
            Some(last) if current_tokens == 0 => last.0.push_str(&current),
            _ => chunks.push((current, current_tokens)),
        }
    }
    chunks
}

/// A 23-character url-safe id like `2pmHaJqQEoqC-8YP6eStyAY`.
fn response_id(rng: &mut SmallRng) -> String {
    (0..23)
        .map(|_| char::from(ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn request(prompt: &str) -> GenerateRequest {
        GenerateRequest {
            prompt: prompt.into(),
            prompt_tokens: tokens::count(prompt),
            ..Default::default()
        }
    }

    fn flash() -> &'static ModelInfo {
        crate::catalog::find("gemini-flash-latest").unwrap()
    }

    #[test]
    fn chunks_add_up_to_the_unary_answer() {
        let mut rng = SmallRng::seed_from_u64(3);
        let plan = plan(
            &request("Why do some birds migrate?"),
            flash(),
            None,
            &mut rng,
        );
        assert!(plan.chunks.len() > 3);
        assert_eq!(
            plan.answer_tokens(),
            tokens::count(&text::answer("Why do some birds migrate?"))
        );
        let body = plan.unary_body();
        let usage = body.usage_metadata.clone().unwrap();
        assert_eq!(
            usage.total_token_count,
            usage.prompt_token_count + usage.candidates_token_count + usage.thoughts_token_count
        );
        assert_eq!(plan.model_version, "gemini-2.5-flash");
        assert_eq!(plan.response_id.len(), 23);
        let events = plan.events();
        let last = events.last().unwrap().body.usage_metadata.clone().unwrap();
        assert_eq!(last, usage);
        assert!(events[..events.len() - 1].iter().all(|e| {
            e.body.candidates.as_ref().unwrap()[0]
                .finish_reason
                .is_none()
        }));
    }

    #[test]
    fn max_output_tokens_caps_thoughts_and_answer() {
        let mut rng = SmallRng::seed_from_u64(3);
        let mut req = request("Why do some birds migrate?");
        req.max_output_tokens = Some(5);
        let tiny = plan(&req, flash(), None, &mut rng);
        assert_eq!(
            (tiny.thoughts, tiny.answer_tokens(), tiny.finish_reason),
            (5, 0, "MAX_TOKENS")
        );
        assert!(
            tiny.unary_body().candidates.unwrap()[0]
                .content
                .as_ref()
                .unwrap()
                .parts
                .is_none()
        );

        req.thinking_budget = Some(0);
        req.max_output_tokens = Some(20);
        let cut = plan(&req, flash(), None, &mut rng);
        assert_eq!(
            (cut.thoughts, cut.answer_tokens(), cut.finish_reason),
            (0, 20, "MAX_TOKENS")
        );
    }
}
