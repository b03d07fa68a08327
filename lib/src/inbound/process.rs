//! Background processing of a stored inbound message's conversation, one turn at a time, in
//! at most three database round trips per turn besides the assistant's tools, two for a turn
//! that arrived during the previous one:
//!
//! 1. `whatsapp_claim_message` ([`super::claim`]): the conversation's next turn (every
//!    unanswered message of it) with a token;
//! 2. `whatsapp_begin_reply`: record the reply before sending it, so a retry never sends twice;
//! 3. `whatsapp_finish_message` (reply, opt-out, alert, the assistant's ledger) or
//!    `whatsapp_fail_message` (dead letter queue with backoff, and the ledger too).
//!
//! Begin, finish and fail succeed only for the token's holder: a worker whose lease ran out
//! and whose turn was claimed again records nothing. When a message arrived during the turn,
//! finish also claims its turn in the same transaction (step 1 of the next turn, which the same
//! worker answers next) if that turn's worst case still fits the invocation's time; otherwise,
//! or when that claim fails, it names the message and the worker claims it on its own. The
//! messages of a processed turn leave this instance's queue ([`super::Backlog::forget`]).
//!
//! In between: the decision ([`super::decide`]), mark as read with typing indicator (while the
//! assistant composes the reply and it is begun), and the send ([`send::send`]).
//!
//! The work between claim and outcome is [`isolated`]: a panic in it (the assistant on a
//! hostile text) fails the turn with the fixed reason "processing panicked", never leaving
//! it `processing`; a panic anywhere else in the processing ends that turn alone (its lease
//! runs out and the claim counted the attempt, so it ends discarded after `MAX_ATTEMPTS`).

use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tracing::{field, Instrument};
use uuid::Uuid;

use super::claim::{claim, decode, Claim, Claimed};
use super::deadline::Deadlines;
use super::decide::{decide, Reply};
use super::isolate::isolated;
use super::Pipeline;
use crate::assistant::ledger::Ledger;
use crate::assistant::turn::OrgSettings;
use crate::assistant::{AssistantError, Turn};
use crate::domain::{Address, Alert, AlertKind, MessageKind, Wamid};
use crate::send::{self, Content, SendError};
use crate::supabase::{Caller, DbError, Postgrest};
use crate::whatsapp::{Delivered, Recipient, SendStatus};

/// Why processing failed (the message goes to the dead letter queue).
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Database(#[from] DbError),
    /// Not delivered ([`SendError::maybe_sent`] says whether perhaps).
    #[error(transparent)]
    Send(#[from] SendError),
    /// The claimed rows do not decode (the reason names no stored value).
    #[error("the stored message cannot be read: {0}")]
    Undecodable(String),
    #[error(transparent)]
    Assistant(#[from] AssistantError),
    /// The fixed reason: a panic's message may quote the message text.
    #[error("processing panicked")]
    Panicked,
    /// The answer outlasted its deadline ([`Deadlines::answer`]): cut off, perhaps mid-send.
    #[error("the turn outlasted its deadline")]
    Deadline,
    /// The turn's lease ran out and another worker claimed it: nothing more is recorded.
    #[error("the turn was claimed by another worker")]
    Lost,
    /// An earlier attempt's reply may have reached Meta: left to the outcome resolver.
    #[error("the reply's send outcome is unknown; left to the outcome resolver")]
    OutcomeUnknown,
}

impl Failure {
    /// Whether Meta may have taken the reply: its send is then never repeated.
    fn maybe_sent(&self) -> bool {
        match self {
            Self::Send(error) => error.maybe_sent(),
            // Where the panic (or the deadline) struck is unknown: perhaps during the send; an
            // earlier attempt's reply may have reached Meta.
            Self::Panicked | Self::Deadline | Self::OutcomeUnknown => true,
            _ => false,
        }
    }

    fn undecodable(error: &serde_json::Error) -> Self {
        Self::Undecodable(format!(
            "{:?} error at column {}",
            error.classify(),
            error.column()
        ))
    }
}

/// The outcome, for `whatsapp_finish_message`.
#[derive(Default, Serialize)]
struct Finished {
    #[serde(skip_serializing_if = "Option::is_none")]
    outbound_id: Option<Uuid>,
    #[serde(skip_serializing_if = "Option::is_none")]
    outbound_status: Option<SendStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wamid: Option<Wamid>,
    wamids: Vec<Wamid>,
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<MessageKind>,
    #[serde(skip_serializing_if = "Option::is_none")]
    opt_out: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<Alert>,
    #[serde(skip_serializing_if = "Option::is_none")]
    transcript: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ledger: Option<Ledger>,
}

impl Finished {
    /// Records the reply `outbound` as sent.
    fn sent(&mut self, outbound: Uuid, delivered: Delivered) {
        self.outbound_id = Some(outbound);
        self.outbound_status = Some(delivered.status);
        self.wamid = delivered.wamid().cloned();
        self.kind = Some(delivered.kind);
        self.wamids = delivered.wamids;
    }
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

/// What `whatsapp_begin_reply` found.
#[derive(Deserialize)]
struct Begun {
    outbound_id: Uuid,
    state: ReplyState,
}

/// The state of a message's reply when it is begun.
#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ReplyState {
    /// Recorded now (or failed for certain before): send it.
    New,
    /// An earlier attempt may have sent it: never risk sending twice.
    Sending,
    /// Sent already.
    #[serde(other)]
    Settled,
}

/// Where a turn starts: a message whose conversation's turn is to be claimed, or the turn the
/// previous one's finish claimed.
enum Start {
    Message(Uuid),
    Claimed(Claimed),
}

impl Start {
    /// The turn's span: its events carry the message, and the org and conversation once
    /// claimed.
    fn span(&self) -> tracing::Span {
        let message_id = match self {
            Self::Message(id) => Some(*id),
            Self::Claimed(Claimed::Claim(claim)) => Some(claim.message.id),
            Self::Claimed(Claimed::Undecodable(_, (id, _))) => Some(*id),
            Self::Claimed(Claimed::Unavailable) => None,
        };
        tracing::info_span!(
            "turn",
            webhook = true,
            message_id = message_id.map(field::display),
            org_id = field::Empty,
            conversation_id = field::Empty,
        )
    }
}

/// Processes `message_id`'s conversation if it can be claimed, turn after turn while messages
/// arrive during a turn, each begun only if its worst case still ends within `MAX_DURATION` of
/// `started` (the invocation's start; what is left waits for the next worker or the retry
/// cron); every outcome is recorded, never lost. A panic never escapes: it is this turn's
/// failure alone.
pub async fn process(pipeline: &Pipeline, message_id: Uuid, started: Instant) {
    let deadlines = pipeline.deadlines;
    let mut next = Some(Start::Message(message_id));
    while let Some(start) = next {
        let span = start.span();
        // A turn claimed with the previous finish was claimed only if it fitted.
        if matches!(start, Start::Message(_)) && !deadlines.fits(started) {
            span.in_scope(|| {
                tracing::info!(
                    "no time left for a turn; left for the next worker or the retry cron"
                )
            });
            return;
        }
        let turn = process_turn(pipeline, start, deadlines, started).instrument(span.clone());
        match isolated(turn).await {
            Ok(after) => next = after,
            Err(_) => {
                // Outside the isolated answer (recording the outcome): the lease decides.
                span.in_scope(|| tracing::error!("processing panicked; the lease will expire"));
                return;
            }
        }
    }
}

/// Claims (unless claimed already) and answers one turn; returns where the next one starts:
/// the message that arrived during it, or its turn, claimed with this one's finish.
async fn process_turn(
    pipeline: &Pipeline,
    start: Start,
    deadlines: Deadlines,
    started: Instant,
) -> Option<Start> {
    let db = pipeline.db.as_ref()?;
    let max_attempts = pipeline.settings.max_attempts;
    let claimed = match start {
        Start::Claimed(claimed) => claimed,
        Start::Message(message_id) => match claim(pipeline, db, message_id).await {
            Ok(claimed) => claimed,
            Err(error) => {
                // Not claimed: the message stays stored and the retry cron picks it up.
                tracing::error!(event = "failed", error = %error, "could not claim a message");
                return None;
            }
        },
    };
    let claim = match claimed {
        Claimed::Claim(claim) => claim,
        Claimed::Unavailable => return None,
        Claimed::Undecodable(error, held) => {
            let failure = Failure::undecodable(&error);
            tracing::warn!(event = "failed", error = %failure, "claimed message unreadable; dead-lettered");
            let recorded = fail(db, held, &failure, Progress::default(), max_attempts).await;
            if let Err(error) = recorded {
                tracing::error!(event = "failed", error = %error, "could not record the outcome; the lease will expire");
            }
            return None;
        }
    };
    let message_id = claim.message.id;
    let held = (message_id, claim.token);
    let span = tracing::Span::current();
    span.record("org_id", field::display(claim.message.org_id));
    span.record("conversation_id", claim.conversation.id.map(field::display));
    let mut progress = Progress::default();
    let answered = tokio::time::timeout(
        deadlines.answer,
        answer(pipeline, db, &claim, &mut progress),
    );
    let result = isolated(async { answered.await.unwrap_or(Err(Failure::Deadline)) })
        .await
        .unwrap_or(Err(Failure::Panicked));
    let recorded = match result {
        Ok(finished) => {
            // The message answered (the turn's last), which the span's may not be.
            tracing::info!(event = "processed", %message_id, messages = claim.turn.bodies.len(), replied = finished.outbound_id.is_some(), "turn processed");
            let ledger = Some(progress.ledger).filter(|l| !l.is_empty());
            // The next turn is claimed with this finish when it still fits in time (its worst
            // case counts from this round trip, which is its claim).
            let claim_next = deadlines
                .fits(started)
                .then(|| super::claim::args(pipeline));
            finish(db, held, &Finished { ledger, ..finished }, claim_next)
                .await
                .map(|outcome| {
                    if outcome.held {
                        pipeline.backlog.forget(&claim.turn.ids);
                    }
                    outcome.next()
                })
        }
        Err(Failure::Lost) => {
            tracing::warn!(
                event = "lost",
                "the turn was claimed by another worker; nothing recorded"
            );
            return None;
        }
        Err(failure) => {
            tracing::warn!(event = "failed", error = %failure, "processing failed; dead-lettered");
            fail(db, held, &failure, progress, max_attempts)
                .await
                .map(|_| None)
        }
    };
    recorded.unwrap_or_else(|error| {
        tracing::error!(event = "failed", error = %error, "could not record the outcome; the lease will expire");
        None
    })
}

async fn answer(
    pipeline: &Pipeline,
    db: &Postgrest,
    claim: &Claim,
    progress: &mut Progress,
) -> Result<Finished, Failure> {
    let plan = decide(claim);
    progress.opt_out = plan.opt_out;
    let mut finished = Finished {
        opt_out: plan.opt_out,
        alert: plan.alert,
        ..Finished::default()
    };
    let Some(reply) = plan.reply else {
        return Ok(finished);
    };
    // Marked as read (with the typing indicator) while the reply is composed and recorded,
    // before it is sent.
    let read = async {
        if plan.mark_read {
            mark_read(pipeline, claim).await;
        }
    };
    let composed = record(
        pipeline,
        db,
        claim,
        reply,
        &mut finished.transcript,
        progress,
    );
    let ((), recorded) = tokio::join!(read, composed);
    let Some((outbound, content)) = recorded? else {
        return Ok(finished);
    };
    let to = recipient(claim)?;
    let delivered = send::send(&pipeline.whatsapp, outbound, &to, content).await?;
    finished.sent(outbound, delivered);
    Ok(finished)
}

/// Composes the reply and records it before it is sent (`whatsapp_begin_reply`: its type,
/// readable body and, for a rich reply, its content): its id and content, or `None` when it
/// was sent already. An earlier attempt's reply is rebuilt from what it recorded.
async fn record(
    pipeline: &Pipeline,
    db: &Postgrest,
    claim: &Claim,
    reply: Reply,
    transcript: &mut Option<String>,
    progress: &mut Progress,
) -> Result<Option<(Uuid, Content)>, Failure> {
    let content = match (reply, &claim.previous_reply) {
        (Reply::Fixed(text), _) => Content::Text(text),
        (Reply::Assistant { .. }, Some(previous)) => {
            Content::from_stored(previous.body.clone(), previous.rich.as_ref())?
        }
        (Reply::Assistant { ai }, None) => {
            let settings = turn_settings(claim);
            let turn = Turn {
                message: &claim.message,
                contact: &claim.contact,
                settings: &settings,
                budget: &claim.budget,
                history: &claim.history,
                key: claim.turn.first_id(),
                ai_allowed: ai,
            };
            let answer = pipeline
                .assistant
                .answer(db, &turn, &mut progress.ledger)
                .await?;
            *transcript = answer.transcript;
            answer.reply
        }
    };
    // Meta sends no interactive message to a group: a rich reply goes there as its text.
    let content = match content {
        Content::Rich(rich) if claim.conversation.group_id.is_some() => {
            Content::Text(rich.readable())
        }
        content => content,
    };
    let begun: Option<Begun> = db
        .rpc("whatsapp_begin_reply", Caller::Service)
        .args(&json!({
            "p_message_id": claim.message.id,
            "p_token": claim.token,
            "p_type": content.kind(),
            "p_body": content.readable(),
            "p_payload": content.stored(),
        }))
        .fetch()
        .await?
        .data;
    let begun = begun.ok_or(Failure::Lost)?;
    match begun.state {
        ReplyState::New => {
            progress.outbound = Some(begun.outbound_id);
            Ok(Some((begun.outbound_id, content)))
        }
        // Left unanswered for now, never sent twice: the outcome resolver confirms it by its
        // status or sends it again (jobs::outcomes), then settles this message.
        ReplyState::Sending => Err(Failure::OutcomeUnknown),
        ReplyState::Settled => Ok(None),
    }
}

/// The org's settings for this turn. In a group the person's own tools (reminders, expenses,
/// calendar) are off: what they read or change is private to the person, and the whole group
/// would see the answer.
fn turn_settings(claim: &Claim) -> std::borrow::Cow<'_, OrgSettings> {
    match claim.conversation.group_id {
        Some(_) => std::borrow::Cow::Owned(OrgSettings {
            enabled_tools: Some(Vec::new()),
            ..claim.settings.clone()
        }),
        None => std::borrow::Cow::Borrowed(&claim.settings),
    }
}

/// The contact (by phone number, else by BSUID), or the group of a group conversation, from
/// the org's number that received the message.
fn recipient(claim: &Claim) -> Result<Recipient, SendError> {
    let contact = &claim.contact;
    let group = claim.conversation.group_id.clone();
    let to = Address::of(group, contact.wa_id.clone(), contact.user_id.clone())
        .ok_or(SendError::Recipient("the contact has no number or user id"))?;
    send::recipient(
        claim.phone_number_id.clone(),
        to,
        claim.conversation.window_open,
        claim.settings.reply_template.clone(),
        &claim.settings.template_language,
    )
}

/// Not in a group: Meta does not support marking a group message as read.
async fn mark_read(pipeline: &Pipeline, claim: &Claim) {
    let Some(wamid) = &claim.message.wamid else {
        return;
    };
    if claim.conversation.group_id.is_some() {
        return;
    }
    if let Err(error) = pipeline
        .whatsapp
        .mark_read(&claim.phone_number_id, wamid)
        .await
    {
        tracing::warn!(error = %error, "mark as read failed");
    }
}

/// What `whatsapp_finish_message` answered.
#[derive(Deserialize)]
struct Outcome {
    held: bool,
    next: Option<Uuid>,
    /// The next turn, claimed with the finish (absent when not asked for, or when the claim
    /// failed: `next` is then left to claim).
    #[serde(default)]
    claim: Option<Value>,
}

impl Outcome {
    /// Where the next turn starts, if anywhere.
    fn next(self) -> Option<Start> {
        match (self.claim, self.next) {
            (Some(found), _) => Some(Start::Claimed(decode(Some(found)))),
            (None, next) => next.map(Start::Message),
        }
    }
}

/// Records the turn `(id, token)` as processed, and claims the conversation's next turn with
/// `claim_next` ([`super::claim::args`]) if given.
async fn finish(
    db: &Postgrest,
    (id, token): (Uuid, Uuid),
    finished: &Finished,
    claim_next: Option<Value>,
) -> Result<Outcome, DbError> {
    let outcome: Outcome = db
        .rpc("whatsapp_finish_message", Caller::Service)
        .args(
            &json!({"p_message_id": id, "p_token": token, "p_result": finished,
                      "p_claim": claim_next}),
        )
        .fetch()
        .await?
        .data;
    if !outcome.held {
        tracing::warn!(
            event = "lost",
            "the turn was claimed by another worker; its finish was refused"
        );
    }
    Ok(outcome)
}

/// Records the turn `(id, token)` as failed (refused, and logged, when the token no longer
/// holds it).
async fn fail(
    db: &Postgrest,
    (id, token): (Uuid, Uuid),
    failure: &Failure,
    progress: Progress,
    max_attempts: u32,
) -> Result<(), DbError> {
    let alert = matches!(failure, Failure::Send(e) if e.token_expired())
        .then_some(Alert(AlertKind::WhatsappTokenExpired));
    // A send that may have reached Meta leaves its reply `sending`: a retry then refuses to
    // send it again, and the outcome resolver settles it (jobs::outcomes).
    let outbound = progress.outbound.filter(|_| !failure.maybe_sent());
    let ledger = Some(progress.ledger).filter(|l| !l.is_empty());
    let held: bool = db
        .rpc("whatsapp_fail_message", Caller::Service)
        .args(&json!({
            "p_message_id": id,
            "p_token": token,
            "p_error": failure.to_string(),
            "p_outbound_id": outbound,
            "p_alert": alert,
            "p_ledger": ledger,
            "p_opt_out": progress.opt_out,
            "p_max_attempts": max_attempts,
        }))
        .fetch()
        .await?
        .data;
    if !held {
        tracing::warn!(
            event = "lost",
            "the turn was claimed by another worker; its failure was refused"
        );
    }
    Ok(())
}
