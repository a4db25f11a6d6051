//! What one run does ([`Settings`]) and the checks it passes before anything is sent: every
//! problem is reported at once, each naming its setting.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use http::Uri;

use super::profile::Profile;

/// Which OpenAI endpoint the requests go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Api {
    /// `POST /v1/chat/completions` with `messages` (system, then user and assistant turns).
    #[default]
    Chat,
    /// `POST /v1/completions` with the conversation flattened into one `prompt` string.
    Completions,
}

impl Api {
    /// The endpoint's path.
    pub fn path(self) -> &'static str {
        match self {
            Api::Chat => "/v1/chat/completions",
            Api::Completions => "/v1/completions",
        }
    }
}

impl FromStr for Api {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "chat" => Ok(Api::Chat),
            "completions" => Ok(Api::Completions),
            other => Err(format!(
                "{other:?} is not an API: use \"chat\" (/v1/chat/completions) or \
                 \"completions\" (/v1/completions)"
            )),
        }
    }
}

impl fmt::Display for Api {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Api::Chat => "chat",
            Api::Completions => "completions",
        })
    }
}

/// One run of the generator. [`Settings::default`] is what `lbx llm-load` does without flags.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Base URL of the server (lbx or a model server): `http://host:port`, optionally with a
    /// path prefix that goes before the API path.
    pub url: String,
    /// Which endpoint to call.
    pub api: Api,
    /// The `model` field of every request.
    pub model: String,
    /// Mean arrivals per second (Poisson).
    pub rate: f64,
    /// How long requests keep arriving; the run then waits for the answers still streaming.
    pub duration: Duration,
    /// Seed of every random draw: the same seed gives the same requests at the same offsets.
    pub seed: u64,
    /// Conversations in progress at any time; each arrival is the next turn of one of them,
    /// chosen at random, so a conversation's turns are on average `conversations / rate`
    /// seconds apart.
    pub conversations: usize,
    /// Distinct shared system prompts; each conversation starts from one of them.
    pub system_prompts: usize,
    /// Lengths of the pieces of a conversation (see [`Profile`]).
    pub profile: Profile,
    /// A conversation ends early rather than send a prompt longer than this (a model's context
    /// is bounded); its first turn is always sent.
    pub max_prompt_tokens: u32,
    /// Requests in flight at most; an arrival beyond it is not sent and counted as dropped by
    /// the generator (so an overloaded server cannot slow the schedule down).
    pub max_outstanding: usize,
    /// Longest a request may take, head to `[DONE]`; a slower one counts as an error.
    pub timeout: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080".into(),
            api: Api::Chat,
            model: DEFAULT_MODEL.into(),
            rate: 10.0,
            duration: Duration::from_secs(30),
            seed: 7,
            conversations: 32,
            system_prompts: 4,
            profile: Profile::default(),
            max_prompt_tokens: 16_384,
            max_outstanding: 1024,
            timeout: Duration::from_secs(120),
        }
    }
}

/// The default `model` field.
pub const DEFAULT_MODEL: &str = "meta-llama/Llama-3.1-8B-Instruct";

/// Settings that cannot run; the message lists every problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("llm-load settings cannot be used: {}", .0.join("; "))]
pub struct SettingsError(pub Vec<String>);

impl Settings {
    /// The endpoint every request goes to, or every problem with these settings.
    pub fn endpoint(&self) -> Result<Uri, SettingsError> {
        let mut problems = Vec::new();
        let endpoint = match endpoint(&self.url, self.api) {
            Ok(uri) => Some(uri),
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        if !(self.rate.is_finite() && self.rate > 0.0) {
            problems.push(format!(
                "rate: {} is not a positive number of requests per second",
                self.rate
            ));
        }
        if self.duration.is_zero() {
            problems.push("duration: must be longer than zero".into());
        }
        if self.model.is_empty() {
            problems.push("model: must not be empty".into());
        }
        for (name, value) in [
            ("conversations", self.conversations),
            ("system prompts", self.system_prompts),
            ("max outstanding", self.max_outstanding),
        ] {
            if value == 0 {
                problems.push(format!("{name}: must be at least 1"));
            }
        }
        if self.timeout.is_zero() {
            problems.push("timeout: must be longer than zero".into());
        }
        problems.extend(self.profile.problems());
        match endpoint {
            Some(uri) if problems.is_empty() => Ok(uri),
            _ => Err(SettingsError(problems)),
        }
    }
}

/// `base` (an `http://` URL) joined with the API path.
fn endpoint(base: &str, api: Api) -> Result<Uri, String> {
    let uri: Uri = base
        .parse()
        .map_err(|e| format!("url: {base:?} is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some(other) => {
            return Err(format!(
                "url: {base:?}: only http:// is supported, not {other}://"
            ));
        }
        None => return Err(format!("url: {base:?} has no scheme: write http://{base}")),
    }
    let Some(authority) = uri.authority() else {
        return Err(format!("url: {base:?} has no host"));
    };
    if uri.query().is_some() {
        return Err(format!("url: {base:?}: a base URL takes no query"));
    }
    let prefix = uri.path().trim_end_matches('/');
    format!("http://{authority}{prefix}{}", api.path())
        .parse()
        .map_err(|e| format!("url: {base:?} cannot be joined with {} ({e})", api.path()))
}
