//! Deliveries to `/api/webhook`: Meta's documented payloads rewritten for a test's own org and
//! contact, signed with the app secret.

use serde_json::{json, Value};

use super::app::APP_SECRET;
use super::db::TestOrg;
use super::fixtures::fixture;
use super::lib::sign_whatsapp;
use super::unique;

/// Rewrites a documented payload for `org`: every message from `wa_id` with a fresh wamid,
/// sent `age_secs` ago; returns it with the wamids.
pub fn personalize(
    mut payload: Value,
    org: &TestOrg,
    wa_id: &str,
    age_secs: i64,
) -> (Value, Vec<String>) {
    let now = chrono::Utc::now().timestamp() - age_secs;
    let mut wamids = Vec::new();
    for entry in payload["entry"].as_array_mut().into_iter().flatten() {
        for change in entry["changes"].as_array_mut().into_iter().flatten() {
            let value = &mut change["value"];
            value["metadata"]["phone_number_id"] = json!(org.phone_number_id);
            for contact in value["contacts"].as_array_mut().into_iter().flatten() {
                contact["wa_id"] = json!(wa_id);
            }
            for message in value["messages"].as_array_mut().into_iter().flatten() {
                let wamid = new_wamid();
                message["id"] = json!(wamid);
                message["from"] = json!(wa_id);
                message["timestamp"] = json!(now.to_string());
                wamids.push(wamid);
            }
        }
    }
    (payload, wamids)
}

/// A fresh inbound wamid.
pub fn new_wamid() -> String {
    format!("wamid.test.{}", unique())
}

/// A text message delivery for `org` from `wa_id`; returns the body and the wamid.
pub fn text_delivery(org: &TestOrg, wa_id: &str, text: &str) -> (Vec<u8>, String) {
    let mut payload = fixture("text.json");
    payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = json!(text);
    let (payload, wamids) = personalize(payload, org, wa_id, 0);
    (
        serde_json::to_vec(&payload).expect("json"),
        wamids[0].clone(),
    )
}

/// A status update of `org`'s outbound message `wamid`, from the documented `file`.
pub fn status_delivery(file: &str, org: &TestOrg, wamid: &str) -> Vec<u8> {
    let mut payload = fixture(file);
    let value = &mut payload["entry"][0]["changes"][0]["value"];
    value["metadata"]["phone_number_id"] = json!(org.phone_number_id);
    value["statuses"][0]["id"] = json!(wamid);
    serde_json::to_vec(&payload).expect("json")
}

/// Meta's `X-Hub-Signature-256` of `body` with the app secret.
pub fn signature(body: &[u8]) -> String {
    sign_whatsapp(APP_SECRET.as_bytes(), body)
}

/// A status (from the documented `file`) of the part `wamid` of `org`'s outbound message,
/// echoing `callback` as its `biz_opaque_callback_data` when given.
pub fn status_of(file: &str, org: &TestOrg, wamid: &str, callback: Option<&str>) -> Vec<u8> {
    let mut payload: Value =
        serde_json::from_slice(&status_delivery(file, org, wamid)).expect("json");
    if let Some(callback) = callback {
        payload["entry"][0]["changes"][0]["value"]["statuses"][0]["biz_opaque_callback_data"] =
            json!(callback);
    }
    serde_json::to_vec(&payload).expect("json")
}
