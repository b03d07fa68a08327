//! `reply_with_buttons`, `reply_with_list`, `react`: the model chooses its reply's form. They
//! act on nothing: their input, checked against Meta's limits ([`Rich`]), becomes the turn's
//! reply (`{"reply": …}`, read back by [`chosen`]). A bad argument is the call's error, told
//! to the model, never a send. Always offered (they are how to answer, not what to do).

use serde_json::{json, Value};

use super::{object_schema, Scope, ToolError, ToolSpec};
use crate::whatsapp::rich::limits;
use crate::whatsapp::{Choice, Rich, Row};

pub const BUTTONS: &str = "reply_with_buttons";
pub const LIST: &str = "reply_with_list";
pub const REACT: &str = "react";

/// Whether `name` is one of these tools.
pub fn is_reply_tool(name: &str) -> bool {
    [BUTTONS, LIST, REACT].contains(&name)
}

fn choice_schema(id_max: usize, title_max: usize, described: bool) -> Value {
    let mut properties = json!({
        "id": {"type": "string", "minLength": 1, "maxLength": id_max,
               "description": "What comes back when the user picks it."},
        "title": {"type": "string", "minLength": 1, "maxLength": title_max},
    });
    if described {
        properties["description"] = json!({"type": "string", "minLength": 1,
                                           "maxLength": limits::ROW_DESCRIPTION});
    }
    object_schema(properties, &["id", "title"])
}

pub fn buttons_spec() -> ToolSpec {
    ToolSpec {
        name: BUTTONS,
        description: "Answer with a message and up to 3 reply buttons the user taps (short \
                      choices: confirm/cancel, yes/no). The tapped button comes back as the \
                      user's next message with its id. Ends your turn: this is your reply.",
        parameters: object_schema(
            json!({
                "body": {"type": "string", "minLength": 1, "maxLength": limits::BUTTONS_BODY},
                "buttons": {"type": "array", "minItems": 1, "maxItems": limits::BUTTONS,
                            "items": choice_schema(limits::BUTTON_ID, limits::BUTTON_TITLE, false)},
            }),
            &["body", "buttons"],
        ),
    }
}

pub fn list_spec() -> ToolSpec {
    ToolSpec {
        name: LIST,
        description: "Answer with a message and a list of up to 10 options the user opens with \
                      a button and picks one of. The picked row comes back as the user's next \
                      message with its id. Ends your turn: this is your reply.",
        parameters: object_schema(
            json!({
                "body": {"type": "string", "minLength": 1, "maxLength": limits::LIST_BODY},
                "button": {"type": "string", "minLength": 1, "maxLength": limits::LIST_BUTTON,
                           "description": "The label of the button that opens the list."},
                "rows": {"type": "array", "minItems": 1, "maxItems": limits::ROWS,
                         "items": choice_schema(limits::ROW_ID, limits::ROW_TITLE, true)},
            }),
            &["body", "button", "rows"],
        ),
    }
}

pub fn react_spec() -> ToolSpec {
    ToolSpec {
        name: REACT,
        description: "Answer the user's last message with an emoji reaction only, no text \
                      (e.g. 👍 to a thank-you). Ends your turn: this is your reply.",
        parameters: object_schema(
            json!({"emoji": {"type": "string", "minLength": 1, "maxLength": limits::EMOJI}}),
            &["emoji"],
        ),
    }
}

/// The rich reply of a call's validated `input`, as the tool's output.
pub fn run(scope: &Scope<'_>, name: &str, input: &Value) -> Result<Value, ToolError> {
    let invalid = |error: crate::whatsapp::RichError| ToolError::Invalid(error.0);
    let text = |field: &str| input[field].as_str().unwrap_or_default().to_owned();
    let rich = match name {
        BUTTONS => {
            let buttons = serde_json::from_value::<Vec<Choice>>(input["buttons"].clone())
                .map_err(|e| ToolError::Invalid(e.to_string()))?;
            Rich::buttons(text("body"), buttons).map_err(invalid)?
        }
        LIST => {
            let rows = serde_json::from_value::<Vec<Row>>(input["rows"].clone())
                .map_err(|e| ToolError::Invalid(e.to_string()))?;
            Rich::list(text("body"), text("button"), rows).map_err(invalid)?
        }
        _ => {
            let message = scope.reply_to.ok_or_else(|| {
                ToolError::Invalid("there is no message of the user to react to".into())
            })?;
            Rich::reaction(message, text("emoji")).map_err(invalid)?
        }
    };
    Ok(json!({"reply": rich, "note": "This is your reply; it is sent when your turn ends."}))
}

/// The rich reply a successful call of these tools chose.
pub fn chosen(name: &str, output: &Value) -> Option<Rich> {
    is_reply_tool(name)
        .then(|| Rich::from_stored(&output["reply"]).ok())
        .flatten()
}
