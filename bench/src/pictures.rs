//! `--pictures DIR`: the README's three timelines, made reproducibly.
//!
//! Steps 2, 3 and 4 each write an SVG timeline with `--timeline FILE.svg`
//! (one row per request, one bar per attempt; step 4 shades its windows).
//! Here they run on the same batch, against emulators with a latency of about
//! one second with some jitter, so the pictures differ only in what each step
//! teaches: a staircase, a wall, and blocks of ten per window.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;

use crate::binaries::{Binaries, run_step};

/// Requests in every picture.
const N: u32 = 20;
/// Step 4's limit: requests per window (the emulator enforces the same).
const RPM: u32 = 10;
/// Step 4's window.
const WINDOW: Duration = Duration::from_secs(5);

/// About a second per request, 0.75 s to 1.25 s, so the bars are not all alike.
fn emulator_settings() -> emulator::Settings {
    let mut settings = emulator::Settings::instant();
    settings.latency = emulator::Latency {
        base: Duration::from_millis(750),
        jitter: Duration::from_millis(500),
        per_output_token: Duration::ZERO,
    };
    settings
}

/// Writes `step2.svg`, `step3.svg` and `step4.svg` into `dir`.
pub async fn make(dir: &Path, bins: &Binaries) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    // The steps run in a temporary directory (so no `.env` of the
    // developer's is read): they need the full path.
    let dir = &dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let server = emulator::start(emulator_settings()).await?;
    for (name, bin) in [("step2", &bins.step2), ("step3", &bins.step3)] {
        let Some(bin) = bin else {
            eprintln!("bench: no {name} binary; {name}.svg not made");
            continue;
        };
        let path = dir.join(format!("{name}.svg"));
        eprintln!("bench: {name} -n {N} --timeline {}", path.display());
        run_step(bin, &server, &timeline_args(&path)).await?;
        written(&path)?;
    }
    server.shutdown().await;

    let Some(step4) = &bins.step4 else {
        eprintln!("bench: no step 4 binary with a runner; step4.svg not made");
        return Ok(());
    };
    let mut settings = emulator_settings();
    settings.rpm = Some(RPM);
    settings.window = WINDOW;
    let server = emulator::start(settings).await?;
    let path = dir.join("step4.svg");
    eprintln!(
        "bench: step4 -n {N} --rpm {RPM} --window 5s --timeline {}",
        path.display()
    );
    let mut args = timeline_args(&path);
    args.extend([
        "--rpm".into(),
        RPM.to_string(),
        "--window".into(),
        format!("{}s", WINDOW.as_secs()),
    ]);
    let run = run_step(step4, &server, &args).await?;
    written(&path)?;
    if run.rate_limited > 0 {
        eprintln!("bench: step 4 met {} 429s while drawing", run.rate_limited);
    }
    server.shutdown().await;
    Ok(())
}

/// Checks that a step really wrote its picture (it only notes a failure to).
fn written(path: &Path) -> anyhow::Result<()> {
    anyhow::ensure!(path.is_file(), "{} was not written", path.display());
    Ok(())
}

/// `-n N --timeline PATH`.
fn timeline_args(path: &Path) -> Vec<String> {
    vec![
        "-n".into(),
        N.to_string(),
        "--timeline".into(),
        path.display().to_string(),
    ]
}
