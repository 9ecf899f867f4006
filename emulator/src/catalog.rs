//! The models the emulator knows, with the fields `GET /v1beta/models` really returns.
//!
//! The list is the real `models.list` answer as recorded on 2025-12-23
//! (`common/tests/fixtures/reconstructed/200-models-list-2025-12-23.json`, see docs/wire.md#response):
//! its `generateContent` models, in its order, plus the `-latest` aliases of other captures.
//! Free-tier quotas are the mid-2025 published figures of docs/wire.md#rate-limits (flash 10 RPM /
//! 250k TPM / 250 RPD, flash-lite 15 / 250k / 1000, pro 5 / 250k / 100; 2.0 Flash 15 / 1M / 200 and
//! 2.0 Flash-Lite 30 / 1M / 200, the same mid-2025 tables, not confirmed by Google); the `-latest`
//! aliases follow their targets.
//!
//! An alias answers with its target in `modelVersion` and shares the target's quota bucket,
//! because quotas are per model on the server side and the model that runs is the target.

/// A free-tier quota: requests per minute, input tokens per minute, requests per day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Requests per minute.
    pub rpm: u32,
    /// Input (prompt) tokens per minute.
    pub tpm: u32,
    /// Requests per day.
    pub rpd: u32,
}

/// One model of the catalog.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelInfo {
    /// The bare id used in paths, e.g. `gemini-2.5-flash`.
    pub id: &'static str,
    /// `displayName`.
    pub display_name: &'static str,
    /// `version` (free text on the real API: "001", "2.5", "Gemini Flash Latest").
    pub version: &'static str,
    /// `description`.
    pub description: &'static str,
    /// `inputTokenLimit`.
    pub input_token_limit: u32,
    /// `outputTokenLimit`.
    pub output_token_limit: u32,
    /// Default `topK` (64 on 2.5 models, 40 on 2.0).
    pub top_k: u32,
    /// `thinking`: whether the model can think before answering.
    pub thinking: bool,
    /// The free-tier limits of this model.
    pub free_tier: Quota,
    /// What `modelVersion` reports, and the quota bucket the model counts against.
    pub model_version: &'static str,
    /// Whether the model thinks when the request sets no thinking budget
    /// (2.5 Flash-Lite has thinking off by default).
    pub thinks_by_default: bool,
}

const FLASH_QUOTA: Quota = Quota {
    rpm: 10,
    tpm: 250_000,
    rpd: 250,
};
const LITE_QUOTA: Quota = Quota {
    rpm: 15,
    tpm: 250_000,
    rpd: 1_000,
};
const PRO_QUOTA: Quota = Quota {
    rpm: 5,
    tpm: 250_000,
    rpd: 100,
};
const FLASH_2_0_QUOTA: Quota = Quota {
    rpm: 15,
    tpm: 1_000_000,
    rpd: 200,
};
const LITE_2_0_QUOTA: Quota = Quota {
    rpm: 30,
    tpm: 1_000_000,
    rpd: 200,
};
/// The 2.0 models' output limit in the recorded list.
const OUTPUT_LIMIT_2_0: u32 = 8_192;

/// A 2.0 model of the recorded list: no thinking, 8,192 output tokens, topK 40.
const fn gemini_2_0(
    id: &'static str,
    display_name: &'static str,
    description: &'static str,
    free_tier: Quota,
) -> ModelInfo {
    ModelInfo {
        id,
        display_name,
        version: "2.0",
        description,
        input_token_limit: INPUT_LIMIT,
        output_token_limit: OUTPUT_LIMIT_2_0,
        top_k: 40,
        thinking: false,
        free_tier,
        model_version: id,
        thinks_by_default: false,
    }
}

/// The input limit of every entry, and the output limit of the 2.5 ones, in the recorded list.
const INPUT_LIMIT: u32 = 1_048_576;
const OUTPUT_LIMIT: u32 = 65_536;

static MODELS: [ModelInfo; 9] = [
    ModelInfo {
        id: "gemini-2.5-flash",
        display_name: "Gemini 2.5 Flash",
        version: "001",
        description: "Stable version of Gemini 2.5 Flash, our mid-size multimodal model that supports up to 1 million tokens, released in June of 2025.",
        input_token_limit: INPUT_LIMIT,
        output_token_limit: OUTPUT_LIMIT,
        top_k: 64,
        thinking: true,
        free_tier: FLASH_QUOTA,
        model_version: "gemini-2.5-flash",
        thinks_by_default: true,
    },
    ModelInfo {
        id: "gemini-2.5-pro",
        display_name: "Gemini 2.5 Pro",
        version: "2.5",
        description: "Stable release (June 17th, 2025) of Gemini 2.5 Pro",
        input_token_limit: INPUT_LIMIT,
        output_token_limit: OUTPUT_LIMIT,
        top_k: 64,
        thinking: true,
        free_tier: PRO_QUOTA,
        model_version: "gemini-2.5-pro",
        thinks_by_default: true,
    },
    gemini_2_0(
        "gemini-2.0-flash",
        "Gemini 2.0 Flash",
        "Gemini 2.0 Flash",
        FLASH_2_0_QUOTA,
    ),
    gemini_2_0(
        "gemini-2.0-flash-001",
        "Gemini 2.0 Flash 001",
        "Stable version of Gemini 2.0 Flash, our fast and versatile multimodal model for scaling across diverse tasks, released in January of 2025.",
        FLASH_2_0_QUOTA,
    ),
    gemini_2_0(
        "gemini-2.0-flash-lite-001",
        "Gemini 2.0 Flash-Lite 001",
        "Stable version of Gemini 2.0 Flash-Lite",
        LITE_2_0_QUOTA,
    ),
    gemini_2_0(
        "gemini-2.0-flash-lite",
        "Gemini 2.0 Flash-Lite",
        "Gemini 2.0 Flash-Lite",
        LITE_2_0_QUOTA,
    ),
    ModelInfo {
        id: "gemini-2.5-flash-lite",
        display_name: "Gemini 2.5 Flash-Lite",
        version: "001",
        description: "Stable version of Gemini 2.5 Flash-Lite, released in July of 2025",
        input_token_limit: INPUT_LIMIT,
        output_token_limit: OUTPUT_LIMIT,
        top_k: 64,
        thinking: true,
        free_tier: LITE_QUOTA,
        model_version: "gemini-2.5-flash-lite",
        thinks_by_default: false,
    },
    ModelInfo {
        id: "gemini-flash-latest",
        display_name: "Gemini Flash Latest",
        version: "Gemini Flash Latest",
        description: "Latest release of Gemini Flash",
        input_token_limit: INPUT_LIMIT,
        output_token_limit: OUTPUT_LIMIT,
        top_k: 64,
        thinking: true,
        free_tier: FLASH_QUOTA,
        model_version: "gemini-2.5-flash",
        thinks_by_default: true,
    },
    ModelInfo {
        id: "gemini-flash-lite-latest",
        display_name: "Gemini Flash-Lite Latest",
        version: "Gemini Flash-Lite Latest",
        description: "Latest release of Gemini Flash-Lite",
        // Inferred: only name/version/displayName/description of this alias were captured.
        input_token_limit: INPUT_LIMIT,
        output_token_limit: OUTPUT_LIMIT,
        top_k: 64,
        thinking: true,
        free_tier: LITE_QUOTA,
        model_version: "gemini-2.5-flash-lite",
        thinks_by_default: false,
    },
];

/// The generation methods every catalog model lists. `streamGenerateContent` is absent on the
/// real API too, although streaming works.
pub const SUPPORTED_GENERATION_METHODS: [&str; 4] = [
    "generateContent",
    "countTokens",
    "createCachedContent",
    "batchGenerateContent",
];

/// The model named in a request path: a bare id only (`models/models/x` is not a model).
pub fn find_in_path(model: &str) -> Option<&'static ModelInfo> {
    if model.contains('/') {
        None
    } else {
        find(model)
    }
}

/// Looks a model up by bare id (`gemini-2.5-flash`) or resource name (`models/gemini-2.5-flash`).
pub fn find(model: &str) -> Option<&'static ModelInfo> {
    let id = model.strip_prefix("models/").unwrap_or(model);
    MODELS.iter().find(|m| m.id == id)
}

/// Every model, in the order `models.list` returns them.
pub fn all() -> &'static [ModelInfo] {
    &MODELS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn find_accepts_bare_ids_and_resource_names() {
        assert_eq!(find("gemini-2.5-flash").unwrap().id, "gemini-2.5-flash");
        assert_eq!(find("models/gemini-2.5-pro").unwrap().free_tier.rpm, 5);
        assert!(find("gemini-5.0-flash").is_none());
        assert!(find("models/").is_none());
    }

    /// Every `generateContent` model of the recorded list is served, with its
    /// recorded limits, in the recorded order.
    #[test]
    fn the_catalogue_is_the_recorded_models_list() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../common/tests/fixtures/reconstructed/200-models-list-2025-12-23.json"
        );
        let text = std::fs::read_to_string(path).expect("the recorded list is in the repo");
        let list: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
        let mut recorded = Vec::new();
        for model in list["models"].as_array().expect("a models array") {
            let methods = model["supportedGenerationMethods"].to_string();
            if !methods.contains("\"generateContent\"") {
                continue;
            }
            let name = model["name"].as_str().expect("a name");
            let ours = find(name).unwrap_or_else(|| panic!("{name} is not in the catalogue"));
            assert_eq!(ours.display_name, model["displayName"], "{name}");
            assert_eq!(ours.version, model["version"], "{name}");
            assert_eq!(ours.description, model["description"], "{name}");
            assert_eq!(ours.input_token_limit, model["inputTokenLimit"], "{name}");
            assert_eq!(ours.output_token_limit, model["outputTokenLimit"], "{name}");
            assert_eq!(ours.top_k, model["topK"], "{name}");
            assert_eq!(ours.thinking, model["thinking"] == true, "{name}");
            recorded.push(ours.id);
        }
        let served: Vec<&str> = all()
            .iter()
            .map(|m| m.id)
            .filter(|id| !id.ends_with("-latest"))
            .collect();
        assert_eq!(served, recorded);
    }

    #[test]
    fn aliases_follow_their_targets() {
        let alias = find("gemini-flash-latest").unwrap();
        let target = find(alias.model_version).unwrap();
        assert_eq!(alias.free_tier, target.free_tier);
        let lite = find("gemini-flash-lite-latest").unwrap();
        assert_eq!(lite.free_tier, find(lite.model_version).unwrap().free_tier);
    }
}
