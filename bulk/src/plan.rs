//! `--mode auto`: the cheapest mode that finishes by the deadline.
//!
//! Three ways to send the same prompts, each with its own time and price:
//!
//! | mode | time | price |
//! |---|---|---|
//! | standard | the interactive quota's pace (RPM, TPM, RPD) plus an answer's latency | standard |
//! | flex | the same pace, plus Flex's latency (up to 15 minutes) | half |
//! | batch | the job's turnaround: 24 hours at most, usually less (`--batch-expect`) | half |
//!
//! The pace comes from the limits in force (the `--tier` table, or your
//! `--rpm`, `--tpm`, `--rpd`, as the limits an earlier run learned from the
//! server change them, with the requests already sent today counting
//! against RPD), the tokens from the prompts' estimate and
//! `--expect-output` per prompt. While a day an earlier run found spent
//! lasts, standard and flex cannot send at all (a synchronous run that finds
//! it stops at once), and the plan says so. The planner keeps the modes whose
//! estimate is within `--deadline`, and takes the cheapest; on a tie, batch
//! (it spends none of the interactive quota), then flex. If none fits, it
//! takes the fastest and says that the deadline will likely be missed. A flex
//! plan falls back to standard at the moment standard would still finish in
//! time, so the deadline holds even if Flex is slow. The one line it prints
//! before sending shows every estimate, so the choice can be checked.

use std::time::Duration;

use crate::{
    bill::{grouped, usd},
    prices::{Mode, PriceTable},
};

/// The latency of a standard answer, added once at the end of the pace.
pub const STANDARD_LATENCY: Duration = Duration::from_secs(60);

/// The latency of a Flex answer, at worst: the end of Google's 1-15 minute target.
pub const FLEX_LATENCY: Duration = Duration::from_secs(15 * 60);

/// What is to be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Workload {
    /// Prompts.
    pub prompts: u64,
    /// Their estimated input tokens.
    pub input_tokens: u64,
    /// The output tokens expected (thinking included).
    pub output_tokens: u64,
}

/// The interactive limits synchronous requests keep under (`None`: no limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Requests per window.
    pub rpm: Option<u32>,
    /// Input tokens per window.
    pub tpm: Option<u32>,
    /// Requests per day.
    pub rpd: Option<u32>,
    /// The window RPM and TPM count over.
    pub window: Duration,
    /// The day RPD counts over.
    pub day: Duration,
    /// Requests already sent today, by this key and model: they count
    /// against `rpd`.
    pub sent_today: u64,
    /// How long a day an earlier run found spent still lasts: until then,
    /// no synchronous request may go.
    pub spent_for: Option<Duration>,
}

/// One mode's estimate.
#[derive(Debug, Clone, PartialEq)]
pub struct Estimate {
    /// The mode.
    pub mode: Mode,
    /// How long until the last answer, at most.
    pub time: Duration,
    /// What it would cost at the published prices (`None`: no price known).
    pub cost: Option<f64>,
    /// Why the mode cannot be used now, if it cannot (batch needs
    /// `--output`; standard and flex wait for a spent day).
    pub unusable: Option<String>,
}

/// The planner's choice.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The mode chosen.
    pub chosen: Mode,
    /// Whether it finishes by the deadline.
    pub in_time: bool,
    /// For a flex plan, when to fall back to standard to still be in time.
    pub fallback_after: Option<Duration>,
    /// Every mode's estimate, standard first.
    pub estimates: Vec<Estimate>,
    /// The deadline.
    pub deadline: Duration,
    /// What was planned for.
    pub workload: Workload,
}

/// How long synchronous requests take at `pace`, before their latency.
pub fn paced(workload: Workload, pace: Pace) -> Duration {
    let windows = |count: u64, per: Option<u32>| match per {
        Some(per) if per > 0 => count.div_ceil(u64::from(per)).saturating_sub(1),
        _ => 0,
    };
    let requests = windows(workload.prompts, pace.rpm);
    let tokens = windows(workload.input_tokens, pace.tpm);
    // Today's earlier requests fill the first day as far as they go.
    let days = windows(workload.prompts.saturating_add(pace.sent_today), pace.rpd);
    let within = pace
        .window
        .saturating_mul(u32::try_from(requests.max(tokens)).unwrap_or(u32::MAX));
    // A day's requests go at the window's pace, then the rest wait for the next day.
    let whole_days = pace
        .day
        .saturating_mul(u32::try_from(days).unwrap_or(u32::MAX));
    if days > 0 {
        whole_days.saturating_add(within.min(pace.day))
    } else {
        within
    }
}

/// Plans `workload` of `model` by `deadline`.
pub fn plan(
    workload: Workload,
    pace: Pace,
    prices: &PriceTable,
    model: &str,
    deadline: Duration,
    batch_expect: Duration,
    batch_usable: bool,
) -> Plan {
    let pace_time = paced(workload, pace);
    let cost = |mode: Mode| {
        prices.lookup(model).map(|(_, price)| {
            let average = workload.input_tokens / workload.prompts.max(1);
            let rate = price.rate(average);
            (workload.input_tokens as f64 * rate.input
                + workload.output_tokens as f64 * rate.output)
                / 1_000_000.0
                * prices.factor(mode)
        })
    };
    // A synchronous run that finds the day spent stops at once.
    let spent = pace
        .spent_for
        .map(|left| format!("not before the day's quota is back in {}", span(left)));
    let estimates = vec![
        Estimate {
            mode: Mode::Standard,
            time: pace_time.saturating_add(STANDARD_LATENCY),
            cost: cost(Mode::Standard),
            unusable: spent.clone(),
        },
        Estimate {
            mode: Mode::Flex,
            time: pace_time.saturating_add(FLEX_LATENCY),
            cost: cost(Mode::Flex),
            unusable: spent,
        },
        Estimate {
            mode: Mode::Batch,
            time: batch_expect,
            cost: cost(Mode::Batch),
            unusable: (!batch_usable).then(|| "needs --output".to_string()),
        },
    ];
    // Without a price, the modes' factors still order them.
    let price_of = |e: &Estimate| e.cost.unwrap_or_else(|| prices.factor(e.mode));
    // Batch, then flex, then standard on a tie.
    let preference = |mode: Mode| match mode {
        Mode::Batch => 0,
        Mode::Flex => 1,
        Mode::Standard => 2,
    };
    let usable = estimates.iter().filter(|e| e.unusable.is_none());
    let in_time = usable
        .clone()
        .filter(|e| e.time <= deadline)
        .min_by(|a, b| {
            price_of(a)
                .total_cmp(&price_of(b))
                .then(preference(a.mode).cmp(&preference(b.mode)))
        });
    let (chosen, fits) = match in_time {
        Some(best) => (best.mode, true),
        // None can send now: standard, which says when the day comes back.
        None if usable.clone().next().is_none() => (Mode::Standard, false),
        None => {
            let fastest = usable
                .min_by(|a, b| {
                    a.time
                        .cmp(&b.time)
                        .then(price_of(a).total_cmp(&price_of(b)))
                })
                .map_or(Mode::Standard, |e| e.mode);
            (fastest, false)
        }
    };
    let standard_time = estimates[0].time;
    let fallback_after = (chosen == Mode::Flex && fits && standard_time <= deadline)
        .then(|| deadline.saturating_sub(standard_time))
        .filter(|after| !after.is_zero());
    Plan {
        chosen,
        in_time: fits,
        fallback_after,
        estimates,
        deadline,
        workload,
    }
}

impl Plan {
    /// The one line said before sending.
    pub fn line(&self) -> String {
        let estimates: Vec<String> = self
            .estimates
            .iter()
            .map(|e| {
                let time = match e.mode {
                    Mode::Batch => format!("within {}", span(e.time)),
                    _ => format!("about {}", span(e.time)),
                };
                let cost = e.cost.map_or_else(|| "price unknown".to_string(), usd);
                let unusable = e
                    .unusable
                    .as_ref()
                    .map_or(String::new(), |why| format!(", {why}"));
                format!("{} {time}, {cost}{unusable}", e.mode.name())
            })
            .collect();
        let verdict = if self.in_time {
            format!("the cheapest that finishes within {}", span(self.deadline))
        } else if self.estimates.iter().all(|e| e.unusable.is_some()) {
            "as none can send now".to_string()
        } else {
            format!(
                "none finishes within {}: the fastest, which will likely miss it",
                span(self.deadline)
            )
        };
        let fallback = self.fallback_after.map_or(String::new(), |after| {
            format!(
                "; it falls back to standard after {} to stay in time",
                span(after)
            )
        });
        format!(
            "--mode auto chose {}, {verdict}{fallback}. Estimates for {} prompts (~{} input tokens, {} output tokens assumed, --expect-output): {}",
            self.chosen.name(),
            grouped(self.workload.prompts),
            grouped(self.workload.input_tokens),
            grouped(self.workload.output_tokens),
            estimates.join("; ")
        )
    }
}

/// `45 s`, `12 min`, `1 h 40 min`, `2 d 3 h`.
pub fn span(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s} s"),
        // 59 min 30 s reads as an hour, not as "60 min".
        60..3541 => format!("{} min", s.div_ceil(60)),
        3541..3600 => "1 h".to_string(),
        3600..86_400 => {
            let minutes = (s % 3600).div_ceil(60);
            if minutes == 0 {
                format!("{} h", s / 3600)
            } else {
                format!("{} h {minutes} min", s / 3600)
            }
        }
        _ => {
            let hours = (s % 86_400) / 3600;
            if hours == 0 {
                format!("{} d", s / 86_400)
            } else {
                format!("{} d {hours} h", s / 86_400)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn pace(rpm: u32, rpd: u32) -> Pace {
        Pace {
            rpm: Some(rpm),
            tpm: None,
            rpd: Some(rpd),
            window: Duration::from_secs(60),
            day: Duration::from_secs(86_400),
            sent_today: 0,
            spent_for: None,
        }
    }

    fn work(prompts: u64) -> Workload {
        Workload {
            prompts,
            input_tokens: prompts * 100,
            output_tokens: prompts * 1000,
        }
    }

    fn table() -> PriceTable {
        PriceTable::built_in().expect("valid")
    }

    /// 1,000 prompts of gemini-2.5-flash at `pace` by `deadline`, a batch expected in 24 h.
    fn thousand(pace: Pace, deadline: Duration, batch_usable: bool) -> Plan {
        let model = "gemini-2.5-flash";
        plan(
            work(1000),
            pace,
            &table(),
            model,
            deadline,
            24 * HOUR,
            batch_usable,
        )
    }

    #[test]
    fn the_pace_counts_windows_and_days() {
        // 1,000 prompts at 100 per minute: 9 more minutes after the first.
        assert_eq!(paced(work(1000), pace(100, 0)), Duration::from_secs(9 * 60));
        // 2,500 at 1,000 per day: two whole days, then the last day's pace.
        let p = paced(work(2500), pace(1000, 1000));
        assert!(p >= Duration::from_secs(2 * 86_400), "{p:?}");
        let tokens = Pace {
            tpm: Some(10_000),
            ..pace(0, 0)
        };
        // 100,000 tokens at 10,000 per minute: 9 more minutes.
        assert_eq!(paced(work(1000), tokens), Duration::from_secs(9 * 60));
    }

    #[test]
    fn a_roomy_deadline_picks_batch_and_a_tight_one_flex_or_standard() {
        let roomy = thousand(pace(1000, 10_000), 48 * HOUR, true);
        assert_eq!((roomy.chosen, roomy.in_time), (Mode::Batch, true));
        let line = roomy.line();
        assert!(
            line.starts_with("--mode auto chose batch, the cheapest that finishes within 2 d"),
            "{line}"
        );
        assert!(line.contains("standard about 1 min, $2.53"), "{line}");
        assert!(line.contains("batch within 1 d, $1.26"), "{line}");

        let hours = thousand(pace(1000, 10_000), 2 * HOUR, true);
        assert_eq!(hours.chosen, Mode::Flex);
        // Standard takes about a minute: flex may run until 2 h less that minute.
        assert_eq!(
            hours.fallback_after,
            Some(2 * HOUR - Duration::from_secs(60))
        );
        assert!(
            hours
                .line()
                .contains("falls back to standard after 1 h 59 min"),
            "{}",
            hours.line()
        );

        let minutes = thousand(pace(1000, 10_000), Duration::from_secs(300), true);
        assert_eq!(minutes.chosen, Mode::Standard);
        assert_eq!(minutes.fallback_after, None);
    }

    #[test]
    fn without_output_batch_is_out_and_without_time_the_fastest_is_taken() {
        let prices = table();
        let no_output = thousand(pace(1000, 10_000), 48 * HOUR, false);
        assert_eq!(no_output.chosen, Mode::Flex);
        assert!(
            no_output.line().contains("needs --output"),
            "{}",
            no_output.line()
        );
        // 100,000 prompts at 10 per minute and 250 a day: batch (24 h) is the fastest.
        let late = plan(
            work(100_000),
            pace(10, 250),
            &prices,
            "gemini-2.5-flash",
            HOUR,
            24 * HOUR,
            true,
        );
        assert_eq!((late.chosen, late.in_time), (Mode::Batch, false));
        assert!(
            late.line().contains("none finishes within 1 h"),
            "{}",
            late.line()
        );
    }

    #[test]
    fn a_spent_day_rules_out_the_synchronous_modes_and_is_said() {
        let spent = Pace {
            spent_for: Some(3 * HOUR),
            ..pace(1000, 10_000)
        };
        // On a fresh day flex (about 15 min) is the cheapest in 2 h; batch,
        // expected in 24 h, is not in time. With the day spent for 3 h,
        // neither standard nor flex can send: batch, late, is all there is.
        let fresh = thousand(pace(1000, 10_000), 2 * HOUR, true);
        assert_eq!(fresh.chosen, Mode::Flex);
        let late = thousand(spent, 2 * HOUR, true);
        assert_eq!((late.chosen, late.in_time), (Mode::Batch, false));
        let line = late.line();
        assert!(
            line.contains("standard about 1 min, $2.53, not before the day's quota is back in 3 h"),
            "{line}"
        );
        // Without --output, nothing can send now, and the line says so.
        let stuck = thousand(spent, 2 * HOUR, false);
        assert_eq!((stuck.chosen, stuck.in_time), (Mode::Standard, false));
        assert!(
            stuck
                .line()
                .starts_with("--mode auto chose standard, as none can send now"),
            "{}",
            stuck.line()
        );
    }

    #[test]
    fn requests_sent_today_count_against_the_day() {
        // 1,000 prompts at 1,000 a day: within the day on a fresh one, the
        // next day when 500 went already.
        let fresh = paced(work(1000), pace(1000, 1000));
        assert!(fresh < Duration::from_secs(3600), "{fresh:?}");
        let half = Pace {
            sent_today: 500,
            ..pace(1000, 1000)
        };
        assert!(paced(work(1000), half) >= Duration::from_secs(86_400));
    }

    #[test]
    fn spans_read_well() {
        assert_eq!(span(Duration::from_secs(45)), "45 s");
        assert_eq!(span(Duration::from_secs(61)), "2 min");
        assert_eq!(span(Duration::from_secs(3600)), "1 h");
        assert_eq!(span(Duration::from_secs(3599)), "1 h");
        assert_eq!(span(Duration::from_secs(3540)), "59 min");
        assert_eq!(span(Duration::from_secs(5400)), "1 h 30 min");
        assert_eq!(span(Duration::from_secs(86_400 + 3 * 3600)), "1 d 3 h");
    }
}
