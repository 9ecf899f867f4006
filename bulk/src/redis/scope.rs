//! Whose quota a shared limiter draws from: a project (a hash of the API
//! key, never the key) and a model, and the Redis key names of its books.

use sha2::{Digest, Sha256};

/// Whose quota a [`RedisLimiter`](super::RedisLimiter) draws from: a project (a hash of the API
/// key) and a model. Processes with equal scopes share one budget.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    project: String,
    model: String,
}

impl Scope {
    /// Hex digits of the key's SHA-256 kept as the project id: 64 bits, far
    /// more than enough to tell projects apart, useless for finding the key.
    const PROJECT_DIGITS: usize = 16;

    /// The scope of `api_key` and `model`. Only a hash of the key is kept.
    ///
    /// ```
    /// use bulk::redis::Scope;
    ///
    /// let scope = Scope::new("AIza-not-a-real-key", "models/gemini-2.5-flash");
    /// assert_eq!(scope.model(), "gemini-2.5-flash");
    /// assert_eq!(scope.project().len(), 16);
    /// assert!(!format!("{scope:?}").contains("AIza"));
    /// assert!(scope.key("rpm").starts_with("gemini-rl:{"));
    /// ```
    pub fn new(api_key: &str, model: &str) -> Scope {
        let digest = Sha256::digest(api_key.as_bytes());
        let mut project: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
        project.truncate(Scope::PROJECT_DIGITS);
        Scope::with_project(&project, model)
    }

    /// The scope of the key this program would send (found the way
    /// `common::config::Config::from_env` finds it: the environment, then a
    /// `.env` file, silently) and `model`. Without a key (the built-in
    /// emulator), the project is `offline`.
    pub fn from_env(model: &str) -> Scope {
        let key = std::env::current_dir().ok().and_then(|dir| {
            common::config::Config::from_env_in(&dir, |name| std::env::var(name).ok())
                .ok()?
                .api_key
        });
        match key {
            Some(key) => Scope::new(key.expose(), model),
            None => Scope::with_project("offline", model),
        }
    }

    /// A scope with an explicit project id (a name for a test, or an id you
    /// already have). Characters that could break a key name or its hash
    /// tag (anything but letters, digits, `.`, `_` and `-`) become `_`.
    pub fn with_project(project: &str, model: &str) -> Scope {
        let model = model.strip_prefix("models/").unwrap_or(model);
        Scope {
            project: clean(project),
            model: clean(model),
        }
    }

    /// The project id (a hash of the key, for [`Scope::new`]).
    pub fn project(&self) -> &str {
        &self.project
    }

    /// The model, without a `models/` prefix.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// The Redis key of one part of this scope's books, e.g. `key("rpm")`
    /// is `gemini-rl:{<project>:<model>}:rpm`. The parts are `rpm`, `tpm`,
    /// `tpm:w`, `tpm:sum`, `rpd`, `pause`, `stop`, `seq` and `learned`.
    pub fn key(&self, part: &str) -> String {
        format!("gemini-rl:{{{}:{}}}:{part}", self.project, self.model)
    }
}

/// Keeps what is safe inside a key name and its hash tag.
fn clean(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '_' | '-' => c,
            _ => '_',
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_never_reaches_a_key_name() {
        let scope = Scope::new("secret-key-123", "gemini-2.5-flash");
        let name = scope.key("rpm");
        assert!(!name.contains("secret"));
        assert_eq!(
            scope,
            Scope::new("secret-key-123", "models/gemini-2.5-flash")
        );
        assert_ne!(scope, Scope::new("secret-key-124", "gemini-2.5-flash"));
        assert_ne!(scope, Scope::new("secret-key-123", "gemini-2.5-pro"));
    }

    #[test]
    fn braces_cannot_break_the_hash_tag() {
        let scope = Scope::with_project("a}b{c", "m:x");
        assert_eq!(scope.key("rpm"), "gemini-rl:{a_b_c:m_x}:rpm");
    }
}
