//! The price table: what a million tokens cost, per model and per mode.
//!
//! The table is data, not code: `bulk/prices.json` holds Google's published
//! prices (USD per 1M tokens, paid tier, standard price; the output price
//! covers thinking tokens), with where they were read and when, and the
//! discount of each cheaper mode (Batch Mode and Flex: half the standard
//! price). Google changes these figures, so `--prices FILE` replaces the
//! whole table with a file in the same format, checked the same way: every
//! price a finite number from 0 to [`MAX_PRICE`], every discount from 0 to
//! [`MAX_FACTOR`], no field it does not know (a typo is an error, not a
//! price silently left at its default).
//!
//! A model is looked up by its id, and an alias (`gemini-flash-latest`) by
//! the model it points at in the catalogue the project already keeps
//! ([`common::quota::target_model`]), so an alias is priced as its target.

use std::{collections::BTreeMap, path::Path};

use serde::{Deserialize, Serialize};

/// The built-in table (`bulk/prices.json`).
pub const BUILT_IN: &str = include_str!("../prices.json");

/// The highest price accepted, USD per 1M tokens: far above any published
/// one (2.5 Pro's long-context output is $15), low enough to catch a table
/// written per token or per thousand by mistake.
pub const MAX_PRICE: f64 = 10_000.0;

/// The highest mode factor accepted (1 is the standard price).
pub const MAX_FACTOR: f64 = 10.0;

/// The largest prices file read.
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// The most models a table may price.
const MAX_MODELS: usize = 1000;

/// How a request was sent, which decides its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// An ordinary synchronous request: the standard price.
    Standard,
    /// A synchronous request with `serviceTier: "flex"`.
    Flex,
    /// A request of a Batch Mode job.
    Batch,
}

impl Mode {
    /// `standard`, `flex`, `batch`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Standard => "standard",
            Mode::Flex => "flex",
            Mode::Batch => "batch",
        }
    }
}

/// A price table that cannot be used: one line, naming the file and the field.
#[derive(Debug, thiserror::Error)]
pub enum PricesError {
    /// The file could not be read.
    #[error("cannot read the prices file {}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// The file is not a table, or a value is out of bounds.
    #[error(
        "{origin} is not a usable price table: {problem} (see bulk/prices.json for the format)"
    )]
    Invalid {
        /// `--prices FILE`, or the built-in table.
        origin: String,
        /// What is wrong, and where.
        problem: String,
    },
}

/// USD per 1M tokens of input and of output (thinking included).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    /// Input (prompt) tokens.
    pub input: f64,
    /// Output tokens: the answer and the thinking.
    pub output: f64,
}

/// The higher rate of a request whose prompt is long.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LongContext {
    /// Prompts of more than this many tokens pay this rate, for input and output.
    pub above: u64,
    /// Input tokens.
    pub input: f64,
    /// Output tokens.
    pub output: f64,
}

/// One model's prices.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    /// Input tokens, USD per 1M.
    pub input: f64,
    /// Output tokens (thinking included), USD per 1M.
    pub output: f64,
    /// A higher rate for long prompts, if the model has one.
    #[serde(default)]
    pub long_context: Option<LongContext>,
}

impl ModelPrice {
    /// The standard rate of a request whose prompt has `prompt_tokens` tokens.
    pub fn rate(&self, prompt_tokens: u64) -> Rate {
        match self.long_context {
            Some(long) if prompt_tokens > long.above => Rate {
                input: long.input,
                output: long.output,
            },
            _ => Rate {
                input: self.input,
                output: self.output,
            },
        }
    }

    /// The prompt size past which the long-context rate applies, if any.
    pub fn long_above(&self) -> Option<u64> {
        self.long_context.map(|long| long.above)
    }
}

/// The discount factor of each cheaper mode (1 is the standard price).
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Modes {
    /// Flex, as a share of the standard price.
    pub flex: f64,
    /// Batch Mode, as a share of the standard price.
    pub batch: f64,
}

/// The file's shape.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TableFile {
    #[serde(default)]
    source: Option<String>,
    #[serde(default)]
    read: Option<String>,
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    currency: Option<String>,
    #[serde(default)]
    unit: Option<String>,
    modes: Modes,
    models: BTreeMap<String, ModelPrice>,
}

/// A checked price table.
#[derive(Debug, Clone)]
pub struct PriceTable {
    /// Where the prices were read (a URL, or the file given).
    pub source: String,
    /// When they were read, as the table says (`2026-12-03`).
    pub read: Option<String>,
    modes: Modes,
    models: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    /// The table shipped with bulk (`bulk/prices.json`).
    pub fn built_in() -> Result<PriceTable, PricesError> {
        PriceTable::parse(BUILT_IN, "the built-in price table")
    }

    /// The table of `--prices FILE`, or the built-in one.
    pub fn load(file: Option<&Path>) -> Result<PriceTable, PricesError> {
        let Some(path) = file else {
            return PriceTable::built_in();
        };
        let read_error = |source| PricesError::Read {
            path: path.to_path_buf(),
            source,
        };
        let size = std::fs::metadata(path).map_err(read_error)?.len();
        let origin = format!("--prices {}", path.display());
        if size > MAX_FILE_BYTES {
            return Err(PricesError::Invalid {
                origin,
                problem: format!("{size} bytes, more than a price table's 1 MiB"),
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_error)?;
        let mut table = PriceTable::parse(&text, &origin)?;
        if table.source.is_empty() {
            table.source = path.display().to_string();
        }
        Ok(table)
    }

    /// Parses and checks a table; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<PriceTable, PricesError> {
        let invalid = |problem: String| PricesError::Invalid {
            origin: origin.to_string(),
            problem,
        };
        let file: TableFile = serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if let Some(currency) = file.currency.as_deref().filter(|c| *c != "USD") {
            return Err(invalid(format!(
                "currency {:?}: the prices must be in USD",
                bounded(currency)
            )));
        }
        if let Some(unit) = file.unit.as_deref().filter(|u| *u != "per 1M tokens") {
            return Err(invalid(format!(
                "unit {:?}: the prices must be per 1M tokens",
                bounded(unit)
            )));
        }
        let _ = file.note;
        check_factor("modes.flex", file.modes.flex).map_err(invalid)?;
        check_factor("modes.batch", file.modes.batch).map_err(invalid)?;
        if file.models.is_empty() || file.models.len() > MAX_MODELS {
            return Err(invalid(format!(
                "{} models: give from 1 to {MAX_MODELS}",
                file.models.len()
            )));
        }
        for (model, price) in &file.models {
            check_model(model, price).map_err(invalid)?;
        }
        Ok(PriceTable {
            source: file.source.map(|s| bounded(&s)).unwrap_or_default(),
            read: file.read.map(|s| bounded(&s)),
            modes: file.modes,
            models: file.models,
        })
    }

    /// The prices of `model`, and the model they are listed under: the
    /// model itself, or the model an alias points at.
    pub fn lookup(&self, model: &str) -> Option<(&str, &ModelPrice)> {
        let id = model.strip_prefix("models/").unwrap_or(model);
        if let Some((name, price)) = self.models.get_key_value(id) {
            return Some((name.as_str(), price));
        }
        let target = common::quota::target_model(id)?;
        self.models
            .get_key_value(target)
            .map(|(name, price)| (name.as_str(), price))
    }

    /// The share of the standard price that `mode` costs.
    pub fn factor(&self, mode: Mode) -> f64 {
        match mode {
            Mode::Standard => 1.0,
            Mode::Flex => self.modes.flex,
            Mode::Batch => self.modes.batch,
        }
    }

    /// `https://ai.google.dev/gemini-api/docs/pricing, read 2026-12-03`.
    pub fn provenance(&self) -> String {
        match &self.read {
            Some(read) => format!("{}, read {read}", self.source),
            None => self.source.clone(),
        }
    }
}

/// A text from the file, cut short for a message.
fn bounded(text: &str) -> String {
    text.chars().take(200).collect()
}

fn check_factor(field: &str, factor: f64) -> Result<(), String> {
    if factor.is_finite() && (0.0..=MAX_FACTOR).contains(&factor) {
        Ok(())
    } else {
        Err(format!(
            "{field}: {factor} is not a share of the standard price (from 0 to {MAX_FACTOR}; 0.5 is half)"
        ))
    }
}

fn check_price(field: &str, price: f64) -> Result<(), String> {
    if price.is_finite() && (0.0..=MAX_PRICE).contains(&price) {
        Ok(())
    } else {
        Err(format!(
            "{field}: {price} is not a price (USD per 1M tokens, from 0 to {MAX_PRICE})"
        ))
    }
}

fn check_model(model: &str, price: &ModelPrice) -> Result<(), String> {
    if common::cli::parse_model(model).as_deref() != Ok(model) {
        return Err(format!("{:?} is not a model id", bounded(model)));
    }
    let at = |field: &str| format!("models.{model}.{field}");
    check_price(&at("input"), price.input)?;
    check_price(&at("output"), price.output)?;
    if let Some(long) = &price.long_context {
        check_price(&at("long_context.input"), long.input)?;
        check_price(&at("long_context.output"), long.output)?;
        if long.above == 0 || long.above > 1_000_000_000 {
            return Err(format!(
                "{}: {} is not a prompt size (tokens, from 1 to 1000000000)",
                at("long_context.above"),
                long.above
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_table_has_the_published_prices() {
        let table = PriceTable::built_in().expect("the shipped table is valid");
        assert_eq!(
            table.provenance(),
            "https://ai.google.dev/gemini-api/docs/pricing, read 2026-12-03"
        );
        let rate = |model: &str, prompt: u64| table.lookup(model).expect(model).1.rate(prompt);
        assert_eq!(
            rate("gemini-2.5-pro", 1000),
            Rate {
                input: 1.25,
                output: 10.0
            }
        );
        assert_eq!(
            rate("gemini-2.5-pro", 200_001),
            Rate {
                input: 2.5,
                output: 15.0
            }
        );
        assert_eq!(rate("gemini-2.5-pro", 200_000).input, 1.25, "at most 200k");
        assert_eq!(
            rate("gemini-2.5-flash", 10),
            Rate {
                input: 0.3,
                output: 2.5
            }
        );
        assert_eq!(rate("gemini-2.5-flash-lite", 10).output, 0.4);
        assert_eq!(rate("gemini-2.0-flash", 10).input, 0.1);
        assert_eq!(rate("gemini-2.0-flash-lite", 10).input, 0.075);
        assert_eq!(table.factor(Mode::Batch), 0.5);
        assert_eq!(table.factor(Mode::Flex), 0.5);
        assert_eq!(table.factor(Mode::Standard), 1.0);
    }

    #[test]
    fn aliases_are_priced_as_the_model_they_point_at() {
        let table = PriceTable::built_in().expect("valid");
        let (name, _) = table.lookup("gemini-flash-latest").expect("an alias");
        assert_eq!(name, "gemini-2.5-flash");
        let (name, _) = table
            .lookup("models/gemini-flash-lite-latest")
            .expect("an alias");
        assert_eq!(name, "gemini-2.5-flash-lite");
        assert!(table.lookup("gemini-9-ultra").is_none());
    }

    #[test]
    fn every_bad_value_is_one_line_naming_its_field() {
        let good = r#"{"modes":{"flex":0.5,"batch":0.5},"models":{"m-1":{"input":1,"output":2}}}"#;
        assert!(PriceTable::parse(good, "t").is_ok());
        for (bad, mentions) in [
            (
                good.replace("\"input\":1", "\"input\":-1"),
                "models.m-1.input",
            ),
            (
                good.replace("\"output\":2", "\"output\":20000"),
                "models.m-1.output",
            ),
            (good.replace("\"flex\":0.5", "\"flex\":11"), "modes.flex"),
            (good.replace("\"input\":1", "\"input\":1e400"), "number"),
            (good.replace("\"input\":1", "\"inptu\":1"), "inptu"),
            (good.replace("\"input\":1", "\"input\":\"1\""), "string"),
            (good.replace("\"m-1\"", "\"a b\""), "not a model id"),
            (good.replace(",\"batch\":0.5", ""), "batch"),
            (
                good.replace("\"models\":{", "\"currency\":\"EUR\",\"models\":{"),
                "USD",
            ),
            (
                good.replace("{\"m-1\":{\"input\":1,\"output\":2}}", "{}"),
                "models",
            ),
            (
                good.replace(
                    "\"output\":2}",
                    "\"output\":2,\"long_context\":{\"above\":0,\"input\":1,\"output\":1}}",
                ),
                "long_context.above",
            ),
            ("not json".to_string(), "expected"),
        ] {
            let error = PriceTable::parse(&bad, "--prices p.json").expect_err(&bad);
            let line = error.to_string();
            assert!(line.starts_with("--prices p.json is not"), "{line}");
            assert!(line.contains(mentions), "{mentions}: {line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }

    #[test]
    fn a_file_replaces_the_table_and_a_missing_one_says_so() {
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("p.json");
        std::fs::write(
            &path,
            r#"{"modes":{"flex":0.4,"batch":0.25},"models":{"gemini-2.5-flash":{"input":1,"output":4}}}"#,
        )
        .expect("written");
        let table = PriceTable::load(Some(&path)).expect("valid");
        assert_eq!(table.factor(Mode::Batch), 0.25);
        assert_eq!(
            table.lookup("gemini-flash-latest").expect("alias").1.input,
            1.0
        );
        assert!(
            table.lookup("gemini-2.5-pro").is_none(),
            "replaced, not merged"
        );
        assert_eq!(table.provenance(), path.display().to_string());
        let missing = PriceTable::load(Some(&dir.path().join("nope.json"))).expect_err("missing");
        assert!(missing.to_string().contains("nope.json"), "{missing}");
    }
}
