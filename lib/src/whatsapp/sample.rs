//! Sample webhook deliveries shaped as Meta documents them, for `scripts/simulate` and
//! `scripts/bench` (signed with [`super::signature::sign`]).

use serde_json::{json, Value};

/// The message types `scripts/simulate --type` can send.
pub const SAMPLE_TYPES: &[&str] = &[
    "text",
    "image",
    "audio",
    "location",
    "reaction",
    "button",
    "interactive",
    "hologram",
];

/// Who sends what to which business number.
pub struct Sample<'a> {
    pub kind: &'a str,
    pub text: &'a str,
    pub from: &'a str,
    pub profile_name: &'a str,
    pub phone_number_id: &'a str,
    pub wamid: &'a str,
    pub timestamp: i64,
}

/// One delivery with one message. A `from` that is a BSUID (`US.…`) is a person with a
/// username who withholds the number: `from_user_id` and `contacts[].user_id`, no phone number.
pub fn delivery(sample: &Sample<'_>) -> Value {
    let username_only = crate::domain::UserId::parse(sample.from).is_some();
    let (from, contact) = if username_only {
        (
            "from_user_id",
            json!({"profile": {"name": sample.profile_name, "username": "@sample"},
                   "user_id": sample.from}),
        )
    } else {
        (
            "from",
            json!({"profile": {"name": sample.profile_name}, "wa_id": sample.from}),
        )
    };
    let mut message = json!({
        from: sample.from,
        "id": sample.wamid,
        "timestamp": sample.timestamp.to_string(),
        "type": sample.kind,
    });
    message[sample.kind] = content(sample);
    json!({
        "object": "whatsapp_business_account",
        "entry": [{
            "id": "200000000000001",
            "changes": [{
                "value": {
                    "messaging_product": "whatsapp",
                    "metadata": {
                        "display_phone_number": "15550100001",
                        "phone_number_id": sample.phone_number_id,
                    },
                    "contacts": [contact],
                    "messages": [message],
                },
                "field": "messages",
            }],
        }],
    })
}

fn content(sample: &Sample<'_>) -> Value {
    match sample.kind {
        "text" => json!({"body": sample.text}),
        "image" => json!({
            "caption": sample.text, "mime_type": "image/jpeg",
            "sha256": "OR6d+ffMMfdTVCcHk7q6drvwQRIzIC2xoB4ak+Oiyyo=", "id": "1003383421387256",
        }),
        "audio" => json!({
            "mime_type": "audio/ogg; codecs=opus", "sha256": "c2hhMjU2LW9mLXZvaWNlLW5vdGU=",
            "id": "1003383421387257", "voice": true,
        }),
        "location" => json!({
            "latitude": 40.4168, "longitude": -3.7038, "name": sample.text,
            "address": "Puerta del Sol, Madrid",
        }),
        "reaction" => {
            json!({"message_id": "wamid.HBgLMTU1NTAwMDExMTEVAgARGBI5QUM=", "emoji": "👍"})
        }
        "button" => json!({"payload": "CONFIRM", "text": sample.text}),
        "interactive" => json!({
            "type": "button_reply", "button_reply": {"id": "confirm", "title": sample.text},
        }),
        _ => json!({"note": sample.text}),
    }
}
