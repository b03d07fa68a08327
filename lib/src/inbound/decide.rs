//! What to do with a claimed turn, decided from the claim alone (no I/O): STOP/START, human
//! mode, opt-out, the per-contact rate limit, the org's token budget and the contact's daily
//! cap (spent: the command parser answers alone). Fixed replies are in the contact's language
//! (`Contact::lang`), like the rest of a turn.

use super::claim::Claim;
use crate::assistant::replies;
use crate::domain::{Alert, AlertKind, ConversationMode, MessageKind};

/// What to do with a claimed message.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub reply: Option<Reply>,
    pub opt_out: Option<bool>,
    pub alert: Option<Alert>,
    /// Mark as read with the typing indicator before answering.
    pub mark_read: bool,
}

/// Where the reply's text comes from.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Fixed(String),
    /// The assistant; `ai: false` when the budget or the contact's cap is spent (the command
    /// parser answers alone).
    Assistant {
        ai: bool,
    },
}

const OPT_OUT_WORDS: &[&str] = &["stop", "unsubscribe", "baja"];
const OPT_IN_WORDS: &[&str] = &["start", "subscribe", "alta"];

/// Decides, from the claim alone, how to answer (no I/O).
pub fn decide(claim: &Claim) -> Plan {
    let lang = claim.contact.lang(&claim.settings.language);
    let silent = Plan {
        reply: None,
        opt_out: None,
        alert: None,
        mark_read: false,
    };
    let message = &claim.message;
    // STOP or START anywhere in the turn counts (the latest one, if several).
    let keyword = claim
        .turn
        .bodies
        .iter()
        .rev()
        .filter(|m| m.kind == MessageKind::Text)
        .filter_map(|m| m.body.as_deref())
        .map(|b| b.trim().to_lowercase())
        .find(|k| OPT_OUT_WORDS.contains(&k.as_str()) || OPT_IN_WORDS.contains(&k.as_str()))
        .unwrap_or_default();

    if claim.conversation.mode == ConversationMode::Human {
        // Staff answer in human mode, but STOP and START still count.
        let opt_out = if OPT_OUT_WORDS.contains(&keyword.as_str()) {
            Some(true)
        } else if OPT_IN_WORDS.contains(&keyword.as_str()) {
            Some(false)
        } else {
            None
        };
        return Plan { opt_out, ..silent };
    }
    if OPT_OUT_WORDS.contains(&keyword.as_str()) {
        return Plan {
            reply: Some(Reply::Fixed(replies::opted_out(lang))),
            opt_out: Some(true),
            ..silent
        };
    }
    if OPT_IN_WORDS.contains(&keyword.as_str()) {
        return Plan {
            reply: Some(Reply::Fixed(replies::opted_in(lang))),
            opt_out: Some(false),
            ..silent
        };
    }
    if claim.contact.opted_out || message.kind.never_answered() {
        return silent;
    }
    match message.kind {
        MessageKind::RequestWelcome => {
            let welcome = claim.settings.welcome_message.clone();
            return Plan {
                reply: Some(Reply::Fixed(
                    welcome.unwrap_or_else(|| replies::welcome(lang)),
                )),
                ..silent
            };
        }
        MessageKind::Order => {
            return Plan {
                reply: Some(Reply::Fixed(replies::order_received(
                    lang,
                    message.body.as_deref(),
                ))),
                mark_read: true,
                ..silent
            };
        }
        _ => {}
    }
    if claim.rate_limit.hits > claim.rate_limit.limit {
        // One notice when the limit is first passed, then silence until the window resets.
        let first = claim.rate_limit.hits == claim.rate_limit.limit + 1;
        crate::security_event!(
            crate::telemetry::SecurityEvent::ContactRateLimited,
            org_id = %message.org_id,
            contact_id = %claim.contact.id,
            hits = claim.rate_limit.hits,
            limit = claim.rate_limit.limit,
            notified = first
        );
        return Plan {
            reply: first.then(|| Reply::Fixed(replies::rate_limited(lang))),
            ..silent
        };
    }
    // A spent budget or daily cap leaves the command parser: commands are still served.
    let alert = claim
        .budget
        .org_exhausted()
        .then_some(Alert(AlertKind::BudgetExhausted));
    let ai = !claim.budget.org_exhausted() && !claim.budget.contact_exhausted();
    Plan {
        reply: Some(Reply::Assistant { ai }),
        alert,
        mark_read: true,
        ..silent
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claim(body: &str, hits: i64, used: i64) -> Claim {
        serde_json::from_value(json!({
            "token": uuid::Uuid::nil(),
            "message": {"id": uuid::Uuid::nil(), "org_id": uuid::Uuid::nil(), "wamid": "wamid.X",
                        "type": "text", "body": body},
            "turn": {"ids": [uuid::Uuid::nil()], "bodies": [{"type": "text", "body": body}]},
            "contact": {"id": uuid::Uuid::nil(), "wa_id": "15550001111", "name": "Ana",
                        "locale": null, "timezone": "UTC", "opted_out": false},
            "conversation": {"mode": "bot", "window_open": true},
            "phone_number_id": "100000000000001",
            "settings": {"system_prompt": null, "model": null, "fallback_model": null,
                         "enabled_tools": null, "language": "en", "reply_template": null,
                         "template_language": "en_US"},
            "rate_limit": {"limit": 10, "hits": hits},
            "budget": {"monthly_tokens": 1000, "used_tokens": used,
                       "contact_daily_cap": 500, "contact_used_today": 0},
        }))
        .expect("claim")
    }

    #[test]
    fn decisions_follow_the_rules_in_order() {
        assert_eq!(
            decide(&claim("hello", 1, 0)).reply,
            Some(Reply::Assistant { ai: true })
        );
        assert_eq!(decide(&claim(" STOP ", 1, 0)).opt_out, Some(true));
        assert_eq!(decide(&claim("start", 1, 0)).opt_out, Some(false));
        assert!(matches!(
            decide(&claim("hello", 11, 0)).reply,
            Some(Reply::Fixed(_))
        ));
        assert_eq!(decide(&claim("hello", 12, 0)).reply, None);
        let budget = decide(&claim("hello", 1, 1000));
        assert_eq!(budget.reply, Some(Reply::Assistant { ai: false }));
        assert_eq!(budget.alert, Some(Alert(AlertKind::BudgetExhausted)));
        let mut capped = claim("hello", 1, 0);
        capped.budget.contact_used_today = 500;
        let capped = decide(&capped);
        assert_eq!(capped.reply, Some(Reply::Assistant { ai: false }));
        assert_eq!(capped.alert, None, "a contact's cap is not an org alert");
        let mut burst = claim("why?", 1, 0);
        burst.turn.bodies.insert(
            0,
            super::super::claim::TurnBody {
                kind: MessageKind::Text,
                body: Some("STOP".into()),
            },
        );
        assert_eq!(
            decide(&burst).opt_out,
            Some(true),
            "a STOP earlier in the turn counts"
        );
        let mut human = claim("hello", 1, 0);
        human.conversation.mode = ConversationMode::Human;
        assert_eq!(decide(&human).reply, None);
        let mut opted_out = claim("hello", 1, 0);
        opted_out.contact.opted_out = true;
        assert_eq!(decide(&opted_out).reply, None);
    }

    #[test]
    fn fixed_replies_are_in_the_contacts_language() {
        let fixed = |claim: &Claim| match decide(claim).reply {
            Some(Reply::Fixed(text)) => text,
            other => panic!("not a fixed reply: {other:?}"),
        };
        let mut spanish = claim("STOP", 1, 0);
        spanish.contact.locale = Some("es-MX".into());
        assert!(
            fixed(&spanish).starts_with("No recibirás"),
            "an English org"
        );
        spanish.turn.bodies[0].body = Some("start".into());
        assert!(fixed(&spanish).starts_with("¡Bienvenido"));
        let mut english = claim("baja", 1, 0);
        english.contact.locale = Some("en-GB".into());
        english.settings.language = "es".into();
        assert!(fixed(&english).starts_with("You will not"), "a Spanish org");
        english.rate_limit.hits = 11;
        english.turn.bodies[0].body = Some("hello".into());
        assert!(fixed(&english).starts_with("You are sending"));
    }
}
