//! Rich replies: reply buttons, a list, a reaction, checked against Meta's limits before they
//! are built (a value of [`Rich`] is always sendable) and before they are sent again from
//! storage.
//!
//! Shapes and limits, as Meta's Cloud API reference pages give them: "Interactive reply
//! buttons messages" (`interactive.type=button`, 1 to 3 `action.buttons[].reply{id,title}`,
//! titles at most 20 characters and unique, ids at most 256, body at most 1024), "Interactive
//! list messages" (`interactive.type=list`, `action.button` at most 20, at most 10 rows in all,
//! row titles at most 24, descriptions at most 72, ids at most 200 and unique, section titles
//! at most 24, body at most 4096) and "Reaction messages" (`type=reaction`,
//! `{message_id, emoji}`).

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::domain::{MessageKind, Wamid};

/// Meta's limits, in characters (counts).
pub mod limits {
    pub const BUTTONS: usize = 3;
    pub const BUTTON_TITLE: usize = 20;
    pub const BUTTON_ID: usize = 256;
    pub const BUTTONS_BODY: usize = 1024;
    pub const ROWS: usize = 10;
    pub const ROW_TITLE: usize = 24;
    pub const ROW_DESCRIPTION: usize = 72;
    pub const ROW_ID: usize = 200;
    pub const LIST_BUTTON: usize = 20;
    pub const LIST_BODY: usize = 4096;
    pub const SECTION_TITLE: usize = 24;
    /// An emoji is one grapheme, but a family or flag is several code points.
    pub const EMOJI: usize = 16;
}

/// A reply button.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Choice {
    pub id: String,
    pub title: String,
}

/// A row of a list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Row {
    pub id: String,
    pub title: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// A rich reply. Built only through [`Rich::buttons`], [`Rich::list`], [`Rich::reaction`] or
/// [`Rich::from_stored`], which check Meta's limits.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Rich {
    Buttons {
        body: String,
        buttons: Vec<Choice>,
    },
    List {
        body: String,
        button: String,
        /// One section, titled `button` (Meta needs a title only when there are several).
        rows: Vec<Row>,
    },
    Reaction {
        message_id: String,
        emoji: String,
    },
}

/// Why a rich reply breaks Meta's limits (a sentence the model can act on).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct RichError(pub String);

fn check(what: &str, value: &str, max: usize) -> Result<(), RichError> {
    let length = value.chars().count();
    if value.trim().is_empty() {
        return Err(RichError(format!("{what} is empty")));
    }
    if length > max {
        return Err(RichError(format!(
            "{what} has {length} characters; at most {max}"
        )));
    }
    if value != value.trim() && what.ends_with("id") {
        return Err(RichError(format!("{what} has leading or trailing spaces")));
    }
    Ok(())
}

fn unique<'a>(what: &str, values: impl Iterator<Item = &'a str>) -> Result<(), RichError> {
    let mut seen = std::collections::HashSet::new();
    for value in values {
        if !seen.insert(value) {
            return Err(RichError(format!("{what} {value:?} is repeated")));
        }
    }
    Ok(())
}

impl Rich {
    /// Reply buttons under `body`.
    pub fn buttons(body: String, buttons: Vec<Choice>) -> Result<Self, RichError> {
        let rich = Self::Buttons { body, buttons };
        rich.validate()?;
        Ok(rich)
    }

    /// A list under `body`, opened with `button`.
    pub fn list(body: String, button: String, rows: Vec<Row>) -> Result<Self, RichError> {
        let rich = Self::List { body, button, rows };
        rich.validate()?;
        Ok(rich)
    }

    /// A reaction with `emoji` to the message `message_id`.
    pub fn reaction(message_id: &Wamid, emoji: String) -> Result<Self, RichError> {
        let rich = Self::Reaction {
            message_id: message_id.as_str().to_owned(),
            emoji,
        };
        rich.validate()?;
        Ok(rich)
    }

    /// A rich reply as stored (`messages.payload.rich`), checked again.
    pub fn from_stored(stored: &Value) -> Result<Self, RichError> {
        let rich = Self::deserialize(stored)
            .map_err(|error| RichError(format!("not a rich reply: {error}")))?;
        rich.validate()?;
        Ok(rich)
    }

    /// Whether Meta would take it.
    pub fn validate(&self) -> Result<(), RichError> {
        use limits::*;
        match self {
            Self::Buttons { body, buttons } => {
                check("the body", body, BUTTONS_BODY)?;
                if buttons.is_empty() || buttons.len() > BUTTONS {
                    return Err(RichError(format!("1 to {BUTTONS} buttons")));
                }
                for button in buttons {
                    check("a button title", &button.title, BUTTON_TITLE)?;
                    check("a button id", &button.id, BUTTON_ID)?;
                }
                unique("the button title", buttons.iter().map(|b| b.title.as_str()))?;
                unique("the button id", buttons.iter().map(|b| b.id.as_str()))
            }
            Self::List { body, button, rows } => {
                check("the body", body, LIST_BODY)?;
                check("the list button", button, LIST_BUTTON.min(SECTION_TITLE))?;
                if rows.is_empty() || rows.len() > ROWS {
                    return Err(RichError(format!("1 to {ROWS} rows")));
                }
                for row in rows {
                    check("a row title", &row.title, ROW_TITLE)?;
                    check("a row id", &row.id, ROW_ID)?;
                    if let Some(description) = &row.description {
                        check("a row description", description, ROW_DESCRIPTION)?;
                    }
                }
                unique("the row id", rows.iter().map(|r| r.id.as_str()))
            }
            Self::Reaction { message_id, emoji } => {
                Wamid::parse(message_id)
                    .ok_or_else(|| RichError("the reacted message id is invalid".into()))?;
                check("the emoji", emoji, EMOJI)?;
                if emoji.chars().any(|c| c.is_alphanumeric()) {
                    return Err(RichError("the emoji must be an emoji".into()));
                }
                Ok(())
            }
        }
    }

    /// `interactive` or `reaction`: the `messages.type` it is recorded as.
    pub fn kind(&self) -> MessageKind {
        match self {
            Self::Buttons { .. } | Self::List { .. } => MessageKind::Interactive,
            Self::Reaction { .. } => MessageKind::Reaction,
        }
    }

    /// What a person reads: the body and the choices as text (`messages.body`, and the
    /// template's parameter outside the 24 h window).
    pub fn readable(&self) -> String {
        match self {
            Self::Buttons { body, buttons } => {
                let titles: Vec<&str> = buttons.iter().map(|b| b.title.as_str()).collect();
                format!("{body}\n[{}]", titles.join(" | "))
            }
            Self::List { body, rows, .. } => {
                let mut lines = vec![body.clone()];
                lines.extend(rows.iter().map(|row| match &row.description {
                    Some(description) => format!("• {} — {description}", row.title),
                    None => format!("• {}", row.title),
                }));
                lines.join("\n")
            }
            Self::Reaction { emoji, .. } => emoji.clone(),
        }
    }

    /// The message's `type` and its object, for `POST /{phone-number-id}/messages`.
    pub fn graph(&self) -> (&'static str, Value) {
        match self {
            Self::Buttons { body, buttons } => {
                let buttons: Vec<Value> = buttons
                    .iter()
                    .map(|b| json!({"type": "reply", "reply": {"id": b.id, "title": b.title}}))
                    .collect();
                let interactive = json!({
                    "type": "button",
                    "body": {"text": body},
                    "action": {"buttons": buttons},
                });
                ("interactive", interactive)
            }
            Self::List { body, button, rows } => {
                let interactive = json!({
                    "type": "list",
                    "body": {"text": body},
                    "action": {
                        "button": button,
                        "sections": [{"title": button, "rows": rows}],
                    },
                });
                ("interactive", interactive)
            }
            Self::Reaction { message_id, emoji } => (
                "reaction",
                json!({"message_id": message_id, "emoji": emoji}),
            ),
        }
    }
}

/// `text` cut to at most `max` characters (with an ellipsis when cut), for titles made from
/// free text.
pub fn fit(text: &str, max: usize) -> String {
    let text = text.trim();
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(max.saturating_sub(1)).collect();
    cut.truncate(cut.trim_end().len());
    cut.push('…');
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(id: &str, title: &str) -> Choice {
        Choice {
            id: id.into(),
            title: title.into(),
        }
    }

    #[test]
    fn meta_limits_are_checked_before_anything_is_built() {
        let ok = Rich::buttons("Sure?".into(), vec![choice("a", "Yes"), choice("b", "No")]);
        assert!(ok.is_ok());
        let four = (0..4)
            .map(|i| choice(&i.to_string(), &i.to_string()))
            .collect();
        assert!(Rich::buttons("x".into(), four).is_err());
        assert!(Rich::buttons("x".into(), vec![]).is_err());
        let long = "x".repeat(21);
        assert!(Rich::buttons("x".into(), vec![choice("a", &long)]).is_err());
        assert!(Rich::buttons("x".into(), vec![choice(&"i".repeat(257), "t")]).is_err());
        assert!(Rich::buttons("x".into(), vec![choice("a", "t"), choice("b", "t")]).is_err());
        assert!(Rich::buttons("x".repeat(1025), vec![choice("a", "t")]).is_err());
        let row = |id: &str, title: &str| Row {
            id: id.into(),
            title: title.into(),
            description: None,
        };
        let eleven = (0..11).map(|i| row(&i.to_string(), "t")).collect();
        assert!(Rich::list("x".into(), "Pick".into(), eleven).is_err());
        assert!(Rich::list("x".into(), "Pick".into(), vec![row("a", &"t".repeat(25))]).is_err());
        assert!(Rich::list("x".into(), "Pick".into(), vec![row("a", &"t".repeat(24))]).is_ok());
        let described = Row {
            description: Some("d".repeat(73)),
            ..row("a", "t")
        };
        assert!(Rich::list("x".into(), "Pick".into(), vec![described]).is_err());
        let wamid = Wamid::parse("wamid.X").expect("wamid");
        assert!(Rich::reaction(&wamid, "👍".into()).is_ok());
        assert!(Rich::reaction(&wamid, "ok".into()).is_err());
        assert!(Rich::reaction(&wamid, String::new()).is_err());
    }

    #[test]
    fn a_stored_rich_reply_is_checked_again() {
        let rich = Rich::buttons("Sure?".into(), vec![choice("a", "Yes")]).expect("valid");
        let stored = serde_json::to_value(&rich).expect("json");
        assert_eq!(Rich::from_stored(&stored), Ok(rich));
        let broken = json!({"kind": "buttons", "body": "x", "buttons": []});
        assert!(Rich::from_stored(&broken).is_err());
    }

    /// The request as Meta's reference pages show it (`graph_responses.json`), without the
    /// optional header and footer this project does not send.
    fn documented(key: &str) -> Value {
        let all: Value = serde_json::from_str(include_str!(
            "../../../tests/fixtures/whatsapp/graph_responses.json"
        ))
        .expect("fixture");
        let mut request = all[key].clone();
        let interactive = request["interactive"].as_object_mut().expect("interactive");
        interactive.remove("header");
        interactive.remove("footer");
        request
    }

    fn sent(rich: Rich) -> Value {
        let to = crate::domain::Address::Phone(
            crate::domain::WaId::parse("15550001111").expect("wa_id"),
        );
        let bodies = super::super::graph::request_bodies(
            &to,
            &super::super::Outgoing::Rich(rich),
            uuid::Uuid::nil(),
        );
        let mut body = bodies.into_iter().next().expect("one body");
        let object = body.as_object_mut().expect("object");
        object.remove("biz_opaque_callback_data");
        object.insert("to".into(), json!("+15550001111"));
        body
    }

    #[test]
    fn requests_are_shaped_as_meta_documents_them() {
        let buttons = vec![
            choice("confirm-button", "Confirm"),
            choice("change-button", "Change"),
        ];
        let body = "Pay the electricity bill on Friday at 9:00?".to_string();
        let rich = Rich::buttons(body, buttons).expect("valid");
        assert_eq!(sent(rich), documented("send_interactive_buttons_request"));

        let row = |id: &str, title: &str, description: &str| Row {
            id: id.into(),
            title: title.into(),
            description: Some(description.into()),
        };
        let rows = vec![
            row("remind_in_1h", "In 1 hour", "Remind me in an hour"),
            row("remind_tonight", "Tonight 20:00", "Remind me this evening"),
        ];
        let body = "When should I remind you again?".to_string();
        let rich = Rich::list(body, "Choose a time".into(), rows).expect("valid");
        let mut expected = documented("send_interactive_list_request");
        // One section (Meta needs section titles only when there are several): the first.
        let sections = &mut expected["interactive"]["action"]["sections"];
        *sections = json!([{"title": "Choose a time", "rows": sections[0]["rows"].clone()}]);
        assert_eq!(sent(rich), expected);

        let wamid = Wamid::parse("wamid.HBgLM").expect("wamid");
        let reaction = sent(Rich::reaction(&wamid, "😀".into()).expect("valid"));
        assert_eq!(reaction["type"], "reaction");
        assert_eq!(
            reaction["reaction"],
            json!({"message_id": "wamid.HBgLM", "emoji": "😀"})
        );
    }

    #[test]
    fn titles_made_from_free_text_fit() {
        assert_eq!(fit("call mom", 24), "call mom");
        let fitted = fit("call the plumber about the kitchen sink", 24);
        assert!(fitted.chars().count() <= 24, "{fitted}");
        assert!(fitted.ends_with('…'));
    }
}
