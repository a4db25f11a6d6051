//! How long a conversation's pieces are: the system prompt, each new user message, each
//! answer (`max_tokens`) and the number of turns — the distributions the workload draws from,
//! and where their numbers come from.
//!
//! The default is the `interactive-chat` profile of the Kubernetes Gateway API Inference
//! Extension's benchmarking tool, inference-perf (`kubernetes-sigs/inference-perf`,
//! `workload-catalog/interactive-chat/config.json`), the tool that project uses to evaluate
//! prefix-aware routing:
//!
//! | piece                      | distribution | mean  | std dev | clamped to |
//! |----------------------------|--------------|-------|---------|------------|
//! | system prompt (tokens)     | fixed        | 1000  | 0       | 1000       |
//! | new user message (tokens)  | log-normal   | 50    | 40      | 10–1000    |
//! | answer, `max_tokens`       | normal       | 300   | 150     | 10–1000    |
//! | turns per conversation     | log-normal   | 4     | 2.5     | 1–15       |
//!
//! Those figures are that catalogue's modelled profile, not a measurement this project made;
//! treat them as assumptions with a public, citable origin. One cross-check against a measured
//! dataset: ShareGPT's 94,145 conversations average 3.51 turns (the dataset table of
//! LMSYS-Chat-1M, Zheng et al., ICLR 2024, as reproduced in the ShareChat paper, arXiv
//! 2512.17843), close to the profile's mean of 4. ShareGPT's per-turn token statistics (the
//! vLLM paper, Kwon et al., SOSP 2023, uses its lengths) could not be retrieved in citable form
//! when this was written, so they are not used.
//!
//! A drawn value is rounded to whole tokens and clamped to `min..=max` (so a clamped
//! distribution's mean differs slightly from the nominal one).

use rand::Rng;
use rand_distr::{Distribution, LogNormal, Normal};

/// The shape of a [`Spread`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Normal with the given mean and standard deviation.
    Normal,
    /// Log-normal whose (linear) mean and standard deviation are the given ones: lengths of
    /// human-written and generated text are skewed, with a long right tail.
    LogNormal,
}

/// A distribution of whole numbers: a shape with its mean and standard deviation, rounded and
/// clamped to `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The shape.
    pub shape: Shape,
    /// Mean before clamping.
    pub mean: f64,
    /// Standard deviation before clamping (0: always the mean).
    pub std_dev: f64,
    /// Smallest value drawn.
    pub min: u32,
    /// Largest value drawn.
    pub max: u32,
}

impl Spread {
    /// A value that never varies.
    pub const fn fixed(value: u32) -> Self {
        Self {
            shape: Shape::Normal,
            mean: value as f64,
            std_dev: 0.0,
            min: value,
            max: value,
        }
    }

    /// Why this spread cannot be drawn from, if it cannot.
    fn problem(&self) -> Option<String> {
        if !(self.mean.is_finite() && self.mean > 0.0) {
            Some(format!("mean {} is not a positive number", self.mean))
        } else if !(self.std_dev.is_finite() && self.std_dev >= 0.0) {
            Some(format!(
                "standard deviation {} is not a number >= 0",
                self.std_dev
            ))
        } else if self.min > self.max {
            Some(format!("min {} is above max {}", self.min, self.max))
        } else {
            None
        }
    }

    fn sampler(&self) -> Sampler {
        let shape = match self.shape {
            Shape::Normal => {
                SamplerShape::Normal(Normal::new(self.mean, self.std_dev).expect("validated"))
            }
            Shape::LogNormal => SamplerShape::LogNormal(
                LogNormal::from_mean_cv(self.mean, self.std_dev / self.mean).expect("validated"),
            ),
        };
        Sampler {
            shape,
            min: self.min,
            max: self.max,
        }
    }
}

/// The lengths of a conversation's pieces, in tokens (see the module doc for the default's
/// source).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Length of each shared system prompt.
    pub system_prompt_tokens: u32,
    /// Length of each new user message.
    pub user_tokens: Spread,
    /// Length of each answer: the request's `max_tokens`.
    pub output_tokens: Spread,
    /// Turns (requests) per conversation.
    pub turns: Spread,
}

impl Default for Profile {
    /// inference-perf's `interactive-chat` profile.
    fn default() -> Self {
        Self {
            system_prompt_tokens: 1000,
            user_tokens: Spread {
                shape: Shape::LogNormal,
                mean: 50.0,
                std_dev: 40.0,
                min: 10,
                max: 1000,
            },
            output_tokens: Spread {
                shape: Shape::Normal,
                mean: 300.0,
                std_dev: 150.0,
                min: 10,
                max: 1000,
            },
            turns: Spread {
                shape: Shape::LogNormal,
                mean: 4.0,
                std_dev: 2.5,
                min: 1,
                max: 15,
            },
        }
    }
}

impl Profile {
    /// Every problem, each naming its piece.
    pub(super) fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (name, spread) in [
            ("user message length", &self.user_tokens),
            ("answer length", &self.output_tokens),
            ("turns per conversation", &self.turns),
        ] {
            if let Some(problem) = spread.problem() {
                problems.push(format!("{name}: {problem}"));
            }
        }
        if self.turns.min == 0 {
            problems.push("turns per conversation: min must be at least 1".into());
        }
        problems
    }

    /// Samplers for a validated profile.
    pub(super) fn samplers(&self) -> Samplers {
        Samplers {
            user_tokens: self.user_tokens.sampler(),
            output_tokens: self.output_tokens.sampler(),
            turns: self.turns.sampler(),
        }
    }
}

/// A validated profile, ready to draw from.
#[derive(Debug, Clone)]
pub(super) struct Samplers {
    pub user_tokens: Sampler,
    pub output_tokens: Sampler,
    pub turns: Sampler,
}

#[derive(Debug, Clone)]
enum SamplerShape {
    Normal(Normal<f64>),
    LogNormal(LogNormal<f64>),
}

/// Draws whole numbers from one [`Spread`].
#[derive(Debug, Clone)]
pub(super) struct Sampler {
    shape: SamplerShape,
    min: u32,
    max: u32,
}

impl Sampler {
    /// One value, rounded and clamped.
    pub fn draw(&self, rng: &mut impl Rng) -> u32 {
        let value = match &self.shape {
            SamplerShape::Normal(d) => d.sample(rng),
            SamplerShape::LogNormal(d) => d.sample(rng),
        };
        // `as` saturates (and maps NaN to 0) before the clamp.
        (value.round() as u32).clamp(self.min, self.max)
    }
}
