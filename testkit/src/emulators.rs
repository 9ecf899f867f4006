//! Emulators set up for a test: quick, slow, faulty, or restartable on the same port; and what they saw.
//!
//! Every test runs against an [`emulator`] on 127.0.0.1 (never the
//! internet). These are the settings the tests keep asking for, and the
//! counts of what reached the server that they assert on.

use std::time::Duration;

use emulator::{Emulator, Faults, Latency, Settings};

/// Starts an emulator with `settings` and a 20-30 ms latency: quick, but
/// with requests in flight long enough for a limiter's pacing to show.
pub async fn start_quick(settings: Settings) -> Emulator {
    emulator::start(Settings {
        latency: Latency {
            base: Duration::from_millis(20),
            jitter: Duration::from_millis(10),
            ..Latency::ZERO
        },
        ..settings
    })
    .await
    .expect("the emulator starts")
}

/// Instant settings with some faults and a seed, for reproducible failures.
pub fn faulty(faults: Faults, seed: u64) -> Settings {
    Settings {
        faults,
        seed,
        ..Settings::instant()
    }
}

/// Instant settings except that each generate request takes `latency`.
pub fn slow(latency: Duration) -> Settings {
    Settings {
        latency: Latency {
            base: latency,
            ..Latency::ZERO
        },
        ..Settings::instant()
    }
}

/// Starts an emulator on a port that the kernel never hands out by itself,
/// so that the test can shut it down and start another on the *same* port.
///
/// A port from `127.0.0.1:0` comes from the ephemeral range, and the moment
/// it is freed the kernel may give it to anything else running in parallel
/// (another test's server, an outgoing connection), and the restart fails.
/// Ports below Linux's ephemeral range (32768 and up) are only ever taken by
/// an explicit bind, so a free one stays ours in practice.
pub async fn start_restartable(settings: Settings) -> Emulator {
    let spread = u64::from(std::process::id())
        ^ u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default(),
        );
    for attempt in 0..200u64 {
        let port = 20_000 + ((spread + attempt * 7919) % 12_000) as u16;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if let Ok(server) = emulator::start(Settings {
            addr,
            ..settings.clone()
        })
        .await
        {
            return server;
        }
    }
    panic!("no free port between 20000 and 32000");
}

/// Starts an emulator again on `addr`, where one was just shut down.
///
/// Retries for a moment: the old server's sockets may take a few
/// milliseconds to let go of the port.
pub async fn restart_on(addr: std::net::SocketAddr, settings: Settings) -> Emulator {
    let mut last_error = None;
    for _ in 0..50 {
        match emulator::start(Settings {
            addr,
            ..settings.clone()
        })
        .await
        {
            Ok(server) => return server,
            Err(error) => last_error = Some(error),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("cannot start a new emulator on {addr}: {last_error:?}");
}

/// Generate requests (unary and streamed) the emulator has seen.
pub fn generate_calls(server: &Emulator) -> usize {
    server
        .stats()
        .arrivals
        .iter()
        .filter(|a| a.method.ends_with("enerateContent"))
        .count()
}

/// The generate requests the emulator has seen, once the count has stayed
/// the same for half a second.
pub(crate) async fn settled_generate_calls(server: &Emulator) -> usize {
    let mut seen = generate_calls(server);
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = generate_calls(server);
        if now == seen {
            return now;
        }
        seen = now;
    }
}

/// An address on 127.0.0.1 where nothing listens.
pub fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binds a free port");
    let port = listener.local_addr().expect("has an address").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}
