//! Meta's account webhooks (changes whose `field` is not `messages`): the health of the
//! WhatsApp Business account (`account_update`), of a number (`phone_number_quality_update`),
//! of a template (`message_template_status_update`, `message_template_quality_update`), and a
//! contact's marketing preference (`user_preferences`). Parsed into [`AccountEvent`]s that
//! `whatsapp_ingest` stores in the delivery's own round trip
//! (`private.whatsapp_apply_account_events`). Account-level changes name the WABA (`entry.id`),
//! not a number. Every value kept is checked against what its column accepts, so a change of
//! an odd shape is skipped (counted), never failing the delivery.

use chrono::{DateTime, TimeZone, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::domain::{PhoneNumberId, WaId};
use crate::supabase::storable;

/// The longest template rejection reason kept, in characters (`whatsapp_templates.reason`).
const MAX_REASON_CHARS: usize = 512;

/// At most this many restrictions are kept per account event.
const MAX_RESTRICTIONS: usize = 16;

/// The change fields handled here.
pub const FIELDS: [&str; 5] = [
    "account_update",
    "phone_number_quality_update",
    "message_template_status_update",
    "message_template_quality_update",
    "user_preferences",
];

/// One account-level change, as `private.whatsapp_apply_account_events` reads it.
#[derive(Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccountEvent {
    /// `account_update`: the WABA's event, ban state and restrictions.
    Account {
        waba_id: String,
        event: String,
        ban_state: Option<String>,
        /// `[{restriction_type, expiration}]`.
        restrictions: Value,
    },
    /// `phone_number_quality_update`: a number's quality event and messaging limit.
    NumberQuality {
        waba_id: String,
        display_phone_number: String,
        event: String,
        messaging_limit: Option<String>,
    },
    /// `message_template_status_update`: `event` is the template's new status (none when the
    /// event does not change whether it can be sent, e.g. LOCKED).
    TemplateStatus {
        waba_id: String,
        template_id: Option<String>,
        name: String,
        language: String,
        event: Option<String>,
        category: Option<String>,
        reason: Option<String>,
    },
    /// `message_template_quality_update`: the template's new quality score.
    TemplateQuality {
        waba_id: String,
        template_id: Option<String>,
        name: String,
        language: String,
        quality: String,
    },
    /// `user_preferences` (`category: marketing_messages`): the contact stopped or resumed
    /// marketing messages. Service replies are not affected.
    Marketing {
        phone_number_id: PhoneNumberId,
        wa_id: WaId,
        stopped: bool,
        at: DateTime<Utc>,
    },
}

/// The events of one change of field `field` (one of [`FIELDS`]) of the WABA `waba_id`
/// (`entry.id`), and how many of its items were skipped.
pub fn parse(field: &str, waba_id: Option<&str>, value: &Value) -> (Vec<AccountEvent>, usize) {
    if field == "user_preferences" {
        return preferences(value);
    }
    let event = waba_id
        .and_then(|id| digits(&Value::from(id)))
        .and_then(|waba_id| match field {
            "account_update" => account(waba_id, value),
            "phone_number_quality_update" => number_quality(waba_id, value),
            "message_template_status_update" => template_status(waba_id, value),
            "message_template_quality_update" => template_quality(waba_id, value),
            _ => None,
        });
    match event {
        Some(event) => (vec![event], 0),
        None => (Vec::new(), 1),
    }
}

fn account(waba_id: String, value: &Value) -> Option<AccountEvent> {
    let restrictions: Vec<Value> = value
        .get("restriction_info")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|r| {
            let kind = code(r.get("restriction_type")?)?;
            let expiration = r
                .get("expiration")
                .filter(|e| e.is_number() || e.as_str().is_some_and(|s| s.len() <= 64))
                .cloned();
            Some(serde_json::json!({"restriction_type": kind, "expiration": expiration}))
        })
        .take(MAX_RESTRICTIONS)
        .collect();
    Some(AccountEvent::Account {
        waba_id,
        event: code(value.get("event")?)?,
        ban_state: value.pointer("/ban_info/waba_ban_state").and_then(code),
        restrictions: Value::Array(restrictions),
    })
}

fn number_quality(waba_id: String, value: &Value) -> Option<AccountEvent> {
    let limit = value
        .get("max_daily_conversations_per_business")
        .or_else(|| value.get("current_limit"));
    Some(AccountEvent::NumberQuality {
        waba_id,
        display_phone_number: digits(value.get("display_phone_number")?)?,
        event: code(value.get("event")?)?,
        messaging_limit: limit.and_then(code),
    })
}

/// The template's status after a status event: the events that only say it can be sent again
/// become APPROVED; those that do not change whether it can be sent keep its status.
fn status_after(event: &str) -> Option<String> {
    match event {
        "REINSTATED" | "UNARCHIVED" | "UNFLAGGED" => Some("APPROVED".into()),
        "LOCKED" | "UNLOCKED" | "FLAGGED" => None,
        other => Some(other.to_string()),
    }
}

fn template_status(waba_id: String, value: &Value) -> Option<AccountEvent> {
    let (template_id, name, language) = template(value)?;
    Some(AccountEvent::TemplateStatus {
        waba_id,
        template_id,
        name,
        language,
        event: status_after(&code(value.get("event")?)?),
        category: value.get("message_template_category").and_then(code),
        reason: value
            .get("reason")
            .and_then(Value::as_str)
            .map(|reason| storable::bounded(reason, MAX_REASON_CHARS)),
    })
}

fn template_quality(waba_id: String, value: &Value) -> Option<AccountEvent> {
    let (template_id, name, language) = template(value)?;
    Some(AccountEvent::TemplateQuality {
        waba_id,
        template_id,
        name,
        language,
        quality: code(value.get("new_quality_score")?)?,
    })
}

/// The template's id, name and language, as `whatsapp_templates` accepts them.
fn template(value: &Value) -> Option<(Option<String>, String, String)> {
    let name = value.get("message_template_name")?.as_str()?;
    let name_ok = (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let language = value.get("message_template_language")?.as_str()?;
    let language_ok = (1..=15).contains(&language.len())
        && language
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    (name_ok && language_ok).then(|| {
        let id = value.get("message_template_id").and_then(digits);
        (id, name.to_string(), language.to_string())
    })
}

fn preferences(value: &Value) -> (Vec<AccountEvent>, usize) {
    let items = value
        .get("user_preferences")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let number = value
        .pointer("/metadata/phone_number_id")
        .and_then(Value::as_str)
        .and_then(PhoneNumberId::parse);
    let Some(number) = number else {
        return (Vec::new(), items.len().max(1));
    };
    let events: Vec<AccountEvent> = items
        .iter()
        .filter_map(|item| {
            if item.get("category")?.as_str()? != "marketing_messages" {
                return None;
            }
            let stopped = match item.get("value")?.as_str()? {
                "stop" => true,
                "resume" => false,
                _ => return None,
            };
            Some(AccountEvent::Marketing {
                phone_number_id: number.clone(),
                wa_id: WaId::parse(item.get("wa_id")?.as_str()?)?,
                stopped,
                at: timestamp(item.get("timestamp")),
            })
        })
        .collect();
    let skipped = items.len() - events.len();
    (events, skipped)
}

/// An upper-case code of Meta's (`ACCOUNT_RESTRICTION`, `TIER_1K`...), as the columns accept it.
fn code(value: &Value) -> Option<String> {
    let text = value.as_str()?.to_ascii_uppercase();
    ((1..=64).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(text)
}

/// Digits (a string or a number, as Meta writes ids), at most 32 of them.
fn digits(value: &Value) -> Option<String> {
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        _ => return None,
    };
    ((1..=32).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_digit())).then_some(text)
}

/// Unix seconds (a string or a number) in years 1970 to 9999, else now.
fn timestamp(value: Option<&Value>) -> DateTime<Utc> {
    value
        .and_then(|t| {
            t.as_str()
                .and_then(|s| s.parse().ok())
                .or_else(|| t.as_i64())
        })
        .filter(|secs| (0..=253_402_300_799).contains(secs))
        .and_then(|secs| Utc.timestamp_opt(secs, 0).single())
        .unwrap_or_else(Utc::now)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Meta's documented payloads (tests/fixtures/whatsapp/README.md), through the parser.
    #[test]
    fn the_documented_account_webhooks_parse_into_their_events() {
        let parse = |body: &str| {
            let delivery = crate::whatsapp::Delivery::parse(body.as_bytes()).expect("parsed");
            assert_eq!(delivery.skipped, 0);
            assert!(delivery.messages.is_empty() && delivery.statuses.is_empty());
            serde_json::to_value(&delivery.account_events).expect("json")
        };
        let fixture = |name| {
            std::fs::read_to_string(format!(
                "{}/../tests/fixtures/whatsapp/{name}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .expect("fixture")
        };
        let restriction = parse(&fixture("account_update_restriction.json"));
        assert_eq!(restriction[0]["kind"], "account");
        assert_eq!(restriction[0]["waba_id"], "200000000000001");
        assert_eq!(
            restriction[0]["restrictions"].as_array().map(Vec::len),
            Some(2)
        );
        let quality = parse(&fixture("phone_number_quality_update_downgrade.json"));
        assert_eq!(
            quality[0],
            json!({"kind": "number_quality", "waba_id": "200000000000001",
                   "display_phone_number": "15550100001", "event": "DOWNGRADE",
                   "messaging_limit": "TIER_1K"})
        );
        let disabled = parse(&fixture("message_template_status_update_disabled.json"));
        assert_eq!(disabled[0]["event"], "DISABLED");
        assert_eq!(disabled[0]["template_id"], "300000000000001");
        let score = parse(&fixture("message_template_quality_update.json"));
        assert_eq!(score[0]["kind"], "template_quality");
        assert_eq!(score[0]["quality"], "RED");
        let stop = parse(&fixture("user_preferences_stop.json"));
        assert_eq!(stop[0]["kind"], "marketing");
        assert_eq!(stop[0]["stopped"], true);
        assert_eq!(stop[0]["wa_id"], "15550001111");
    }

    #[test]
    fn account_events_keep_only_what_their_columns_accept() {
        let restricted = json!({"event": "ACCOUNT_RESTRICTION", "restriction_info": [
            {"restriction_type": "RESTRICTED_BIZ_INITIATED_MESSAGING", "expiration": 1767225600},
            {"restriction_type": "not a code!", "expiration": 1}]});
        let (events, skipped) = parse("account_update", Some("200000000000001"), &restricted);
        assert_eq!(skipped, 0);
        let AccountEvent::Account {
            event,
            restrictions,
            ..
        } = &events[0]
        else {
            panic!("account: {events:?}");
        };
        assert_eq!(event, "ACCOUNT_RESTRICTION");
        assert_eq!(restrictions.as_array().map(Vec::len), Some(1));

        assert_eq!(
            parse("account_update", None, &restricted).1,
            1,
            "no WABA id"
        );
        let odd = json!({"event": "drop table;", "message_template_name": "x"});
        assert_eq!(parse("account_update", Some("2"), &odd).1, 1);
        assert_eq!(
            parse("message_template_status_update", Some("2"), &odd).1,
            1
        );

        let reinstated = json!({"event": "REINSTATED", "message_template_id": 12,
            "message_template_name": "assistant_reply", "message_template_language": "en_US"});
        let (events, _) = parse("message_template_status_update", Some("2"), &reinstated);
        assert!(matches!(&events[0],
            AccountEvent::TemplateStatus { event: Some(e), template_id: Some(id), .. }
                if e == "APPROVED" && id == "12"));

        let prefs = json!({"metadata": {"phone_number_id": "100000000000001"}, "user_preferences": [
            {"wa_id": "15550001111", "category": "marketing_messages", "value": "stop", "timestamp": 1767225600},
            {"wa_id": "15550001111", "category": "marketing_messages", "value": "maybe"}]});
        let (events, skipped) = parse("user_preferences", Some("2"), &prefs);
        assert_eq!(skipped, 1);
        assert!(matches!(
            &events[0],
            AccountEvent::Marketing { stopped: true, .. }
        ));
    }
}
