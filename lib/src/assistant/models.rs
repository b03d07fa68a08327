//! The model table: price per million tokens (input, cached input, output), per audio minute
//! (transcription models billed by duration), whether the model accepts images and how it
//! thinks ([`Thinking`]). Defaults are in code; `AI_MODELS` (JSON) adds or overrides entries:
//! `{"gpt-4o-mini": {"input": 0.15, "cached_input": 0.075, "output": 0.6, "images": true}}`,
//! `{"claude-x": {"input": 1, "output": 5, "thinking": "adaptive"}}`.
//! A model is looked up by its longest listed prefix (`gpt-4o-mini-2024-07-18` is
//! `gpt-4o-mini`); an unknown model costs 0 and is logged.
//!
//! Orgs choose only among the models their plan offers (`plans.models`, enforced by the
//! database on `assistant_settings`), and every offered model must have a price here:
//! `tests/api/tenant.rs` (`every_model_a_plan_offers_has_a_price`) reads the plans and checks.

use std::collections::HashMap;

use serde::Deserialize;

/// Tokens of one call. `input` counts every input token, cached ones included; `seconds` is
/// the audio a transcription billed by duration reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cached: u64,
    pub seconds: u64,
}

/// How a model thinks before it answers (Anthropic's `thinking` request parameter). Thinking
/// tokens are output tokens and count against `max_tokens`; in a tool loop the thinking blocks
/// of the turn that called the tools must be sent back unmodified.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Thinking {
    /// Does not think unless asked (this service does not ask), or not an Anthropic model.
    #[default]
    None,
    /// Adaptive thinking by default; may be turned off for one request.
    Adaptive,
    /// Adaptive thinking that cannot be turned off.
    Always,
}

/// What a model costs and can read.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq)]
pub struct ModelInfo {
    /// USD per million input tokens.
    pub input: f64,
    /// USD per million cached input tokens (the input price when absent).
    #[serde(default)]
    pub cached_input: Option<f64>,
    /// USD per million output tokens.
    pub output: f64,
    /// Whether images may be sent to it.
    #[serde(default)]
    pub images: bool,
    /// USD per minute of audio, for transcription models billed by duration.
    #[serde(default)]
    pub per_minute: Option<f64>,
    /// How it thinks; an `AI_MODELS` entry without it keeps the default entry's.
    #[serde(default)]
    pub thinking: Option<Thinking>,
}

/// Every model the service knows.
#[derive(Clone, Debug)]
pub struct Models(HashMap<String, ModelInfo>);

/// List prices (USD per million tokens) when this was written; override with `AI_MODELS`.
/// Checked 2026-12-01 (OpenAI <https://developers.openai.com/api/docs/pricing>, Anthropic
/// <https://platform.claude.com/docs/en/about-claude/pricing>); models past their shutdown
/// (`assistant/lifecycle.rs`) stay so that older ledger rows and settings keep a price.
/// How Anthropic's models think: the "Thinking" column of
/// <https://platform.claude.com/docs/en/models/haiku-5-5/overview> (checked 2026-12-08);
/// the 4.x models think only when asked.
const DEFAULTS: &[(&str, f64, f64, f64, bool)] = &[
    ("gpt-6-luna", 0.10, 0.01, 0.50, true),
    ("gpt-6.1-terra", 1.00, 0.05, 5.00, true),
    ("gpt-6.1-sol", 2.00, 0.20, 10.00, true),
    ("gpt-4o-mini", 0.15, 0.075, 0.60, true),
    ("gpt-4o", 2.50, 1.25, 10.00, true),
    ("gpt-4.1", 2.00, 0.50, 8.00, true),
    ("gpt-4.1-mini", 0.40, 0.10, 1.60, true),
    ("gpt-4.1-nano", 0.10, 0.025, 0.40, true),
    ("gpt-5", 1.25, 0.125, 10.00, true),
    ("gpt-5-mini", 0.25, 0.025, 2.00, true),
    ("gpt-5-nano", 0.05, 0.005, 0.40, true),
    ("gpt-4o-mini-transcribe", 1.25, 1.25, 5.00, false),
    ("gpt-4o-transcribe", 2.50, 2.50, 10.00, false),
    // Haiku 5.5: the price of prompts up to 100,000 tokens (5x above; history is trimmed far
    // below that by AI_HISTORY_TOKENS).
    ("claude-haiku-5-5", 0.10, 0.01, 0.50, true),
    ("claude-sonnet-5-5", 2.00, 0.10, 10.00, true),
    ("claude-opus-5-5", 4.00, 0.40, 20.00, true),
    ("claude-3-5-haiku", 0.80, 0.08, 4.00, false),
    ("claude-haiku-4-5", 1.00, 0.10, 5.00, true),
    ("claude-3-7-sonnet", 3.00, 0.30, 15.00, true),
    ("claude-sonnet-4", 3.00, 0.30, 15.00, true),
    ("claude-opus-4", 15.00, 1.50, 75.00, true),
];

/// Models that think by default ([`Thinking`]); every other model is [`Thinking::None`].
const THINKING: &[(&str, Thinking)] = &[
    ("claude-haiku-5-5", Thinking::Adaptive),
    ("claude-sonnet-5-5", Thinking::Adaptive),
    ("claude-opus-5-5", Thinking::Always),
];

/// Transcription models billed by audio duration (USD per minute), checked 2026-12-08:
/// <https://developers.openai.com/api/docs/models/gpt-transcribe> ($0.0045 a minute; it
/// replaces `gpt-4o-mini-transcribe`, `gpt-4o-transcribe` and `whisper-1`, shut down on
/// 2027-02-26).
const PER_MINUTE: &[(&str, f64)] = &[("gpt-transcribe", 0.0045), ("whisper-1", 0.006)];

impl Models {
    /// The defaults, with `overrides` (the `AI_MODELS` JSON) on top. Invalid JSON is logged
    /// and ignored.
    pub fn new(overrides: Option<&str>) -> Self {
        let mut table: HashMap<String, ModelInfo> = DEFAULTS
            .iter()
            .map(|&(name, input, cached, output, images)| {
                let info = ModelInfo {
                    input,
                    cached_input: Some(cached),
                    output,
                    images,
                    per_minute: None,
                    thinking: THINKING.iter().find(|(n, _)| *n == name).map(|(_, t)| *t),
                };
                (name.to_string(), info)
            })
            .collect();
        for &(name, price) in PER_MINUTE {
            let info = ModelInfo {
                input: 0.0,
                cached_input: None,
                output: 0.0,
                images: false,
                per_minute: Some(price),
                thinking: None,
            };
            table.insert(name.to_string(), info);
        }
        if let Some(json) = overrides {
            match serde_json::from_str::<HashMap<String, ModelInfo>>(json) {
                Ok(extra) => {
                    for (name, mut info) in extra {
                        let default = table.get(&name).and_then(|d| d.thinking);
                        info.thinking = info.thinking.or(default);
                        table.insert(name, info);
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "AI_MODELS is not valid; using the defaults")
                }
            }
        }
        Self(table)
    }

    /// The entry for `model`: exact, else the longest listed prefix.
    pub fn get(&self, model: &str) -> Option<&ModelInfo> {
        self.0.get(model).or_else(|| {
            self.0
                .iter()
                .filter(|(name, _)| model.starts_with(name.as_str()))
                .max_by_key(|(name, _)| name.len())
                .map(|(_, info)| info)
        })
    }

    /// USD for `usage` of `model`: uncached input, cached input and output at their prices,
    /// and the audio seconds at the price per minute.
    pub fn cost(&self, model: &str, usage: &Usage) -> f64 {
        let Some(info) = self.get(model) else {
            tracing::warn!(
                model,
                "no price for this model in AI_MODELS; cost recorded as 0"
            );
            return 0.0;
        };
        let cached = usage.cached.min(usage.input);
        let uncached = usage.input - cached;
        let cost = (uncached as f64 * info.input
            + cached as f64 * info.cached_input.unwrap_or(info.input)
            + usage.output as f64 * info.output)
            / 1_000_000.0
            + usage.seconds as f64 / 60.0 * info.per_minute.unwrap_or(0.0);
        (cost * 1e6).round() / 1e6
    }

    pub fn accepts_images(&self, model: &str) -> bool {
        self.get(model).is_some_and(|info| info.images)
    }

    /// How `model` thinks ([`Thinking::None`] when unknown).
    pub fn thinking(&self, model: &str) -> Thinking {
        self.get(model)
            .and_then(|info| info.thinking)
            .unwrap_or(Thinking::None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn costs_use_the_longest_prefix_and_cached_prices() {
        let models = Models::new(None);
        let usage = Usage {
            input: 1_000_000,
            output: 100_000,
            cached: 400_000,
            seconds: 0,
        };
        // 600k at 0.15 + 400k at 0.075 + 100k at 0.60 = 0.09 + 0.03 + 0.06
        assert_eq!(models.cost("gpt-4o-mini-2024-07-18", &usage), 0.18);
        assert_eq!(models.cost("unknown-model", &usage), 0.0);
        assert!(models.accepts_images("gpt-4o"));
        assert!(!models.accepts_images("claude-3-5-haiku-latest"));
    }

    #[test]
    fn overrides_replace_and_add_models() {
        let models = Models::new(Some(
            r#"{"my-model": {"input": 1, "output": 2, "images": true}}"#,
        ));
        let usage = Usage {
            input: 1000,
            output: 1000,
            cached: 0,
            seconds: 0,
        };
        assert_eq!(models.cost("my-model", &usage), 0.003);
        assert!(models.accepts_images("my-model"));
        let broken = Models::new(Some("not json"));
        assert!(broken.get("gpt-4o").is_some());
        let thinking = Models::new(Some(
            r#"{"claude-x": {"input": 1, "output": 2, "thinking": "always"}}"#,
        ));
        assert_eq!(thinking.thinking("claude-x"), Thinking::Always);
    }

    #[test]
    fn the_transcription_model_is_priced_by_the_minute() {
        let models = Models::new(None);
        let usage = Usage {
            seconds: 40,
            ..Usage::default()
        };
        // 40 s at $0.0045 a minute.
        assert_eq!(models.cost("gpt-transcribe", &usage), 0.003);
        assert!(
            models.cost("gpt-4o-mini-transcribe", &usage) == 0.0,
            "billed by tokens"
        );
    }

    #[test]
    fn anthropic_5_5_models_think_and_older_ones_do_not() {
        let models = Models::new(None);
        assert_eq!(models.thinking("claude-haiku-5-5"), Thinking::Adaptive);
        assert_eq!(
            models.thinking("claude-haiku-5-5-20261007"),
            Thinking::Adaptive
        );
        assert_eq!(models.thinking("claude-opus-5-5"), Thinking::Always);
        assert_eq!(models.thinking("claude-haiku-4-5"), Thinking::None);
        assert_eq!(models.thinking("gpt-6-luna"), Thinking::None);
    }
}
