//! The built-in flows' rich replies and the choices that come back.
//!
//! A reminder, once set, is confirmed with reply buttons ("OK" / "Cancel"); the pending
//! reminders are listed with a list whose rows cancel one. Each choice's id names what it
//! does ([`Pick`]: `reminder.cancel:<id>`, `reminder.keep:<id>`), so a tap is a certain
//! command whatever the button's title, with AI or without.

use serde_json::Value;
use uuid::Uuid;

use super::parser::Lang;
use super::replies;
use super::turn::ClaimedMessage;
use crate::domain::MessageKind;
use crate::send::Content;
use crate::whatsapp::rich::{fit, limits};
use crate::whatsapp::{Choice, Rich, Row};

/// The option a person chose: a reply button, a list row, or a template's quick-reply button.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Chosen {
    /// The button's or row's id; a quick-reply button's payload.
    pub id: String,
    pub title: String,
}

impl Chosen {
    /// The choice of an `interactive` (`button_reply`, `list_reply`) or `button` message.
    pub fn of(message: &ClaimedMessage) -> Option<Self> {
        let payload = &message.payload;
        let (id, title) = match message.kind {
            MessageKind::Interactive => {
                let reply = match payload["interactive"]["type"].as_str()? {
                    "button_reply" => &payload["interactive"]["button_reply"],
                    "list_reply" => &payload["interactive"]["list_reply"],
                    _ => return None,
                };
                (&reply["id"], &reply["title"])
            }
            MessageKind::Button => (&payload["button"]["payload"], &payload["button"]["text"]),
            _ => return None,
        };
        Some(Self {
            id: id.as_str()?.to_owned(),
            title: title.as_str().unwrap_or_default().to_owned(),
        })
    }

    /// The person's text for the model: the title, and the id it carries.
    pub fn for_model(&self) -> String {
        format!("{} (chosen option, id: {})", self.title, self.id)
    }
}

/// What a choice of the built-in flows does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pick {
    CancelReminder(Uuid),
    KeepReminder(Uuid),
}

impl Pick {
    const CANCEL: &'static str = "reminder.cancel:";
    const KEEP: &'static str = "reminder.keep:";

    /// The pick an id names, if it is one of ours.
    pub fn parse(id: &str) -> Option<Self> {
        let uuid = |rest: &str| Uuid::parse_str(rest).ok();
        if let Some(rest) = id.strip_prefix(Self::CANCEL) {
            return uuid(rest).map(Self::CancelReminder);
        }
        id.strip_prefix(Self::KEEP)
            .and_then(uuid)
            .map(Self::KeepReminder)
    }

    /// The id a choice carries.
    pub fn id(self) -> String {
        match self {
            Self::CancelReminder(id) => format!("{}{id}", Self::CANCEL),
            Self::KeepReminder(id) => format!("{}{id}", Self::KEEP),
        }
    }
}

/// The reply to a tool's successful output: reply buttons for a new reminder, a list for the
/// pending ones, else the text.
pub fn reply(lang: Lang, tool: &str, output: &Value) -> Content {
    let text = replies::confirm(lang, tool, output);
    let rich = match tool {
        "create_reminder" => reminder_buttons(lang, &output["reminder"], &text),
        "list_reminders" => reminder_list(lang, &output["reminders"], &text),
        _ => None,
    };
    rich.map(Content::Rich).unwrap_or(Content::Text(text))
}

fn reminder_buttons(lang: Lang, reminder: &Value, text: &str) -> Option<Rich> {
    let id = Uuid::parse_str(reminder["id"].as_str()?).ok()?;
    let (ok, cancel) = match lang {
        Lang::En => ("OK", "Cancel"),
        Lang::Es => ("Vale", "Cancelar"),
    };
    let choice = |pick: Pick, title: &str| Choice {
        id: pick.id(),
        title: title.to_owned(),
    };
    let body = fit(text, limits::BUTTONS_BODY);
    let buttons = vec![
        choice(Pick::KeepReminder(id), ok),
        choice(Pick::CancelReminder(id), cancel),
    ];
    Rich::buttons(body, buttons).ok()
}

fn reminder_list(lang: Lang, reminders: &Value, text: &str) -> Option<Rich> {
    let rows: Vec<Row> = reminders
        .as_array()?
        .iter()
        .take(limits::ROWS)
        .filter_map(|reminder| {
            let id = Uuid::parse_str(reminder["id"].as_str()?).ok()?;
            let title = reminder["text"].as_str()?;
            let number = reminder["number"].as_i64().unwrap_or_default();
            Some(Row {
                id: Pick::CancelReminder(id).id(),
                title: fit(&format!("{number}. {title}"), limits::ROW_TITLE),
                description: Some(fit(
                    &replies::local(lang, &reminder["due_local"]),
                    limits::ROW_DESCRIPTION,
                ))
                .filter(|d| !d.is_empty()),
            })
        })
        .collect();
    if rows.is_empty() {
        return None;
    }
    let button = match lang {
        Lang::En => "Cancel one",
        Lang::Es => "Cancelar uno",
    };
    Rich::list(fit(text, limits::LIST_BODY), button.to_owned(), rows).ok()
}

/// The answer to "OK" on a new reminder's buttons.
pub fn kept(lang: Lang) -> String {
    match lang {
        Lang::En => "👍 Keeping it.".to_owned(),
        Lang::Es => "👍 Lo mantengo.".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn picks_round_trip_through_their_ids() {
        let id = Uuid::new_v4();
        for pick in [Pick::CancelReminder(id), Pick::KeepReminder(id)] {
            assert_eq!(Pick::parse(&pick.id()), Some(pick));
        }
        assert_eq!(Pick::parse("confirm-button"), None);
        assert_eq!(Pick::parse("reminder.cancel:not-a-uuid"), None);
    }

    #[test]
    fn a_new_reminder_is_confirmed_with_buttons_and_the_pending_ones_listed() {
        let id = Uuid::new_v4();
        let created = json!({"reminder": {"id": id, "text": "call mom",
            "due_local": "2026-03-07T09:00", "recurrence": "none"}});
        let Content::Rich(Rich::Buttons { buttons, .. }) =
            reply(Lang::En, "create_reminder", &created)
        else {
            panic!("buttons expected");
        };
        assert_eq!(buttons[1].title, "Cancel");
        assert_eq!(Pick::parse(&buttons[1].id), Some(Pick::CancelReminder(id)));
        let long = "water the plants on the balcony and the terrace";
        let listed = json!({"reminders": [{"id": id, "number": 1, "text": long,
            "due_local": "2026-03-07T09:00", "recurrence": "none"}]});
        let Content::Rich(Rich::List { rows, .. }) = reply(Lang::En, "list_reminders", &listed)
        else {
            panic!("a list expected");
        };
        assert!(
            rows[0].title.starts_with("1. water")
                && rows[0].title.chars().count() <= limits::ROW_TITLE
        );
        let none = json!({"reminders": []});
        assert!(matches!(
            reply(Lang::En, "list_reminders", &none),
            Content::Text(_)
        ));
    }
}
