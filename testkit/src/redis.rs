//! A throwaway `redis-server` for tests: its own port, no persistence,
//! killed when the guard is dropped.
//!
//! Every test that needs Redis starts its own, so tests never share state
//! and can run in parallel. It lives in the test kit so that step 4's tests
//! and the bench's scale-out section share it.
//!
//! If `redis-server` is not installed, [`RedisServer::start`] returns `None`
//! and the test should return early: a developer without Redis can still run
//! the rest of the suite. Under CI (the `CI` variable is set) a missing
//! `redis-server` is a failure instead, so the tests cannot be skipped by
//! accident where it matters.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The program started.
const PROGRAM: &str = "redis-server";

/// A running `redis-server` on 127.0.0.1, killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Child,
    port: u16,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers `PING`.
    ///
    /// Returns `None`, after printing why, if `redis-server` is not
    /// installed and `CI` is unset. Panics if it is missing under CI, or if
    /// it does not come up.
    pub fn start() -> Option<RedisServer> {
        // A port found free can be taken by someone else before the server
        // binds it; then the server exits, and we try another.
        for _ in 0..5 {
            let port = free_port();
            let child = match Command::new(PROGRAM)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
            {
                Ok(child) => child,
                Err(error) if error.kind() == ErrorKind::NotFound => return missing(),
                Err(error) => panic!("could not start {PROGRAM}: {error}"),
            };
            let mut server = RedisServer { child, port };
            if server.wait_until_ready() {
                return Some(server);
            }
        }
        panic!("{PROGRAM} did not come up on any of five ports");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server now (to test what happens when Redis goes away).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Polls `PING` every 10 ms for up to 10 s. False if the server exited
    /// (its port was taken).
    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_exited)) = self.child.try_wait() {
                return false;
            }
            if ping(self.port) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.kill();
        panic!(
            "{PROGRAM} on port {} did not answer PING in 10 s",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The answer when `redis-server` is not installed.
fn missing() -> Option<RedisServer> {
    if std::env::var_os("CI").is_some() {
        panic!("{PROGRAM} is not installed, and CI is set: the Redis tests must run");
    }
    // Straight to stderr, not `eprintln!`: the test harness captures the
    // macros' output of passing tests, and this note should be seen.
    let _ = writeln!(
        std::io::stderr(),
        "note: {PROGRAM} is not installed; skipping this Redis test (install redis-server, or set CI to fail instead)"
    );
    None
}

/// A port that was free a moment ago: bind port 0, read it, release it.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("could bind a port on 127.0.0.1")
}

/// Whether a Redis on `port` answers `PING` with `+PONG`.
fn ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    stream.read_exact(&mut reply).is_ok() && reply == *b"+PONG\r\n"
}
