//! One call to get a working client: the real API with a key, the built-in emulator without.
//!
//! The tutorial must run for someone who has no key yet, so [`connect`]
//! decides from the environment:
//!
//! | key | `GOOGLE_GEMINI_BASE_URL` | result |
//! |---|---|---|
//! | set | any (or none) | that server (default: the real API) with the key |
//! | none | none | the built-in emulator, started in-process on 127.0.0.1 over HTTPS (one stderr line says so) |
//! | none | loopback (`localhost`, `127.x`, `::1`) | that local server with the placeholder key `emulator` |
//! | none | any other host | [`Error::MissingKey`] |
//! | any | any, with `force_emulator` | the built-in emulator |
//!
//! Why a placeholder key for a local server: the emulator, like the real API,
//! answers 403 to a request with no key, and accepts any non-empty key (the
//! SDKs refuse to run without one, docs/wire.md#environment-variables). A local URL without a key
//! clearly means "my own emulator", so sending a placeholder is the sensible
//! reading. A remote URL without a key is a mistake, and an error says which
//! variables to set.

use std::time::Duration;

use url::Url;

use crate::client::{Client, ClientConfig};
use crate::config::{ApiKey, Config, PLACEHOLDER_KEY, is_loopback};
use crate::error::{Error, Result};
use crate::redact::redact_url;
use crate::trust::TlsRoots;

/// How to connect.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    /// Use the built-in emulator even when a key is set (`--emulator`).
    pub force_emulator: bool,
    /// The per-call deadline of the client.
    pub timeout: Duration,
    /// Settings of the built-in emulator, if it is started.
    pub emulator: emulator::Settings,
}

impl Default for ConnectOptions {
    /// No forcing, a 120 s timeout (the CLI default), a faithful emulator.
    fn default() -> Self {
        ConnectOptions {
            force_emulator: false,
            timeout: Duration::from_secs(120),
            emulator: emulator::Settings::default(),
        }
    }
}

/// A connected client, and the in-process emulator behind it when there is one.
pub struct Session {
    /// The client to send requests with.
    pub client: Client,
    /// Kept here so the emulator lives exactly as long as the session (dropping it stops the server).
    emulator: Option<emulator::Emulator>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("client", &self.client)
            .field("offline", &self.is_offline())
            .finish()
    }
}

impl Session {
    /// True when requests go to the built-in, in-process emulator.
    pub fn is_offline(&self) -> bool {
        self.emulator.is_some()
    }

    /// The in-process emulator (for its statistics), if one runs.
    pub fn emulator(&self) -> Option<&emulator::Emulator> {
        self.emulator.as_ref()
    }

    /// Stops the in-process emulator, if any, waiting for it to finish.
    pub async fn shutdown(self) {
        if let Some(emulator) = self.emulator {
            emulator.shutdown().await;
        }
    }
}

/// Reads the environment (and `.env`) and connects as the table in the module doc says.
pub async fn connect(opts: ConnectOptions) -> Result<Session> {
    let config = Config::from_env()?;
    connect_with(&config, opts).await
}

/// Like [`connect`], with the configuration given (tests pass one built from a map).
///
/// Prints at most one line on stderr: that the emulator is used, or that a
/// placeholder key goes to a local server.
pub async fn connect_with(config: &Config, opts: ConnectOptions) -> Result<Session> {
    match plan(config, opts.force_emulator)? {
        Plan::Emulator => start_emulator(config, opts).await,
        Plan::Remote {
            base_url,
            key,
            notice,
        } => {
            if let Some(notice) = notice {
                eprintln!("{notice}");
            }
            let client = Client::new(ClientConfig {
                base_url,
                api_key: Some(key),
                api_version: config.api_version.clone(),
                timeout: opts.timeout,
            })?;
            Ok(Session {
                client,
                emulator: None,
            })
        }
    }
}

/// Where to send requests, decided without side effects.
#[derive(Debug)]
enum Plan {
    /// Start the built-in emulator.
    Emulator,
    /// Use this server and key; print the notice first.
    Remote {
        base_url: Url,
        key: ApiKey,
        notice: Option<String>,
    },
}

/// The decision table of the module doc.
fn plan(config: &Config, force_emulator: bool) -> Result<Plan> {
    if force_emulator {
        return Ok(Plan::Emulator);
    }
    match (&config.api_key, &config.base_url) {
        (Some(key), _) => Ok(Plan::Remote {
            base_url: config.effective_base_url(),
            key: key.clone(),
            notice: None,
        }),
        (None, None) => Ok(Plan::Emulator),
        (None, Some(url)) if is_loopback(url) => Ok(Plan::Remote {
            base_url: url.clone(),
            key: ApiKey::new(PLACEHOLDER_KEY).ok_or(Error::MissingKey)?,
            notice: Some(format!(
                "No API key set: sending the placeholder key {PLACEHOLDER_KEY:?} to the local server at {}.",
                redact_url(url.as_str())
            )),
        }),
        (None, Some(_)) => Err(Error::MissingKey),
    }
}

/// Starts the emulator on 127.0.0.1 (ephemeral port unless the settings say otherwise) and connects to it.
///
/// It serves HTTPS with HTTP/2 and Google's 100 streams per connection, so the tutorial meets
/// offline the wire it meets online. The client trusts exactly the CA the emulator made at
/// start, handed over in memory: no file, and no other server could be trusted by mistake.
async fn start_emulator(config: &Config, mut opts: ConnectOptions) -> Result<Session> {
    opts.emulator.tls = true;
    // The emulator accepts any non-empty key unless its settings demand one.
    let key = opts
        .emulator
        .key
        .clone()
        .unwrap_or_else(|| PLACEHOLDER_KEY.to_string());
    let server = emulator::start(opts.emulator)
        .await
        .map_err(|e| Error::Config(format!("cannot start the built-in emulator: {e}")))?;
    let base_url = Url::parse(&server.base_url()).map_err(|e| {
        Error::Config(format!(
            "the emulator gave an unusable address {:?}: {e}",
            server.base_url()
        ))
    })?;
    eprintln!(
        "Running offline on the built-in Gemini emulator at {base_url} (no real API calls). To use the real API, set GOOGLE_API_KEY or GEMINI_API_KEY (in the environment or a .env file)."
    );
    let roots = TlsRoots::Only(server.ca_pem().unwrap_or_default().to_string());
    let client = Client::with_roots(
        ClientConfig {
            base_url,
            api_key: ApiKey::new(key),
            api_version: config.api_version.clone(),
            timeout: opts.timeout,
        },
        roots,
    )?;
    Ok(Session {
        client,
        emulator: Some(server),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Config {
        Config::from_lookup(|name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        })
        .unwrap()
    }

    #[test]
    fn decision_table() {
        assert!(matches!(plan(&config(&[]), false), Ok(Plan::Emulator)));
        assert!(matches!(
            plan(&config(&[("GEMINI_API_KEY", "k")]), true),
            Ok(Plan::Emulator)
        ));
        let Ok(Plan::Remote {
            base_url,
            key,
            notice,
        }) = plan(&config(&[("GEMINI_API_KEY", "k")]), false)
        else {
            panic!("a key means the real API");
        };
        assert_eq!(
            base_url.as_str(),
            "https://generativelanguage.googleapis.com/"
        );
        assert_eq!((key.expose(), notice), ("k", None));
        let Ok(Plan::Remote { key, notice, .. }) = plan(
            &config(&[("GOOGLE_GEMINI_BASE_URL", "http://localhost:8080")]),
            false,
        ) else {
            panic!("a local URL without a key is the user's emulator");
        };
        assert_eq!(key.expose(), PLACEHOLDER_KEY);
        assert!(notice.is_some());
        assert!(matches!(
            plan(
                &config(&[("GOOGLE_GEMINI_BASE_URL", "https://gemini-proxy.example")]),
                false
            ),
            Err(Error::MissingKey)
        ));
    }
}
