//! `/api/webhook`: handshake, signatures, every message type, durable deduplicated ingest, and
//! background processing against the real database with the Graph API faked.

use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::lib::escape_non_ascii;
use crate::helpers::*;

/// An app whose Graph API is `graph`, and a fresh org.
async fn app_with_graph(graph: &wiremock::MockServer) -> (TestApp, TestOrg) {
    app_with_graph_and(graph, &[]).await
}

/// An app whose Graph API is `graph` with `vars` on top, and a fresh org.
async fn app_with_graph_and(
    graph: &wiremock::MockServer,
    vars: &[(&str, &str)],
) -> (TestApp, TestOrg) {
    let app = spawn_app_with_graph(graph, vars).await;
    let org = TestOrg::create(app.db()).await;
    (app, org)
}

/// An app without a Graph API token (replies are simulated), and a fresh org.
async fn app_and_org() -> (TestApp, TestOrg) {
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    (app, org)
}

/// A fake Graph API that accepts every send, an app sending through it, and a fresh org.
async fn ok_graph_app() -> (wiremock::MockServer, TestApp, TestOrg) {
    let graph = fake_graph(FakeGraph::ok()).await;
    let (app, org) = app_with_graph(&graph).await;
    (graph, app, org)
}

#[tokio::test]
async fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
    let app = spawn_app().await;
    let ok = app.get_webhook_handshake("subscribe", VERIFY_TOKEN).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/plain");
    assert_eq!(ok.text().await.expect("text"), "1158201444");

    for (mode, token) in [
        ("subscribe", "wrong-token"),
        ("unsubscribe", VERIFY_TOKEN),
        ("subscribe", ""),
    ] {
        let refused = app.get_webhook_handshake(mode, token).await;
        assert_eq!(refused.status(), 403, "{mode} {token}");
    }
}

#[tokio::test]
async fn signatures_missing_malformed_or_over_a_tampered_body_get_401() {
    let (app, org) = app_and_org().await;
    let (body, wamid) = text_delivery(&org, &new_wa_id(), "hello");
    let mut tampered = body.clone();
    let at = tampered.len() - 10;
    tampered[at] ^= 1;
    let cases = [
        (None, body.clone()),
        (Some("sha1=abc".to_string()), body.clone()),
        (Some("sha256=nothex".to_string()), body.clone()),
        (Some(signature(&body)), tampered),
    ];
    for (header, payload) in cases {
        let response = app.post_webhook_signed(payload, header.clone()).await;
        assert_eq!(response.status(), 401, "{header:?}");
        let error: Value = response.json().await.expect("json");
        assert_eq!(error["error"]["code"], "unauthorized");
    }
    assert!(messages_with_wamid(app.db(), &wamid).await.is_empty());

    let signed = signature(&body);
    assert_eq!(
        app.post_webhook_signed(body, Some(signed)).await.status(),
        200
    );
}

#[tokio::test]
async fn non_ascii_bodies_verify_against_metas_escaped_signature() {
    let (_graph, app, org) = ok_graph_app().await;
    let (payload, wamids) = personalize(fixture("non_ascii_text.json"), &org, &new_wa_id(), 0);
    let raw = serde_json::to_string(&payload).expect("json");
    assert!(!raw.is_ascii());
    // Meta signs the escaped form but sends the raw UTF-8 bytes.
    let meta_signature = signature(escape_non_ascii(&raw).as_bytes());
    let response = app
        .post_webhook_signed(raw.clone(), Some(meta_signature))
        .await;
    assert_eq!(response.status(), 200);
    let stored = app.processed(&wamids[0]).await;
    let text = payload["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"].as_str();
    assert_eq!(stored["body"].as_str(), text, "stored as sent, not escaped");
}

#[tokio::test]
async fn every_documented_message_type_is_stored_and_unknown_types_never_fail_a_batch() {
    let (_graph, app, org) = ok_graph_app().await;
    let cases = [
        (
            "text.json",
            "text",
            Some("Remind me to pay the electricity bill on Friday"),
        ),
        ("interactive_button_reply.json", "interactive", None),
        ("interactive_list_reply.json", "interactive", None),
        ("button.json", "button", None),
        ("reaction.json", "reaction", None),
        ("location.json", "location", None),
        ("contacts.json", "contacts", None),
        ("image.json", "image", None),
        ("audio_voice.json", "audio", None),
        ("video.json", "video", None),
        ("document.json", "document", None),
        ("sticker.json", "sticker", None),
        ("unsupported.json", "unsupported", None),
        ("unknown_type.json", "unsupported", None),
    ];
    for (file, kind, body) in cases {
        let (payload, wamids) = personalize(fixture(file), &org, &new_wa_id(), 0);
        let response = app.post_webhook_json(&payload).await;
        assert_eq!(response.status(), 200, "{file}");
        let stored = app.processed(&wamids[0]).await;
        assert_eq!(stored["type"], kind, "{file}");
        assert_eq!(stored["direction"], "inbound");
        assert_eq!(
            stored["payload"]["id"],
            wamids[0].as_str(),
            "{file}: raw message kept"
        );
        if let Some(body) = body {
            assert_eq!(stored["body"], body);
        }
        if ["interactive", "button", "location", "contacts"].contains(&kind) {
            assert!(
                stored["body"].as_str().is_some_and(|b| !b.is_empty()),
                "{file}: readable body"
            );
        }
        assert_eq!(stored["status"], "processed", "{file}");
    }
}

#[tokio::test]
async fn a_batch_of_three_messages_and_two_statuses_is_stored_whole() {
    let (_graph, app, org) = ok_graph_app().await;
    let db = app.db();
    let mut payload = fixture("batch_3_messages_2_statuses.json");
    // Two senders: rewrite each contact's messages to a fresh wa_id of this test.
    let (first, second) = (new_wa_id(), new_wa_id());
    let fresh = |sender: &Value| {
        json!(if *sender == "15550001111" {
            &first
        } else {
            &second
        })
    };
    for entry in payload["entry"].as_array_mut().expect("entries") {
        for change in entry["changes"].as_array_mut().expect("changes") {
            let value = &mut change["value"];
            value["metadata"]["phone_number_id"] = json!(org.phone_number_id);
            for item in value["contacts"].as_array_mut().into_iter().flatten() {
                item["wa_id"] = fresh(&item["wa_id"]);
            }
            for message in value["messages"].as_array_mut().into_iter().flatten() {
                message["from"] = fresh(&message["from"]);
                message["id"] = json!(new_wamid());
                message["timestamp"] = json!(chrono::Utc::now().timestamp().to_string());
            }
        }
    }
    // The two statuses are for outbound messages this org sent earlier.
    let statuses = payload["entry"][1]["changes"][1]["value"]["statuses"]
        .as_array_mut()
        .expect("statuses");
    let mut outbound = Vec::new();
    for status in statuses.iter_mut() {
        let wamid = format!("wamid.out.{}", unique());
        status["id"] = json!(wamid);
        outbound.push((
            wamid,
            status["status"].as_str().expect("status").to_string(),
        ));
    }
    let (seed, _) = personalize(fixture("text.json"), &org, &first, 0);
    app.post_webhook_json(&seed).await;
    let contact = &org.rows(db, "contacts", &[("wa_id", eq(&first))]).await[0];
    let contact_id = contact["id"].as_str().unwrap();
    let conversation = &select(db, "conversations", &[("contact_id", eq(contact_id))]).await[0];
    for (wamid, _) in &outbound {
        insert(db, "messages", json!({
            "org_id": org.id, "conversation_id": conversation["id"], "contact_id": contact["id"],
            "direction": "outbound", "wa_message_id": wamid, "type": "text", "status": "sent",
        }))
        .await;
    }

    let response = app.post_webhook_json(&payload).await;
    let status = response.status();
    let answer: Value = response.json().await.expect("json");
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["received"], 3);
    assert_eq!(answer["new"], 3);
    assert_eq!(answer["statuses_applied"], 2);
    for (wamid, status) in &outbound {
        let row = &messages_with_wamid(db, wamid).await[0];
        assert_eq!(row["status"].as_str(), Some(status.as_str()));
    }
    let stored = org
        .rows(db, "messages", &[("direction", eq("inbound"))])
        .await;
    assert_eq!(stored.len(), 4, "the seed message and the batch's three");
}

#[tokio::test]
async fn statuses_never_regress_and_failures_keep_their_error() {
    let (_graph, app, org) = ok_graph_app().await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let reply = app.reply_to(&wamid).await.expect("reply");
    let reply_wamid = reply["wa_message_id"]
        .as_str()
        .expect("sent wamid")
        .to_string();

    let status = |file: &str| status_delivery(file, &org, &reply_wamid);
    let current = || async { messages_with_wamid(app.db(), &reply_wamid).await[0].clone() };
    app.post_webhook(&status("status_read.json")).await;
    assert_eq!(current().await["status"], "read");
    app.post_webhook(&status("status_delivered.json")).await;
    assert_eq!(
        current().await["status"],
        "read",
        "read never goes back to delivered"
    );
    app.post_webhook(&status("status_failed.json")).await;
    assert_eq!(current().await["status"], "read");
}

#[tokio::test]
async fn fifty_concurrent_identical_deliveries_store_one_message_and_send_one_reply() {
    let (graph, app, org) = ok_graph_app().await;
    let (body, wamid) = text_delivery(&org, &new_wa_id(), "hello once");
    let deliveries = (0..50).map(|_| app.post_webhook(&body));
    for response in futures_util::future::join_all(deliveries).await {
        let status = response.status();
        assert_eq!(status, 200, "{}", response.text().await.unwrap_or_default());
    }
    app.processed(&wamid).await;
    let db = app.db();
    assert_eq!(messages_with_wamid(db, &wamid).await.len(), 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let texts = sends(&graph, "text").await;
    assert_eq!(texts.len(), 1, "exactly one reply sent");
    let replies = org
        .rows(db, "messages", &[("direction", eq("outbound"))])
        .await;
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0]["status"], "sent");
    let webhooks = org.rows(db, "webhooks", &[]).await;
    assert_eq!(webhooks.len(), 1, "one delivery row");
    assert_eq!(webhooks[0]["attempts"], 50);
}

#[tokio::test]
async fn database_down_answers_503_and_the_redelivery_is_stored_and_answered_once() {
    let (graph, app, org) = ok_graph_app().await;
    let (body, wamid) = text_delivery(&org, &new_wa_id(), "are you there?");
    let down = spawn_app_with_graph(&graph, &[("POSTGREST_URL", NO_DATABASE)]).await;
    let response = down.post_webhook(&body).await;
    assert_eq!(response.status(), 503, "Meta must redeliver");

    for _ in 0..2 {
        assert_eq!(app.post_webhook(&body).await.status(), 200);
    }
    let reply = app.reply_to(&wamid).await.expect("answered");
    assert_eq!(reply["status"], "sent");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(sends(&graph, "text").await.len(), 1, "answered once");
}

#[tokio::test]
async fn outside_the_window_the_reply_is_the_approved_template() {
    let (graph, app, org) = ok_graph_app().await;
    let (payload, wamids) = personalize(fixture("text.json"), &org, &new_wa_id(), 25 * 3600);
    app.post_webhook_json(&payload).await;
    let reply = app.reply_to(&wamids[0]).await.expect("reply");
    assert_eq!(reply["type"], "template");
    assert!(
        sends(&graph, "text").await.is_empty(),
        "no freeform outside the window"
    );
    let templates = sends(&graph, "template").await;
    assert_eq!(templates.len(), 1);
    assert_eq!(templates[0]["template"]["name"], "assistant_reply");
    assert_eq!(templates[0]["template"]["language"]["code"], "en_US");
    assert!(templates[0]["template"]["components"][0]["parameters"][0]["text"].is_string());
}

#[tokio::test]
async fn graph_error_131047_falls_back_to_the_template() {
    let graph = fake_graph(FakeGraph {
        text_error: Some(graph_error("error_131047")),
        error: None,
    })
    .await;
    let (app, org) = app_with_graph(&graph).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let reply = app.reply_to(&wamid).await.expect("reply");
    assert_eq!(reply["type"], "template");
    assert_eq!(reply["status"], "sent");
    assert_eq!(sends(&graph, "text").await.len(), 1);
    assert_eq!(sends(&graph, "template").await.len(), 1);
}

#[tokio::test]
async fn throttling_is_retried_and_an_expired_token_raises_an_alert() {
    let graph = fake_graph(FakeGraph::failing(400, "error_190")).await;
    let (app, org) = app_with_graph(&graph).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    assert_eq!(app.processed(&wamid).await["status"], "failed");
    let alerts = org.rows(app.db(), "alerts", &[]).await;
    assert!(
        alerts.iter().any(|a| a["kind"] == "whatsapp_token_expired"),
        "{alerts:?}"
    );

    let throttled = fake_graph(FakeGraph::failing(429, "error_130429")).await;
    let (app, org) = app_with_graph(&throttled).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    assert_eq!(app.processed(&wamid).await["status"], "failed");
    assert_eq!(
        sends(&throttled, "text").await.len(),
        3,
        "three tries with backoff"
    );
}

#[tokio::test]
async fn a_failure_parks_the_message_in_the_dead_letter_queue() {
    let graph = fake_graph(FakeGraph::failing(400, "error_131026")).await;
    let (app, org) = app_with_graph(&graph).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let message = app.processed(&wamid).await;
    assert_eq!(message["status"], "failed");
    assert!(has_text(&message["error"]["message"], "131026"));
    let id = message["id"].as_str().expect("id");
    let dead = dead_letters(app.db(), id).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0]["kind"], "inbound_message");
    assert_eq!(dead[0]["status"], "pending");
    assert_eq!(dead[0]["attempts"], 1);
    let next: chrono::DateTime<chrono::Utc> = dead[0]["next_attempt_at"]
        .as_str()
        .expect("time")
        .parse()
        .expect("timestamp");
    assert!(next > chrono::Utc::now(), "retried later, with backoff");
    let reply = app.reply_to(&wamid).await.expect("reply row");
    assert_eq!(
        reply["status"], "failed",
        "known not sent, so a retry may send it"
    );
}

#[tokio::test]
async fn past_the_rate_limit_one_notice_then_silence() {
    let (_graph, app, org) = ok_graph_app().await;
    org.update(
        app.db(),
        "assistant_settings",
        json!({"rate_limit_per_minute": 2}),
    )
    .await;
    let contact = new_wa_id();
    let mut replies = Vec::new();
    for n in 0..4 {
        let wamid = app.post_text(&org, &contact, &format!("message {n}")).await;
        replies.push(app.reply_to(&wamid).await);
    }
    assert!(replies[0].is_some() && replies[1].is_some());
    let notice = replies[2]
        .as_ref()
        .expect("a notice at the first message over the limit");
    assert!(has_text(&notice["body"], "quickly"));
    assert!(replies[3].is_none(), "no notice per message");
}

#[tokio::test]
async fn stop_and_start_are_honoured() {
    let (_graph, app, org) = ok_graph_app().await;
    let contact = new_wa_id();
    let opted_out = || async {
        org.rows(app.db(), "contacts", &[("wa_id", eq(&contact))])
            .await[0]["opted_out"]
            .clone()
    };
    let wamid = app.post_text(&org, &contact, "STOP").await;
    assert!(app.reply_to(&wamid).await.is_some(), "one confirmation");
    assert_eq!(opted_out().await, true);

    let wamid = app.post_text(&org, &contact, "hello?").await;
    assert!(
        app.reply_to(&wamid).await.is_none(),
        "no messages after STOP"
    );

    let wamid = app.post_text(&org, &contact, "start").await;
    assert!(app.reply_to(&wamid).await.is_some());
    assert_eq!(opted_out().await, false);
}

#[tokio::test]
async fn a_spanish_contact_of_an_english_org_gets_the_stop_confirmation_in_spanish() {
    let (_graph, app, org) = ok_graph_app().await;
    let settings = org.rows(app.db(), "assistant_settings", &[]).await;
    assert_eq!(settings[0]["language"], "en", "an English org");
    let contact = new_wa_id();
    insert(
        app.db(),
        "contacts",
        json!({"org_id": org.id, "wa_id": contact, "locale": "es-MX"}),
    )
    .await;
    let wamid = app.post_text(&org, &contact, "STOP").await;
    let confirmation = app.reply_to(&wamid).await.expect("one confirmation");
    assert!(
        has_text(&confirmation["body"], "No recibirás más mensajes"),
        "{confirmation}"
    );
    let wamid = app.post_text(&org, &contact, "START").await;
    let welcome = app.reply_to(&wamid).await.expect("one welcome");
    assert!(has_text(&welcome["body"], "Bienvenido"), "{welcome}");
}

#[tokio::test]
async fn human_mode_conversations_are_not_answered() {
    let (_graph, app, org) = ok_graph_app().await;
    let contact = new_wa_id();
    let wamid = app.post_text(&org, &contact, "hi").await;
    app.processed(&wamid).await;
    org.update(app.db(), "conversations", json!({"mode": "human"}))
        .await;
    let wamid = app.post_text(&org, &contact, "I want a person").await;
    assert!(app.reply_to(&wamid).await.is_none());
}

#[tokio::test]
async fn an_exhausted_budget_leaves_the_command_parser_and_raises_an_alert() {
    let (_graph, app, org) = ok_graph_app().await;
    let db = app.db();
    org.update(db, "orgs", json!({"monthly_token_budget": 0}))
        .await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let reply = app.reply_to(&wamid).await.expect("notice");
    assert!(has_text(&reply["body"], "only handle simple commands"));
    assert_eq!(alert_count(db, &org.id, "budget_exhausted").await, 1);
}

#[tokio::test]
async fn without_an_access_token_replies_are_recorded_as_simulated() {
    let (app, org) = app_and_org().await;
    let (body, wamid) = text_delivery(&org, &new_wa_id(), "hello");
    assert_eq!(app.post_webhook(&body).await.status(), 200);
    let reply = app.reply_to(&wamid).await.expect("reply");
    assert_eq!(reply["status"], "simulated");
    assert!(
        has_text(&reply["body"], "remind me"),
        "without an AI key the built-in commands are offered: {reply}"
    );
}

#[tokio::test]
async fn unknown_numbers_are_recorded_and_ignored_and_bad_json_is_400() {
    let app = spawn_app().await;
    let ghost = TestOrg {
        id: String::new(),
        phone_number_id: "123456789".into(),
    };
    let (body, wamid) = text_delivery(&ghost, &new_wa_id(), "hello");
    assert_eq!(app.post_webhook(&body).await.status(), 200);
    assert!(messages_with_wamid(app.db(), &wamid).await.is_empty());

    let response = app.post_webhook(b"{not json").await;
    assert_eq!(response.status(), 400);
    let response = app.post_webhook(br#"{"object":"page","entry":[]}"#).await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn a_full_backlog_leaves_messages_stored_for_the_cron_without_slowing_acks() {
    let graph = fake_graph_with_delay(FakeGraph::ok(), Duration::from_millis(500)).await;
    let (app, org) = app_with_graph_and(
        &graph,
        &[("WEBHOOK_MAX_BACKLOG", "1"), ("WEBHOOK_CONCURRENCY", "1")],
    )
    .await;
    let bodies: Vec<(Vec<u8>, String)> = (0..20)
        .map(|n| text_delivery(&org, &new_wa_id(), &format!("m{n}")))
        .collect();
    let acks =
        futures_util::future::join_all(bodies.iter().map(|(body, _)| app.post_webhook(body))).await;
    assert!(
        acks.iter().all(|r| r.status() == 200),
        "every delivery acknowledged"
    );

    let inbound = || async {
        org.rows(app.db(), "messages", &[("direction", eq("inbound"))])
            .await
    };
    assert_eq!(inbound().await.len(), 20, "every message stored");
    let left = |rows: &[Value]| rows.iter().filter(|m| m["status"] == "received").count();
    assert!(
        left(&inbound().await) >= 10,
        "most wait in the database, not in memory"
    );
    // The worker finishes what it took; the rest stays stored for the retry cron.
    let mut settled = inbound().await;
    for _ in 0..100 {
        if settled.iter().all(|m| m["status"] != "processing") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        settled = inbound().await;
    }
    assert!(settled.iter().all(|m| m["status"] != "processing"));
    assert!(left(&settled) >= 10);
}

#[tokio::test]
async fn a_reply_that_may_have_reached_meta_is_never_sent_again() {
    let graph = fake_graph_with_delay(FakeGraph::ok(), Duration::from_millis(1500)).await;
    let (app, org) = app_with_graph_and(&graph, &[("GRAPH_TIMEOUT_MS", "200")]).await;
    let wamid = app.post_text(&org, &new_wa_id(), "hello").await;
    let message = app.processed(&wamid).await;
    assert_eq!(message["status"], "failed", "the send timed out");
    let reply = app.reply_to(&wamid).await.expect("reply row");
    assert_eq!(
        reply["status"], "sending",
        "outcome unknown: not marked as known-not-sent"
    );

    // The retry cron re-drives the dead letter: the conversation waits until the outcome is
    // known (no new turn while a reply is `sending`), and the reply never goes out twice (the
    // outcome resolver settles it: tests/api/outcomes.rs).
    app.reprocess(message["id"].as_str().expect("id")).await;
    assert_eq!(app.processed(&wamid).await["status"], "failed");
    tokio::time::sleep(Duration::from_millis(1600)).await;
    assert_eq!(sends(&graph, "text").await.len(), 1, "sent at most once");
}

#[tokio::test]
async fn a_long_reply_whose_second_part_fails_is_never_resent() {
    let graph = fake_graph_with(FirstTextOnly {
        texts: Default::default(),
        error: graph_error("error_130429"),
    })
    .await;
    // The model answers with more than 4096 characters: a reply in two parts.
    let model = Script::new(vec![openai_text(&"word ".repeat(900), 10, 900, 0)]);
    let openai = fake_openai(&model).await;
    let (app, org) = app_with_ai_and_graph(&openai, &graph).await;
    let wamid = app
        .post_text(&org, &new_wa_id(), "tell me a very long story")
        .await;
    let message = app.processed(&wamid).await;
    assert_eq!(message["status"], "failed");
    assert!(has_text(&message["error"]["message"], "sent 1 part"));
    let reply = app.reply_to(&wamid).await.expect("reply row");
    assert_eq!(
        reply["status"], "sending",
        "part of it went out: outcome unknown"
    );
    app.reprocess(message["id"].as_str().expect("id")).await;
    assert_eq!(
        sends(&graph, "text").await.len(),
        2,
        "part 1 once, part 2 tried once, no resend"
    );
}

#[tokio::test]
async fn stop_counts_even_when_the_confirmation_cannot_be_sent_or_staff_are_answering() {
    let graph = fake_graph(FakeGraph::failing(401, "error_190")).await;
    let (app, org) = app_with_graph(&graph).await;
    let db = app.db();
    let opted_out = |wa_id: &str| {
        let filters = [("wa_id", eq(wa_id))];
        let org = &org;
        async move { org.rows(db, "contacts", &filters).await[0]["opted_out"].clone() }
    };
    let contact = new_wa_id();
    let wamid = app.post_text(&org, &contact, "STOP").await;
    assert_eq!(
        app.processed(&wamid).await["status"],
        "failed",
        "the confirmation failed"
    );
    assert_eq!(opted_out(&contact).await, true, "the opt-out holds anyway");

    let staffed = new_wa_id();
    let wamid = app.post_text(&org, &staffed, "hi").await;
    app.processed(&wamid).await;
    org.update(db, "conversations", json!({"mode": "human"}))
        .await;
    let wamid = app.post_text(&org, &staffed, "stop").await;
    assert_eq!(app.processed(&wamid).await["status"], "processed");
    assert!(
        app.reply_to(&wamid).await.is_none(),
        "staff answer in human mode"
    );
    assert_eq!(opted_out(&staffed).await, true);
}
