//! Conversations: the inbox, one conversation with its messages, bot <-> human handoff, and
//! staff replies ([`reply`]).
//!
//! - `GET /api/admin/conversations?org_id=&mode=&contact_id=&limit=&cursor=`: newest activity
//!   first (`conversation_summaries`, under RLS). Any member.
//! - `GET /api/admin/conversations/[id]?limit=&cursor=`: the conversation and its messages,
//!   newest first. Any member.
//! - `POST /api/admin/conversations/[id]/handoff` `{"mode": "human"|"bot"}`: owners and admins
//!   (`admin_set_conversation_mode`, audited `conversation.handoff`).
//! - `POST /api/admin/conversations/[id]/messages` `{"text": …}`: see [`reply`].

mod reply;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{ok, rows, serve, Admin, Page};
use crate::domain::ConversationMode;
use crate::error::ApiError;
use crate::host::{HandlerResult, Route};

pub use reply::MESSAGES;

pub const LIST: Route = Route {
    source: "api/admin/conversations.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["GET"], |a| Box::pin(list(a)))),
};

pub const ONE: Route = Route {
    source: "api/admin/conversations/[id].rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["GET"], |a| Box::pin(one(a)))),
};

pub const HANDOFF: Route = Route {
    source: "api/admin/conversations/[id]/handoff.rs",
    handler: |request, ctx| Box::pin(serve(request, ctx, &["POST"], |a| Box::pin(handoff(a)))),
};

const CONVERSATION_COLUMNS: &str =
    "id,org_id,contact_id,contact_name,contact_wa_id,contact_username,\
    contact_opted_out,group_id,mode,last_inbound_at,last_message_at,window_open,window_expires_at,\
    activity_at,created_at";

const MESSAGE_COLUMNS: &str =
    "id,direction,type,body,status,error,wa_message_id,reply_to,created_at,status_at,reaction";

async fn list(admin: Admin) -> HandlerResult {
    let params = admin.params();
    let page = Page::from_params(&params)?;
    let mut query = admin
        .from("conversation_summaries")?
        .select(CONVERSATION_COLUMNS);
    if let Some(org) = params.optional_id("org_id")? {
        query = query.eq("org_id", org);
    }
    if let Some(contact) = params.optional_id("contact_id")? {
        query = query.eq("contact_id", contact);
    }
    if let Some(mode) = params.one_of("mode", &["bot", "human"])? {
        query = query.eq("mode", mode);
    }
    let found = rows(page.apply(query, "activity_at")).await?;
    ok(&page.listing(found, "activity_at"))
}

async fn one(admin: Admin) -> HandlerResult {
    let params = admin.params();
    let id = params.id("id")?;
    let page = Page::from_params(&params)?;
    let conversation = admin
        .from("conversation_summaries")?
        .select(CONVERSATION_COLUMNS)
        .eq("id", id);
    let messages = admin
        .from("messages")?
        .select(MESSAGE_COLUMNS)
        .eq("conversation_id", id);
    let (conversation, messages) = futures_util::future::try_join(
        rows(conversation),
        rows(page.apply(messages, "created_at")),
    )
    .await?;
    let conversation = conversation.into_iter().next().ok_or(ApiError::NotFound)?;
    let messages = page.listing(messages, "created_at");
    ok(&json!({
        "conversation": conversation,
        "messages": messages.data,
        "next_cursor": messages.next_cursor,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Handoff {
    mode: ConversationMode,
}

async fn handoff(admin: Admin) -> HandlerResult {
    let id = admin.params().id("id")?;
    let Handoff { mode } = admin.body()?;
    let conversation: Value = admin
        .rpc(
            "admin_set_conversation_mode",
            &json!({"p_conversation_id": id, "p_mode": mode}),
        )
        .await?;
    ok(&conversation)
}
