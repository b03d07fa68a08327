//! Background processing of one stored inbound message, in at most three database round
//! trips besides the assistant's tools:
//!
//! 1. `whatsapp_claim_message`: claim with a lease (no two workers ever process one message),
//!    with the contact, conversation, settings, rate-limit count, token use and the recent
//!    conversation;
//! 2. `whatsapp_begin_reply`: record the reply before sending it, so a retry never sends twice;
//! 3. `whatsapp_finish_message` (reply, opt-out, alert, the assistant's ledger) or
//!    `whatsapp_fail_message` (dead letter queue with backoff, and the ledger too).
//!
//! In between: STOP/START, human mode, the per-contact rate limit, the org's token budget and
//! the contact's daily cap (spent: the command parser answers alone), mark as read with typing
//! indicator, the assistant, and the send (freeform inside the 24 h window, the approved
//! template outside it or when Meta answers 131047).

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use crate::assistant::ledger::Ledger;
use crate::assistant::turn::{Budget, Contact, HistoryItem, InboundMessage, OrgSettings};
use crate::assistant::{AssistantError, Turn};
use crate::domain::{PhoneNumberId, WaId, Wamid};
use crate::startup::AppState;
use crate::supabase::{Caller, DbError, Postgrest};
use crate::whatsapp::{DeliveryError, GraphAction, GraphError, Template};

/// A claimed message with everything needed to answer it (`whatsapp_claim_message`).
#[derive(Debug, Deserialize)]
pub struct Claim {
    pub message: ClaimedMessage,
    pub contact: Contact,
    pub conversation: ClaimedConversation,
    pub phone_number_id: String,
    pub settings: OrgSettings,
    pub rate_limit: RateLimit,
    pub budget: Budget,
    #[serde(default)]
    pub history: Vec<HistoryItem>,
    /// The reply an earlier attempt composed but could not send: sent again as it is, so a
    /// retry never runs the assistant's tools twice.
    #[serde(default)]
    pub previous_reply: Option<String>,
}

/// The claimed message: what the assistant reads, and the org it belongs to.
#[derive(Debug, Deserialize)]
pub struct ClaimedMessage {
    pub org_id: Uuid,
    #[serde(flatten)]
    pub inbound: InboundMessage,
}

#[derive(Debug, Deserialize)]
pub struct ClaimedConversation {
    pub mode: String,
    pub window_open: bool,
}

#[derive(Debug, Deserialize)]
pub struct RateLimit {
    pub limit: i64,
    pub hits: i64,
}

/// An org alert raised by processing.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub kind: &'static str,
    pub severity: &'static str,
    pub message: &'static str,
}

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
    let spanish = claim.settings.language.starts_with("es");
    let say = |en: &str, es: &str| Some(Reply::Fixed(if spanish { es } else { en }.to_string()));
    let silent = Plan {
        reply: None,
        opt_out: None,
        alert: None,
        mark_read: false,
    };
    let message = &claim.message.inbound;
    let keyword = message
        .body
        .as_deref()
        .filter(|_| message.kind == "text")
        .map(|b| b.trim().to_lowercase())
        .unwrap_or_default();

    if claim.conversation.mode == "human" {
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
            reply: say(
                "You will not receive more messages from us. Reply START to subscribe again.",
                "No recibirás más mensajes nuestros. Responde ALTA para volver a suscribirte.",
            ),
            opt_out: Some(true),
            ..silent
        };
    }
    if OPT_IN_WORDS.contains(&keyword.as_str()) {
        return Plan {
            reply: say(
                "Welcome back! You are subscribed again.",
                "¡Bienvenido de nuevo! Vuelves a estar suscrito.",
            ),
            opt_out: Some(false),
            ..silent
        };
    }
    if claim.contact.opted_out || message.kind == "reaction" {
        return silent;
    }
    if claim.rate_limit.hits > claim.rate_limit.limit {
        // One notice when the limit is first passed, then silence until the window resets.
        let first = claim.rate_limit.hits == claim.rate_limit.limit + 1;
        return Plan {
            reply: if first {
                say(
                    "You are sending messages very quickly. Please wait a minute and try again.",
                    "Estás enviando mensajes muy rápido. Espera un minuto y vuelve a intentarlo.",
                )
            } else {
                None
            },
            ..silent
        };
    }
    // A spent budget or daily cap leaves the command parser: commands are still served.
    let alert = claim.budget.org_exhausted().then_some(Alert {
        kind: "budget_exhausted",
        severity: "warning",
        message: "The monthly AI token budget is exhausted; only built-in commands are answered.",
    });
    let ai = !claim.budget.org_exhausted() && !claim.budget.contact_exhausted();
    Plan {
        reply: Some(Reply::Assistant { ai }),
        alert,
        mark_read: true,
        ..silent
    }
}

/// Why processing failed (the message goes to the dead letter queue).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error("outside the 24 h window and no approved reply template is configured")]
    NoTemplate,
    #[error("the stored message has an invalid {0}")]
    InvalidStored(&'static str),
    #[error(transparent)]
    Assistant(#[from] AssistantError),
}

impl From<DeliveryError> for Failure {
    fn from(error: DeliveryError) -> Self {
        match error {
            DeliveryError::Graph(error) => Self::Graph(error),
            DeliveryError::NoTemplate => Self::NoTemplate,
        }
    }
}

/// The reply as sent, for `whatsapp_finish_message`.
#[derive(Serialize)]
struct Finished {
    #[serde(skip_serializing_if = "Option::is_none")]
    outbound_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outbound_status: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wamid: Option<Wamid>,
    wamids: Vec<Wamid>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opt_out: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<Alert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transcript: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<Ledger>,
}

/// What processing did before it finished or failed: recorded either way.
#[derive(Default)]
struct Progress {
    /// The reply recorded by `whatsapp_begin_reply`, if any.
    outbound: Option<Uuid>,
    /// STOP/START: recorded even when the rest fails.
    opt_out: Option<bool>,
    /// The assistant's provider attempts and tool runs.
    ledger: Ledger,
}

#[derive(Deserialize)]
struct Begun {
    outbound_id: Uuid,
    state: String,
}

/// Processes `message_id` if it can be claimed; every outcome is recorded, never lost.
pub async fn process(state: &AppState, message_id: Uuid) {
    let Ok(db) = state.db() else { return };
    let claim = match claim(state, db, message_id).await {
        Ok(Some(claim)) => claim,
        Ok(None) => return,
        Err(error) => {
            // Not claimed: the message stays stored and the retry cron picks it up.
            tracing::error!(%message_id, error = %error, "could not claim a message");
            return;
        }
    };
    let mut progress = Progress::default();
    let result = answer(state, db, message_id, &claim, &mut progress).await;
    let ledger = Some(progress.ledger).filter(|l| !l.is_empty());
    let recorded = match result {
        Ok(finished) => finish(db, message_id, &Finished { ledger, ..finished }).await,
        Err(failure) => {
            tracing::warn!(%message_id, error = %failure, "processing failed; dead-lettered");
            let (outbound, opt_out) = (progress.outbound, progress.opt_out);
            fail(db, message_id, &failure, outbound, opt_out, ledger).await
        }
    };
    if let Err(error) = recorded {
        tracing::error!(%message_id, error = %error, "could not record the outcome; the lease will expire");
    }
}

async fn claim(state: &AppState, db: &Postgrest, id: Uuid) -> Result<Option<Claim>, DbError> {
    let lease = state.settings.processing.lease.as_secs();
    let history = state.assistant.history_messages();
    Ok(db
        .rpc("whatsapp_claim_message", Caller::Service)
        .args(&json!({"p_message_id": id, "p_lease_seconds": lease, "p_history": history}))
        .fetch()
        .await?
        .data)
}

async fn answer(
    state: &AppState,
    db: &Postgrest,
    message_id: Uuid,
    claim: &Claim,
    progress: &mut Progress,
) -> Result<Finished, Failure> {
    let plan = decide(claim);
    progress.opt_out = plan.opt_out;
    let from =
        PhoneNumberId::parse(&claim.phone_number_id).ok_or(Failure::InvalidStored("number"))?;
    let to = WaId::parse(&claim.contact.wa_id).ok_or(Failure::InvalidStored("wa_id"))?;
    let mut finished = Finished {
        outbound_id: None,
        outbound_status: None,
        wamid: None,
        wamids: Vec::new(),
        kind: None,
        opt_out: plan.opt_out,
        alert: plan.alert.clone(),
        transcript: None,
        ledger: None,
    };
    let Some(reply) = plan.reply else {
        return Ok(finished);
    };
    if plan.mark_read {
        mark_read(state, &from, claim).await;
    }
    let text = match (reply, claim.previous_reply.clone()) {
        (Reply::Fixed(text), _) => text,
        (Reply::Assistant { .. }, Some(previous)) => previous,
        (Reply::Assistant { ai }, None) => {
            let turn = Turn {
                org_id: claim.message.org_id,
                message: &claim.message.inbound,
                contact: &claim.contact,
                settings: &claim.settings,
                budget: &claim.budget,
                history: &claim.history,
                ai_allowed: ai,
            };
            let answer = state
                .assistant
                .answer(db, &turn, &mut progress.ledger)
                .await?;
            finished.transcript = answer.transcript;
            answer.text
        }
    };
    let begun: Begun = db
        .rpc("whatsapp_begin_reply", Caller::Service)
        .args(&json!({"p_message_id": message_id, "p_type": "text", "p_body": text}))
        .fetch()
        .await?
        .data;
    match begun.state.as_str() {
        "new" => progress.outbound = Some(begun.outbound_id),
        "sending" => {
            // An earlier attempt may have sent it: never risk sending twice.
            finished.alert = Some(Alert {
                kind: "reply_outcome_unknown",
                severity: "warning",
                message: "A reply's send outcome is unknown; it was not sent again.",
            });
            return Ok(finished);
        }
        _ => return Ok(finished),
    }
    let template = claim.settings.reply_template.clone().map(|name| Template {
        name,
        language: claim.settings.template_language.clone(),
    });
    let retry_base = state.settings.processing.retry_base;
    let (sent, kind) = state
        .whatsapp
        .deliver(
            &from,
            &to,
            text,
            claim.conversation.window_open,
            template,
            retry_base,
        )
        .await?;
    finished.outbound_id = Some(begun.outbound_id);
    finished.outbound_status = Some(if sent.simulated { "simulated" } else { "sent" });
    finished.wamid = sent.wamids.first().cloned();
    finished.wamids = sent.wamids;
    finished.kind = Some(kind);
    Ok(finished)
}

async fn mark_read(state: &AppState, from: &PhoneNumberId, claim: &Claim) {
    let Some(wamid) = claim
        .message
        .inbound
        .wamid
        .as_deref()
        .and_then(Wamid::parse)
    else {
        return;
    };
    if let Err(error) = state.whatsapp.mark_read(from, &wamid).await {
        tracing::warn!(error = %error, "mark as read failed");
    }
}

async fn finish(db: &Postgrest, id: Uuid, finished: &Finished) -> Result<(), DbError> {
    db.rpc("whatsapp_finish_message", Caller::Service)
        .args(&json!({"p_message_id": id, "p_result": finished}))
        .execute()
        .await
        .map(drop)
}

async fn fail(
    db: &Postgrest,
    id: Uuid,
    failure: &Failure,
    outbound: Option<Uuid>,
    opt_out: Option<bool>,
    ledger: Option<Ledger>,
) -> Result<(), DbError> {
    let alert = matches!(failure, Failure::Graph(e) if e.action() == GraphAction::TokenExpired).then(|| Alert {
        kind: "whatsapp_token_expired",
        severity: "critical",
        message: "The WhatsApp access token expired (Graph error 190): replace WHATSAPP_ACCESS_TOKEN.",
    });
    // A send that may have reached Meta leaves its reply `sending`: a retry then refuses to
    // send it again (and raises `reply_outcome_unknown`) instead of risking a double send.
    let outbound = outbound.filter(|_| !matches!(failure, Failure::Graph(e) if e.maybe_sent()));
    db.rpc("whatsapp_fail_message", Caller::Service)
        .args(&json!({
            "p_message_id": id,
            "p_error": failure.to_string(),
            "p_outbound_id": outbound,
            "p_alert": alert,
            "p_ledger": ledger,
            "p_opt_out": opt_out,
        }))
        .execute()
        .await
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(body: &str, hits: i64, used: i64) -> Claim {
        serde_json::from_value(json!({
            "message": {"org_id": uuid::Uuid::nil(), "wamid": "wamid.X", "type": "text", "body": body},
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
        assert_eq!(budget.alert.map(|a| a.kind), Some("budget_exhausted"));
        let mut capped = claim("hello", 1, 0);
        capped.budget.contact_used_today = 500;
        let capped = decide(&capped);
        assert_eq!(capped.reply, Some(Reply::Assistant { ai: false }));
        assert_eq!(capped.alert, None, "a contact's cap is not an org alert");
        let mut human = claim("hello", 1, 0);
        human.conversation.mode = "human".into();
        assert_eq!(decide(&human).reply, None);
        let mut opted_out = claim("hello", 1, 0);
        opted_out.contact.opted_out = true;
        assert_eq!(decide(&opted_out).reply, None);
    }
}
