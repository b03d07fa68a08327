//! A turn's ledger: one `ai_requests` row per provider attempt (failed ones included) and one
//! `tool_executions` row per tool run. It travels with the message's outcome and is written by
//! `whatsapp_finish_message` or `whatsapp_fail_message` in the same round trip; rows carry ids
//! chosen here, so writing a ledger twice adds nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use uuid::Uuid;

/// Everything a turn spent and did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Ledger {
    pub ai_requests: Vec<AiRequest>,
    pub tool_executions: Vec<ToolExecution>,
}

/// Outcome of one provider attempt (the `ai_requests.status` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    Success,
    Error,
    Timeout,
}

/// One provider attempt.
#[derive(Clone, Debug, Serialize)]
pub struct AiRequest {
    pub id: Uuid,
    pub provider: &'static str,
    pub model: String,
    pub tokens_in: u64,
    pub tokens_out: u64,
    pub tokens_cached: u64,
    pub cost_usd: f64,
    pub latency_ms: u64,
    pub status: AttemptStatus,
    pub error: Option<String>,
    /// When the attempt started (`created_at`).
    pub at: DateTime<Utc>,
}

/// One tool run.
#[derive(Clone, Debug, Serialize)]
pub struct ToolExecution {
    pub id: Uuid,
    /// The attempt whose answer asked for it; `None` for the command parser.
    pub ai_request_id: Option<Uuid>,
    pub tool: String,
    pub input: Value,
    pub output: Option<Value>,
    pub status: &'static str,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// When the tool started (`created_at`).
    pub at: DateTime<Utc>,
}

impl Ledger {
    /// Tokens (in and out) spent so far in this turn.
    pub fn tokens(&self) -> u64 {
        self.ai_requests
            .iter()
            .map(|r| r.tokens_in.saturating_add(r.tokens_out))
            .fold(0, u64::saturating_add)
    }

    pub fn is_empty(&self) -> bool {
        self.ai_requests.is_empty() && self.tool_executions.is_empty()
    }
}
