//! The bill: what a run's answers cost, at the price of the mode each went
//! by, next to what the standard price would have been.
//!
//! Every answer carries its token counts (`usageMetadata`): the prompt
//! (input), the answer (output) and the thinking, which is billed at the
//! output price. The [`Meter`] adds them up as answers arrive, apart per
//! [`Mode`] (a flex run that falls back to standard has both) and apart for
//! prompts past a model's long-context threshold (2.5 Pro charges more
//! above 200k tokens of prompt). At the end, [`Bill::of`] prices them with
//! the [`PriceTable`] and says it in one line and in the `--json` summary's
//! `bill` object.
//!
//! The free tier bills nothing: its bill says "$0 billed" and what the same
//! tokens would cost at the published price, since that is what the run
//! costs the day the project moves to a paid tier. The built-in emulator
//! bills nothing either; its bill is what the run would cost for real.

use std::{collections::BTreeMap, sync::Mutex};

use common::types::UsageMetadata;
use serde_json::{Value, json};

use crate::prices::{Mode, ModelPrice, PriceTable};

/// Tokens of some requests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Requests answered.
    pub requests: u64,
    /// Prompt tokens.
    pub input: u64,
    /// Answer tokens (thinking excluded).
    pub output: u64,
    /// Thinking tokens (billed as output).
    pub thinking: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.requests += other.requests;
        self.input += other.input;
        self.output += other.output;
        self.thinking += other.thinking;
    }
}

/// Adds up the tokens of a run's answers as they arrive, per mode.
#[derive(Debug, Default)]
pub struct Meter {
    /// Prompts above this many tokens are priced apart (the long-context rate).
    long_above: Option<u64>,
    /// Per mode, and whether the prompt was long. A std mutex: held for an addition.
    tallies: Mutex<BTreeMap<(Mode, bool), Tally>>,
}

impl Meter {
    /// A meter for `model`, whose long prompts `prices` charges apart.
    pub fn new(prices: &PriceTable, model: &str) -> Meter {
        Meter {
            long_above: prices.lookup(model).and_then(|(_, p)| p.long_above()),
            tallies: Mutex::default(),
        }
    }

    /// One answer, sent in `mode`, with the counts the server reported.
    pub fn add(&self, mode: Mode, usage: &UsageMetadata) {
        let input = u64::from(usage.prompt_token_count);
        let long = self.long_above.is_some_and(|above| input > above);
        let tally = Tally {
            requests: 1,
            input,
            output: u64::from(usage.candidates_token_count),
            thinking: u64::from(usage.thoughts_token_count),
        };
        self.lock().entry((mode, long)).or_default().add(tally);
    }

    /// What was counted so far.
    fn snapshot(&self) -> BTreeMap<(Mode, bool), Tally> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Mode, bool), Tally>> {
        self.tallies.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One mode's part of a bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// How these requests went.
    pub mode: Mode,
    /// Their tokens.
    pub tally: Tally,
    /// What they cost at that mode's price (`None`: the model has no price).
    pub cost: Option<f64>,
    /// What they would have cost at the standard price.
    pub standard: Option<f64>,
}

/// A run's bill.
#[derive(Debug, Clone, PartialEq)]
pub struct Bill {
    /// The model asked for.
    pub model: String,
    /// The model its prices are listed under (an alias's target), if priced.
    pub priced_as: Option<String>,
    /// The mode the run was asked to use.
    pub mode: Mode,
    /// The usage tier (`free`, `tier1`, ...): the free tier bills nothing.
    pub tier: String,
    /// Each mode's part, standard first.
    pub parts: Vec<Part>,
    /// Where the prices come from.
    pub provenance: String,
}

impl Bill {
    /// Prices what `meter` counted for `model`, on `tier`, in a run of `mode`.
    pub fn of(meter: &Meter, prices: &PriceTable, model: &str, mode: Mode, tier: &str) -> Bill {
        let found = prices.lookup(model);
        let mut parts: BTreeMap<Mode, Part> = BTreeMap::new();
        for ((part_mode, long), tally) in meter.snapshot() {
            let price = found.map(|(_, price)| price);
            let cost = price.map(|p| cost_of(p, prices.factor(part_mode), long, tally));
            let standard = price.map(|p| cost_of(p, 1.0, long, tally));
            let part = parts.entry(part_mode).or_insert(Part {
                mode: part_mode,
                tally: Tally::default(),
                cost: Some(0.0),
                standard: Some(0.0),
            });
            part.tally.add(tally);
            part.cost = sum(part.cost, cost);
            part.standard = sum(part.standard, standard);
        }
        Bill {
            model: model.to_string(),
            priced_as: found.map(|(name, _)| name.to_string()),
            mode,
            tier: tier.to_string(),
            parts: parts.into_values().collect(),
            provenance: prices.provenance(),
        }
    }

    /// Every part's tokens together.
    pub fn tally(&self) -> Tally {
        let mut total = Tally::default();
        for part in &self.parts {
            total.add(part.tally);
        }
        total
    }

    /// What the run's answers cost at their modes' prices (`None`: no price known).
    pub fn cost(&self) -> Option<f64> {
        self.parts
            .iter()
            .try_fold(0.0, |sum, part| Some(sum + part.cost?))
    }

    /// What they would have cost at the standard price.
    pub fn standard(&self) -> Option<f64> {
        self.parts
            .iter()
            .try_fold(0.0, |sum, part| Some(sum + part.standard?))
    }

    /// Whether the tier bills nothing.
    pub fn is_free(&self) -> bool {
        self.tier == "free"
    }

    /// What is billed: nothing on the free tier, else the cost.
    pub fn billed(&self) -> Option<f64> {
        if self.is_free() {
            Some(0.0)
        } else {
            self.cost()
        }
    }

    /// The summary's line.
    pub fn line(&self) -> String {
        let tally = self.tally();
        let model = match self.priced_as.as_deref() {
            Some(target) if target != self.model => {
                format!("{} (priced as {target})", self.model)
            }
            _ => self.model.clone(),
        };
        let modes = self.modes_text();
        let tokens = format!(
            "{} input + {} output + {} thinking tokens",
            grouped(tally.input),
            grouped(tally.output),
            grouped(tally.thinking)
        );
        let head = format!(
            "bill: {} answered on {model} ({modes}): {tokens}",
            grouped(tally.requests)
        );
        let (Some(cost), Some(standard)) = (self.cost(), self.standard()) else {
            return format!(
                "{head}; no price known for {}: give one with --prices FILE (the format of bulk/prices.json)",
                self.model
            );
        };
        let priced_at = self.priced_at();
        let prices = &self.provenance;
        if self.is_free() {
            let at_mode = if self.discounted() {
                format!(", {} {}", priced_at, usd(cost))
            } else {
                String::new()
            };
            return format!(
                "{head}; free tier: $0 billed (standard price would be {}{at_mode}; prices: {prices})",
                usd(standard)
            );
        }
        if !self.discounted() {
            return format!("{head} = {} at {priced_at} (prices: {prices})", usd(cost));
        }
        format!(
            "{head} = {} at {priced_at} (standard would be {}, {} saved; prices: {prices})",
            usd(cost),
            usd(standard),
            usd(standard - cost)
        )
    }

    /// The `bill` object of the `--json` summary.
    pub fn json(&self) -> Value {
        let tally = self.tally();
        let parts: Vec<Value> = self
            .parts
            .iter()
            .map(|part| {
                json!({
                    "mode": part.mode.name(),
                    "requests": part.tally.requests,
                    "input_tokens": part.tally.input,
                    "output_tokens": part.tally.output,
                    "thinking_tokens": part.tally.thinking,
                    "cost_usd": part.cost.map(round6),
                    "standard_usd": part.standard.map(round6),
                })
            })
            .collect();
        json!({
            "model": self.model,
            "priced_as": self.priced_as,
            "mode": self.mode.name(),
            "tier": self.tier,
            "requests": tally.requests,
            "input_tokens": tally.input,
            "output_tokens": tally.output,
            "thinking_tokens": tally.thinking,
            "cost_usd": self.cost().map(round6),
            "standard_usd": self.standard().map(round6),
            "billed_usd": self.billed().map(round6),
            "by_mode": parts,
            "prices": self.provenance,
        })
    }

    /// "batch", or "800 flex, 200 standard" when the run used several.
    fn modes_text(&self) -> String {
        match self.parts.as_slice() {
            [] => self.mode.name().to_string(),
            [one] => one.mode.name().to_string(),
            parts => parts
                .iter()
                .map(|p| format!("{} {}", grouped(p.tally.requests), p.mode.name()))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }

    /// "the batch price", or "their prices" for several modes.
    fn priced_at(&self) -> String {
        match self.parts.as_slice() {
            [] => format!("the {} price", self.mode.name()),
            [one] => format!("the {} price", one.mode.name()),
            _ => "their modes' prices".to_string(),
        }
    }

    /// Whether any part went at a price other than standard.
    fn discounted(&self) -> bool {
        self.parts.iter().any(|part| part.mode != Mode::Standard)
    }
}

/// What `tally` costs at `price` times `factor`, at the long-context rate if `long`.
fn cost_of(price: &ModelPrice, factor: f64, long: bool, tally: Tally) -> f64 {
    let prompt = if long {
        price.long_above().map_or(0, |above| above + 1)
    } else {
        0
    };
    let rate = price.rate(prompt);
    let input = tally.input as f64 * rate.input;
    let output = (tally.output + tally.thinking) as f64 * rate.output;
    (input + output) / 1_000_000.0 * factor
}

fn sum(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? + b?)
}

/// Dollars to the micro-dollar: float noise left out of the JSON.
fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// `$0`, `$0.003`, `$0.02353`, `$12.35`: cents once there are dollars,
/// otherwise four significant digits (down to the micro-dollar).
pub fn usd(x: f64) -> String {
    let x = round6(x.max(0.0));
    if x == 0.0 {
        return "$0".into();
    }
    if x >= 1.0 {
        return format!("${}", grouped_f(x));
    }
    // Four significant digits, at most six decimals, at least two.
    let decimals = (3 - x.log10().floor() as i32).clamp(2, 6) as usize;
    let text = format!("{x:.decimals$}");
    let trimmed = text.trim_end_matches('0');
    let shown = trimmed.len() - trimmed.find('.').map_or(trimmed.len(), |dot| dot + 1);
    if shown < 2 {
        format!("${x:.2}")
    } else {
        format!("${trimmed}")
    }
}

/// `12,345.68`.
fn grouped_f(x: f64) -> String {
    let cents = (x * 100.0).round() as u64;
    format!("{}.{:02}", grouped(cents / 100), cents % 100)
}

/// `1,234,567`.
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::built_in().expect("the shipped table")
    }

    fn usage(input: u32, output: u32, thinking: u32) -> UsageMetadata {
        UsageMetadata {
            prompt_token_count: input,
            candidates_token_count: output,
            thoughts_token_count: thinking,
            total_token_count: input + output + thinking,
            ..UsageMetadata::default()
        }
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn thinking_is_billed_as_output_and_batch_is_half() {
        let prices = table();
        let meter = Meter::new(&prices, "gemini-2.5-flash");
        meter.add(Mode::Batch, &usage(1_000_000, 1_000_000, 1_000_000));
        let bill = Bill::of(&meter, &prices, "gemini-2.5-flash", Mode::Batch, "tier1");
        // 1M × $0.30 + 2M × $2.50 = $5.30 standard; half in Batch Mode.
        assert!(close(bill.standard(), 5.30), "{bill:?}");
        assert!(close(bill.cost(), 2.65), "{bill:?}");
        assert!(close(bill.billed(), 2.65));
        assert_eq!(
            bill.line(),
            "bill: 1 answered on gemini-2.5-flash (batch): 1,000,000 input + 1,000,000 output + \
             1,000,000 thinking tokens = $2.65 at the batch price (standard would be $5.30, $2.65 saved; \
             prices: https://ai.google.dev/gemini-api/docs/pricing, read 2026-12-03)"
        );
        let json = bill.json();
        assert_eq!(json["cost_usd"], 2.65);
        assert_eq!(json["standard_usd"], 5.3);
        assert_eq!(json["thinking_tokens"], 1_000_000);
        assert_eq!(json["by_mode"][0]["mode"], "batch");
    }

    #[test]
    fn long_prompts_on_pro_pay_the_long_context_rate_each() {
        let prices = table();
        let meter = Meter::new(&prices, "gemini-2.5-pro");
        meter.add(Mode::Standard, &usage(250_000, 1_000, 0)); // long
        meter.add(Mode::Standard, &usage(100_000, 1_000, 0)); // not
        let bill = Bill::of(&meter, &prices, "gemini-2.5-pro", Mode::Standard, "tier1");
        // 250k × $2.50 + 1k × $15 = $0.64; 100k × $1.25 + 1k × $10 = $0.135.
        assert!(close(bill.cost(), 0.775), "{bill:?}");
        assert!(close(bill.standard(), 0.775));
        assert_eq!(bill.tally().requests, 2);
        let line = bill.line();
        assert!(line.ends_with("= $0.775 at the standard price (prices: https://ai.google.dev/gemini-api/docs/pricing, read 2026-12-03)"), "{line}");
    }

    #[test]
    fn a_fallback_run_is_priced_per_mode_and_aliases_as_their_target() {
        let prices = table();
        let meter = Meter::new(&prices, "gemini-flash-latest");
        for _ in 0..4 {
            meter.add(Mode::Flex, &usage(1_000, 2_000, 0));
        }
        meter.add(Mode::Standard, &usage(1_000, 2_000, 0));
        let bill = Bill::of(&meter, &prices, "gemini-flash-latest", Mode::Flex, "tier1");
        // Each request: 1k × $0.30 + 2k × $2.50 = $0.0053 standard.
        assert!(close(bill.standard(), 5.0 * 0.0053), "{bill:?}");
        assert!(close(bill.cost(), 4.0 * 0.00265 + 0.0053), "{bill:?}");
        let line = bill.line();
        assert!(
            line.starts_with(
                "bill: 5 answered on gemini-flash-latest (priced as gemini-2.5-flash) (1 standard, 4 flex)"
            ),
            "{line}"
        );
        assert!(line.contains("= $0.0159 at their modes' prices"), "{line}");
    }

    #[test]
    fn the_free_tier_bills_nothing_and_says_what_it_would_cost() {
        let prices = table();
        let meter = Meter::new(&prices, "gemini-2.5-flash");
        meter.add(Mode::Standard, &usage(10_000, 10_000, 0));
        let bill = Bill::of(&meter, &prices, "gemini-2.5-flash", Mode::Standard, "free");
        assert!(close(bill.billed(), 0.0));
        let line = bill.line();
        assert!(
            line.contains("free tier: $0 billed (standard price would be $0.028;"),
            "{line}"
        );
        let meter = Meter::new(&prices, "gemini-2.5-flash");
        meter.add(Mode::Batch, &usage(10_000, 10_000, 0));
        let line = Bill::of(&meter, &prices, "gemini-2.5-flash", Mode::Batch, "free").line();
        assert!(
            line.contains("$0 billed (standard price would be $0.028, the batch price $0.014;"),
            "{line}"
        );
    }

    #[test]
    fn an_unknown_model_shows_its_tokens_and_asks_for_a_price() {
        let prices = table();
        let meter = Meter::new(&prices, "gemini-9-ultra");
        meter.add(Mode::Standard, &usage(10, 20, 30));
        let bill = Bill::of(&meter, &prices, "gemini-9-ultra", Mode::Standard, "tier1");
        assert_eq!(bill.cost(), None);
        assert!(bill.json()["cost_usd"].is_null());
        let line = bill.line();
        assert!(
            line.contains("10 input + 20 output + 30 thinking tokens"),
            "{line}"
        );
        assert!(line.contains("--prices FILE"), "{line}");
    }

    #[test]
    fn nothing_answered_costs_nothing() {
        let prices = table();
        let meter = Meter::new(&prices, "gemini-2.5-flash");
        let bill = Bill::of(&meter, &prices, "gemini-2.5-flash", Mode::Batch, "tier1");
        assert!(close(bill.cost(), 0.0));
        assert!(bill.line().contains("0 answered"), "{}", bill.line());
    }

    #[test]
    fn dollars_read_well() {
        assert_eq!(usd(0.0), "$0");
        assert_eq!(usd(0.003), "$0.003");
        assert_eq!(usd(0.0441), "$0.0441");
        assert_eq!(usd(0.5), "$0.50");
        assert_eq!(usd(0.023533), "$0.02353");
        assert_eq!(usd(0.0053), "$0.0053");
        assert_eq!(usd(0.0000004), "$0");
        assert_eq!(usd(12.345), "$12.35");
        assert_eq!(usd(1234567.891), "$1,234,567.89");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1000), "1,000");
    }
}
