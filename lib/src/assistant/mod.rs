//! The assistant that answers a contact.
//!
//! 1. The message becomes text: a voice note is transcribed (OpenAI, when a key is set), an
//!    image is passed to models that accept images, other media get a polite answer.
//! 2. The built-in command parser answers every command it understands with certainty, with
//!    the same tools the model uses (no tokens spent). Without AI (no key, or the budget or
//!    the contact's daily cap spent) it answers everything: what a command lacks, or help.
//! 3. Otherwise the model answers, calling tools for at most `AI_MAX_TOOL_ROUNDS` rounds, the
//!    primary provider first and the fallback when it fails, within the turn's deadline and
//!    budget. Every attempt and tool run is written to the turn's [`Ledger`].

pub mod choices;
pub mod context;
pub mod ledger;
pub mod lifecycle;
pub mod models;
pub mod parser;
pub mod providers;
pub mod replies;
pub mod time;
pub mod tools;
pub mod turn;

use std::time::Instant;

use base64::Engine;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use crate::configuration::{AiSettings, Settings};
use crate::domain::{Currency, MessageKind};
use crate::send::Content;
use crate::supabase::{DbError, Postgrest};
use crate::whatsapp::WhatsApp;
use choices::{Chosen, Pick};
use ledger::Ledger;
use models::Models;
use parser::{Command, Lang, Parsed, Unclear};
use providers::{
    Candidate, ChatMessage, ChatRequest, Image, Policy, Provider, ProviderError, ProviderKind,
    ToolResult,
};
use tools::{GoogleCalendar, Scope, ToolError};
pub use turn::Turn;

/// Tool calls run per round; more are answered with an error.
const MAX_CALLS_PER_ROUND: usize = 5;
/// Larger images are not sent to the model.
const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
/// The model of settings that name none (also the column default of
/// `assistant_settings.model`), and the one that takes a retired model's place.
pub const DEFAULT_MODEL: &str = "gpt-6-luna";
/// The same for `fallback_model`.
pub const DEFAULT_FALLBACK_MODEL: &str = "claude-haiku-5-5";

/// The assistant of this process: providers, model table and Google client, built once.
pub struct Assistant {
    openai: Option<Provider>,
    anthropic: Option<Provider>,
    models: Models,
    lifecycle: lifecycle::Lifecycle,
    settings: AiSettings,
    google: Option<GoogleCalendar>,
    whatsapp: WhatsApp,
}

/// The reply (a text or a rich reply), and a voice note's transcript (stored as the inbound
/// message's text).
#[derive(Debug)]
pub struct Answer {
    pub reply: Content,
    pub transcript: Option<String>,
}

/// Why no reply could be made (the message is dead-lettered and retried).
#[derive(Debug, thiserror::Error)]
pub enum AssistantError {
    #[error("no AI provider answered: {0}")]
    Providers(#[from] ProviderError),
    #[error(transparent)]
    Database(#[from] DbError),
}

/// What the message says, once read.
enum Input {
    Text {
        text: String,
        image: Option<Image>,
        transcript: Option<String>,
    },
    /// Nothing to think about: this is the answer.
    Reply(String),
}

impl Assistant {
    pub fn new(http: reqwest::Client, settings: &Settings, whatsapp: WhatsApp) -> Self {
        let provider = |kind, config: &Option<_>| {
            config
                .as_ref()
                .map(|config| Provider::new(kind, http.clone(), config))
        };
        Self {
            openai: provider(ProviderKind::OpenAi, &settings.openai),
            anthropic: provider(ProviderKind::Anthropic, &settings.anthropic),
            models: Models::new(settings.ai.models.as_deref()),
            lifecycle: lifecycle::Lifecycle::default(),
            settings: settings.ai.clone(),
            google: settings
                .google
                .clone()
                .map(|google| GoogleCalendar::new(http.clone(), google)),
            whatsapp,
        }
    }

    /// Whether any AI provider is configured.
    pub fn has_ai(&self) -> bool {
        self.openai.is_some() || self.anthropic.is_some()
    }

    /// The shutdown dates this process knows (published, and OpenAI's last model list).
    pub fn lifecycle(&self) -> &lifecycle::Lifecycle {
        &self.lifecycle
    }

    /// The models the service itself is configured with: the defaults of settings that name
    /// none, and the transcription model.
    pub fn configured_models(&self) -> [&str; 3] {
        [
            DEFAULT_MODEL,
            DEFAULT_FALLBACK_MODEL,
            self.settings.transcribe_model.as_str(),
        ]
    }

    /// How many earlier messages to read with a claim.
    pub fn history_messages(&self) -> usize {
        self.settings.history_messages
    }

    /// The reply to `turn`. Everything spent and done is added to `ledger`, also on failure.
    pub async fn answer(
        &self,
        db: &Postgrest,
        turn: &Turn<'_>,
        ledger: &mut Ledger,
    ) -> Result<Answer, AssistantError> {
        let now = Utc::now();
        let tz = time::zone(&turn.contact.timezone);
        // An absurd AI_TURN_DEADLINE_MS must not overflow the clock: an hour at most.
        let deadline = Instant::now()
            + self
                .settings
                .turn_deadline
                .min(std::time::Duration::from_secs(3600));
        let ai = turn.ai_allowed && self.has_ai();
        let enabled = turn.settings.enabled_tools.clone().unwrap_or_else(|| {
            tools::all_specs()
                .iter()
                .map(|t| t.name.to_string())
                .collect()
        });
        let scope = Scope {
            db,
            google: self.google.as_ref(),
            org_id: turn.message.org_id,
            contact_id: turn.contact.id,
            tz,
            now,
            currency: Currency::for_locale(turn.contact.locale.as_deref()),
            enabled: &enabled,
            turn_key: turn.key,
            reply_to: turn.message.wamid.as_ref(),
        };
        let chosen = Chosen::of(turn.message);
        let lang = turn.lang();
        if let Some(pick) = chosen.as_ref().and_then(|c| Pick::parse(&c.id)) {
            let reply = self.run_pick(&scope, pick, lang, ledger).await?;
            return Ok(Answer {
                reply,
                transcript: None,
            });
        }
        let (text, image, transcript) = match self.read(turn, ai, ledger, deadline).await {
            Input::Reply(text) => {
                return Ok(Answer {
                    reply: Content::Text(text),
                    transcript: None,
                })
            }
            Input::Text {
                text,
                image,
                transcript,
            } => (text, image, transcript),
        };
        let answer = |reply| Answer {
            reply,
            transcript: transcript.clone(),
        };
        let text_answer = |text| answer(Content::Text(text));
        let mut lang = lang;
        if image.is_none() {
            let context = parser::Context {
                now,
                tz,
                currency: scope.currency.clone(),
            };
            let parsed = parser::parse(&text, &context);
            lang = parsed.lang.unwrap_or(lang);
            match parsed.parsed {
                Parsed::Command(command) => {
                    return Ok(answer(
                        self.run_command(&scope, command, lang, ledger).await?,
                    ))
                }
                // Which one: the pending reminders, as a list to pick from.
                Parsed::Unclear(Unclear::CancelNeedsNumber) if !ai => {
                    let list = Command::ListReminders;
                    return Ok(answer(self.run_command(&scope, list, lang, ledger).await?));
                }
                Parsed::Unclear(what) if !ai => {
                    return Ok(text_answer(replies::unclear(lang, what)))
                }
                Parsed::NotACommand if !ai => {
                    return Ok(text_answer(replies::not_understood(lang, !turn.ai_allowed)))
                }
                _ => {}
            }
        }
        // A choice that is not one of the built-in flows': the model reads its id too.
        let text = match &chosen {
            Some(chosen) => chosen.for_model(),
            None => text,
        };
        let reply = self
            .converse(&scope, turn, lang, (text, image), ledger, deadline)
            .await?;
        Ok(answer(reply))
    }

    /// The message as text (a voice note transcribed, an image attached), or the answer when
    /// there is nothing the assistant can read.
    async fn read(
        &self,
        turn: &Turn<'_>,
        ai: bool,
        ledger: &mut Ledger,
        deadline: Instant,
    ) -> Input {
        let lang = turn.lang();
        let body = turn.message.body.clone().filter(|b| !b.trim().is_empty());
        let text = |text| Input::Text {
            text,
            image: None,
            transcript: None,
        };
        match (turn.message.kind, body) {
            (MessageKind::Text | MessageKind::Interactive | MessageKind::Button, Some(body)) => {
                text(body)
            }
            (MessageKind::Audio, _) => self.transcribe(turn, ai, ledger, deadline).await,
            (MessageKind::Image, caption) if ai => match self.image(turn).await {
                Some(image) => Input::Text {
                    text: caption.unwrap_or_else(|| "(image)".into()),
                    image: Some(image),
                    transcript: None,
                },
                None => caption
                    .map(text)
                    .unwrap_or(Input::Reply(replies::media_unsupported(lang))),
            },
            // Captions (and a document's name) are read without AI too.
            (MessageKind::Image | MessageKind::Video | MessageKind::Document, Some(body)) => {
                text(body)
            }
            (_, Some(body)) if ai => text(body),
            _ => Input::Reply(replies::media_unsupported(lang)),
        }
    }

    /// A voice note, transcribed by OpenAI (when configured and the budget allows).
    async fn transcribe(
        &self,
        turn: &Turn<'_>,
        ai: bool,
        ledger: &mut Ledger,
        deadline: Instant,
    ) -> Input {
        let lang = turn.lang();
        let Some(openai) = self.openai.as_ref().filter(|_| ai) else {
            return Input::Reply(replies::audio_unsupported(lang));
        };
        let audio = &turn.message.payload["audio"];
        let Some(media_id) = audio["id"].as_str() else {
            return Input::Reply(replies::audio_failed(lang));
        };
        let media = match self.whatsapp.download_media(media_id).await {
            Ok(media) => media,
            Err(error) => {
                tracing::warn!(error = %error, "voice note download failed");
                return Input::Reply(replies::audio_failed(lang));
            }
        };
        let mime = media
            .mime_type
            .or_else(|| audio["mime_type"].as_str().map(str::to_string))
            .unwrap_or_else(|| "audio/ogg".into());
        let model = self.settings.transcribe_model.as_str();
        let timeout = self
            .settings
            .request_timeout
            .min(deadline.saturating_duration_since(Instant::now()));
        let started = Instant::now();
        let result = openai.transcribe(model, media.bytes, &mime, timeout).await;
        let usage = result.as_ref().map(|t| t.usage);
        providers::record(
            ledger,
            (openai.kind, model),
            &self.models,
            usage,
            started.elapsed(),
        );
        match result {
            Ok(transcript) if !transcript.text.trim().is_empty() => Input::Text {
                text: transcript.text.clone(),
                image: None,
                transcript: Some(transcript.text),
            },
            Ok(_) => Input::Reply(replies::audio_failed(lang)),
            Err(error) => {
                tracing::warn!(error = %error, "transcription failed");
                Input::Reply(replies::audio_failed(lang))
            }
        }
    }

    /// The message's image, when a candidate model accepts images and it can be downloaded.
    async fn image(&self, turn: &Turn<'_>) -> Option<Image> {
        let candidates = self.candidates(turn);
        if !candidates
            .iter()
            .any(|c| self.models.accepts_images(c.model))
        {
            return None;
        }
        let media_id = turn.message.payload["image"]["id"].as_str()?;
        let media = match self.whatsapp.download_media(media_id).await {
            Ok(media) if media.bytes.len() <= MAX_IMAGE_BYTES => media,
            Ok(_) => return None,
            Err(error) => {
                tracing::warn!(error = %error, "image download failed");
                return None;
            }
        };
        Some(Image {
            mime_type: media.mime_type.unwrap_or_else(|| "image/jpeg".into()),
            base64: base64::engine::general_purpose::STANDARD.encode(&media.bytes),
        })
    }

    /// Runs a parsed command with its tool and tells the outcome (with choices where the
    /// flow has them: [`choices::reply`]).
    async fn run_command(
        &self,
        scope: &Scope<'_>,
        command: Command,
        lang: Lang,
        ledger: &mut Ledger,
    ) -> Result<Content, AssistantError> {
        let Some((tool, input)) = tool_call(command) else {
            return Ok(Content::Text(replies::help(lang)));
        };
        self.run_tool(scope, tool, &input, lang, ledger).await
    }

    /// Carries out a tapped choice of the built-in flows, with the same tools.
    async fn run_pick(
        &self,
        scope: &Scope<'_>,
        pick: Pick,
        lang: Lang,
        ledger: &mut Ledger,
    ) -> Result<Content, AssistantError> {
        match pick {
            Pick::CancelReminder(id) => {
                let input = json!({ "id": id });
                self.run_tool(scope, "cancel_reminder", &input, lang, ledger)
                    .await
            }
            Pick::KeepReminder(_) => Ok(Content::Text(choices::kept(lang))),
        }
    }

    async fn run_tool(
        &self,
        scope: &Scope<'_>,
        tool: &str,
        input: &Value,
        lang: Lang,
        ledger: &mut Ledger,
    ) -> Result<Content, AssistantError> {
        match tools::execute(scope, ledger, None, tool, input).await {
            Ok(output) => Ok(choices::reply(lang, tool, &output)),
            Err(ToolError::Database(error)) => Err(error.into()),
            Err(error) => Ok(Content::Text(replies::tool_failed(lang, &error))),
        }
    }

    /// The model's answer, with tool rounds; a reply tool's rich reply ends the turn
    /// ([`tools::reply`]).
    async fn converse(
        &self,
        scope: &Scope<'_>,
        turn: &Turn<'_>,
        lang: Lang,
        (text, image): (String, Option<Image>),
        ledger: &mut Ledger,
        deadline: Instant,
    ) -> Result<Content, AssistantError> {
        let mut messages = context::history(turn, self.settings.history_tokens);
        messages.push(ChatMessage::User { text, image });
        let mut request = ChatRequest {
            system: context::system_prompt(turn, scope.now, scope.tz, lang),
            messages,
            tools: tools::specs(scope.enabled),
            max_output_tokens: self.settings.max_output_tokens,
            thinking_tokens: self.settings.thinking_tokens,
        };
        let candidates = self.candidates(turn);
        let policy = Policy {
            request_timeout: self.settings.request_timeout,
            max_retries: self.settings.max_retries,
            retry_base: self.settings.retry_base,
            deadline,
        };
        let allowed = |spent: u64| turn.budget.allows(spent);
        for round in 0..=self.settings.max_tool_rounds {
            let answered = match providers::complete(
                &candidates,
                &request,
                &policy,
                &self.models,
                ledger,
                &allowed,
            )
            .await
            {
                Ok(answered) => answered,
                Err(error) => return self.without_model(lang, ledger, error).map(Content::Text),
            };
            let completion = answered.completion;
            if completion.tool_calls.is_empty() || round == self.settings.max_tool_rounds {
                if !completion.tool_calls.is_empty() {
                    tracing::warn!(
                        rounds = round,
                        "tool rounds exhausted; answering with what was done"
                    );
                }
                return Ok(Content::Text(
                    completion
                        .text
                        .filter(|_| completion.tool_calls.is_empty())
                        .or_else(|| replies::summary(lang, ledger))
                        .unwrap_or_else(|| replies::sorry(lang)),
                ));
            }
            let mut results = Vec::new();
            let mut rich = None;
            for (i, call) in completion.tool_calls.iter().enumerate() {
                let outcome = if i < MAX_CALLS_PER_ROUND {
                    tools::execute(
                        scope,
                        ledger,
                        Some(answered.request_id),
                        &call.name,
                        &call.arguments,
                    )
                    .await
                    .map_err(|e| e.to_string())
                } else {
                    Err("too many tool calls in one round".to_string())
                };
                if let Ok(output) = &outcome {
                    rich = tools::reply::chosen(&call.name, output).or(rich);
                }
                results.push(ToolResult {
                    call_id: call.id.clone(),
                    is_error: outcome.is_err(),
                    content: match outcome {
                        Ok(output) => output.to_string(),
                        Err(error) => json!({"error": error}).to_string(),
                    },
                });
            }
            if let Some(rich) = rich {
                return Ok(Content::Rich(rich));
            }
            request.messages.push(ChatMessage::Assistant {
                text: completion.text,
                tool_calls: completion.tool_calls,
                thinking: completion.thinking,
            });
            request.messages.push(ChatMessage::ToolResults(results));
        }
        Ok(Content::Text(replies::sorry(lang)))
    }

    /// When no model answered: what the tools already did, the parser's help when the budget
    /// ran out, or the failure (the message is retried later).
    fn without_model(
        &self,
        lang: Lang,
        ledger: &Ledger,
        error: ProviderError,
    ) -> Result<String, AssistantError> {
        if let Some(summary) = replies::summary(lang, ledger) {
            return Ok(summary);
        }
        match error {
            ProviderError::Budget => Ok(replies::not_understood(lang, true)),
            error => Err(error.into()),
        }
    }

    /// The org's model then fallback model, each on the provider its name belongs to
    /// (`claude-*` on Anthropic, anything else on OpenAI), skipping unconfigured providers.
    /// A model past its shutdown date is skipped (requests to it fail): the other one answers,
    /// and the service's defaults (when not retired themselves) fill the place it leaves.
    /// While the org's `ai_latency` alert is open, the fallback comes first.
    fn candidates<'a>(&'a self, turn: &'a Turn<'_>) -> Vec<Candidate<'a>> {
        let settings = turn.settings;
        let chosen = [
            settings.model.as_deref().unwrap_or(DEFAULT_MODEL),
            settings
                .fallback_model
                .as_deref()
                .unwrap_or(DEFAULT_FALLBACK_MODEL),
        ];
        let today = Utc::now().date_naive();
        let retired = |model: &str| {
            matches!(
                self.lifecycle.stage(model, today),
                lifecycle::Stage::Retired(_)
            )
        };
        let mut models: Vec<&'a str> = Vec::with_capacity(2);
        let mut skipped = false;
        for model in chosen {
            if retired(model) {
                tracing::warn!(model, "model past its shutdown date skipped");
                skipped = true;
            } else {
                models.push(model);
            }
        }
        if skipped {
            for model in [DEFAULT_MODEL, DEFAULT_FALLBACK_MODEL] {
                if models.len() < chosen.len() && !models.contains(&model) && !retired(model) {
                    models.push(model);
                }
            }
        }
        if settings.fallback_first {
            models.reverse();
        }
        models
            .into_iter()
            .filter_map(|model| {
                let provider = if model.starts_with("claude") {
                    self.anthropic.as_ref()
                } else {
                    self.openai.as_ref()
                };
                Some(Candidate {
                    provider: provider?,
                    model,
                })
            })
            .collect()
    }
}

/// The tool and input that carry out a parsed command (`None` for help).
fn tool_call(command: Command) -> Option<(&'static str, Value)> {
    Some(match command {
        Command::CreateReminder {
            text,
            due,
            recurrence,
        } => (
            "create_reminder",
            json!({"text": text, "due": rfc3339(due), "recurrence": recurrence}),
        ),
        Command::ListReminders => ("list_reminders", json!({})),
        Command::CancelReminder { number } => ("cancel_reminder", json!({"number": number})),
        Command::LogExpense {
            amount,
            currency,
            category,
            note,
        } => {
            let mut input = json!({
                "amount": amount.as_f64(), "currency": currency, "category": category,
            });
            if let Some(note) = note {
                input["note"] = json!(note.chars().take(200).collect::<String>());
            }
            ("log_expense", input)
        }
        Command::ExpenseSummary { period } => ("expense_summary", json!({"period": period.name()})),
        Command::Help => return None,
    })
}

fn rfc3339(instant: DateTime<Utc>) -> String {
    instant.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
