//! `whatsapp_claim_message`: a conversation's next turn claimed with a lease and a token (one
//! turn at a time per conversation: every unanswered message of it, answered together), with
//! everything needed to answer it, decoded once into domain types.

use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::Pipeline;
use crate::assistant::turn::{Budget, ClaimedMessage, Contact, HistoryItem, OrgSettings};
use crate::domain::{ConversationMode, GroupId, MessageKind, PhoneNumberId};
use crate::supabase::{Caller, DbError, Postgrest};

/// A claimed turn: its token, its last message (the one the reply answers) and all its
/// messages, with the contact, conversation, the org's settings, the rate-limit count, the
/// token use and the recent conversation.
#[derive(Debug, Deserialize)]
pub struct Claim {
    /// Only the holder of this token may begin, finish or fail the turn.
    pub token: Uuid,
    pub message: ClaimedMessage,
    pub turn: TurnMessages,
    pub contact: Contact,
    pub conversation: ClaimedConversation,
    pub phone_number_id: PhoneNumberId,
    pub settings: OrgSettings,
    pub rate_limit: RateLimit,
    pub budget: Budget,
    #[serde(default)]
    pub history: Vec<HistoryItem>,
    /// The reply an earlier attempt composed but could not send: sent again as it is (the
    /// same text or rich reply), so a retry never runs the assistant's tools twice.
    #[serde(default)]
    pub previous_reply: Option<PreviousReply>,
}

/// A reply as `whatsapp_begin_reply` recorded it: its readable body and, for a rich reply,
/// its content (`payload.rich`).
#[derive(Debug, Deserialize)]
pub struct PreviousReply {
    pub body: Option<String>,
    #[serde(default)]
    pub rich: Option<Value>,
}

/// The messages of a turn, oldest first.
#[derive(Debug, Deserialize)]
pub struct TurnMessages {
    /// Every message of the turn (at least one).
    pub ids: Vec<Uuid>,
    pub bodies: Vec<TurnBody>,
}

impl TurnMessages {
    /// The first one: the key of the turn's tool calls (the same in every retry of the turn).
    pub fn first_id(&self) -> Uuid {
        self.ids[0]
    }
}

/// One message of a turn, as far as the decision reads it.
#[derive(Debug, Deserialize)]
pub struct TurnBody {
    #[serde(rename = "type")]
    pub kind: MessageKind,
    pub body: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct ClaimedConversation {
    /// For the turn's span only (absent: not logged).
    #[serde(default)]
    pub id: Option<Uuid>,
    pub mode: ConversationMode,
    pub window_open: bool,
    /// A group conversation's group: its replies go to the group, never to the person.
    #[serde(default)]
    pub group_id: Option<GroupId>,
}

/// The number of the turn's first message in its contact's rate-limit window (counted once,
/// when stored), and the org's limit.
#[derive(Debug, Deserialize)]
pub struct RateLimit {
    pub limit: i64,
    pub hits: i64,
}

/// The most messages answered together in one turn (the rest wait for the next one).
const TURN_LIMIT: usize = 20;

/// What identifies a claimed turn, read even when the rest does not decode.
#[derive(Deserialize)]
struct Held {
    token: Uuid,
    message: HeldMessage,
}

#[derive(Deserialize)]
struct HeldMessage {
    id: Uuid,
}

/// What a claim attempt found.
pub enum Claimed {
    /// Claimed by this worker.
    Claim(Box<Claim>),
    /// Claimed, but the stored rows do not decode: the turn (its last message and token) fails
    /// on its own.
    Undecodable(serde_json::Error, (Uuid, Uuid)),
    /// Processed already, its conversation busy (another turn, or a reply whose outcome is
    /// unknown), or discarded (past its last attempt).
    Unavailable,
}

/// Claims the turn of `id`'s conversation for `PROCESSING_LEASE_SECONDS`; each claim counts an
/// attempt of each message, and a message claimed `MAX_ATTEMPTS` times already is discarded
/// instead.
pub async fn claim(pipeline: &Pipeline, db: &Postgrest, id: Uuid) -> Result<Claimed, DbError> {
    let mut args = args(pipeline);
    args["p_message_id"] = json!(id);
    let found: Option<Value> = db
        .rpc("whatsapp_claim_message", Caller::Service)
        .args(&args)
        .fetch()
        .await?
        .data;
    Ok(decode(found))
}

/// `whatsapp_claim_message`'s arguments but the message: also what `whatsapp_finish_message`
/// claims the conversation's next turn with.
pub fn args(pipeline: &Pipeline) -> Value {
    json!({
        "p_lease_seconds": pipeline.settings.lease.as_secs(),
        "p_history": pipeline.assistant.history_messages(),
        "p_max_attempts": pipeline.settings.max_attempts,
        "p_turn_limit": TURN_LIMIT,
    })
}

/// What `whatsapp_claim_message` returned, decoded.
pub fn decode(found: Option<Value>) -> Claimed {
    let Some(found) = found else {
        return Claimed::Unavailable;
    };
    let error = match Claim::deserialize(&found) {
        Ok(claim) => return Claimed::Claim(Box::new(claim)),
        Err(error) => error,
    };
    match Held::deserialize(&found) {
        Ok(held) => Claimed::Undecodable(error, (held.message.id, held.token)),
        // Without its token the turn cannot be recorded: its lease decides.
        Err(_) => {
            tracing::error!(error = %error, "a claimed turn without its token");
            Claimed::Unavailable
        }
    }
}
