//! What the model is told: the org's system prompt with the contact's name, language, time
//! zone and the current local time, and the recent conversation within a token budget.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;

use super::parser::Lang;
use super::providers::ChatMessage;
use super::turn::{Direction, Turn};

const DEFAULT_PROMPT: &str = "You are a helpful assistant on WhatsApp. Answer briefly and \
    clearly, in the user's language. Use your tools to manage reminders, expenses and calendar \
    events.";

/// The system prompt for this turn.
pub fn system_prompt(turn: &Turn<'_>, now: DateTime<Utc>, tz: Tz, lang: Lang) -> String {
    let org = turn
        .settings
        .system_prompt
        .as_deref()
        .filter(|p| !p.trim().is_empty())
        .unwrap_or(DEFAULT_PROMPT);
    let local = now.with_timezone(&tz);
    let language = match lang {
        Lang::En => "English",
        Lang::Es => "Spanish",
    };
    let name = turn.contact.name.as_deref().unwrap_or("unknown");
    let locale = turn.contact.locale.as_deref().unwrap_or("unknown");
    format!(
        "{org}\n\n\
         The user's name is {name} (locale {locale}). Reply in {language} unless the user \
         writes in another language. This is WhatsApp: keep answers short, no markdown tables.\n\
         Now it is {} in the user's time zone {} (UTC{}). Give tools local times as \
         YYYY-MM-DDTHH:MM in that zone; never invent a time the user did not give: ask.",
        local.format("%A %Y-%m-%d %H:%M"),
        tz.name(),
        local.format("%:z"),
    )
}

/// The conversation before this message, newest kept first, within `token_budget`.
pub fn history(turn: &Turn<'_>, token_budget: usize) -> Vec<ChatMessage> {
    let mut spent = 0;
    let mut kept: Vec<ChatMessage> = turn
        .history
        .iter()
        .rev()
        .take_while(|item| {
            spent += estimate_tokens(&item.body);
            spent <= token_budget
        })
        .map(|item| match item.direction {
            Direction::Inbound => ChatMessage::User {
                text: item.body.clone(),
                image: None,
            },
            Direction::Outbound => ChatMessage::Assistant {
                text: Some(item.body.clone()),
                tool_calls: Vec::new(),
                thinking: Vec::new(),
            },
        })
        .collect();
    kept.reverse();
    kept
}

/// A rough token count (about four characters a token, plus the message's overhead).
pub fn estimate_tokens(text: &str) -> usize {
    text.chars().count() / 4 + 4
}
