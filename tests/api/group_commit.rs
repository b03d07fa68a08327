//! Group commit of webhook deliveries (`inbound::GroupCommit`): concurrent deliveries share one
//! ingest transaction, each is answered only after its own rows are committed, and a batch that
//! fails answers 503 to every delivery in it.

use std::collections::HashSet;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::*;

/// A text delivery for `org` from a new contact whose wamid starts with `prefix`.
fn delivery(org: &TestOrg, prefix: &str) -> (Vec<u8>, String) {
    let (body, wamid) = text_delivery(org, &new_wa_id(), "hello");
    let marked = wamid.replacen("wamid.test.", prefix, 1);
    let body = String::from_utf8(body)
        .expect("utf-8")
        .replace(&wamid, &marked);
    (body.into_bytes(), marked)
}

#[tokio::test]
async fn a_hundred_concurrent_deliveries_share_transactions_and_each_is_answered_after_its_commit()
{
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    let deliveries: Vec<_> = (0..100).map(|_| delivery(&org, "wamid.test.")).collect();

    let answers = futures_util::future::join_all(deliveries.iter().map(|(body, wamid)| {
        let app = &app;
        async move {
            let status = app.post_webhook(body).await.status().as_u16();
            // Read at once, in another transaction: the rows are visible, so committed.
            (status, messages_with_wamid(app.db(), wamid).await.len())
        }
    }))
    .await;

    for (status, stored) in &answers {
        assert_eq!((*status, *stored), (200, 1));
    }
    // A contact's created_at is its transaction's start (now()): fewer distinct values than
    // deliveries means deliveries shared a transaction.
    let contacts = org.rows(app.db(), "contacts", &[]).await;
    assert_eq!(contacts.len(), 100);
    let transactions: HashSet<&str> = contacts
        .iter()
        .filter_map(|c| c["created_at"].as_str())
        .collect();
    assert!(
        transactions.len() < 100,
        "every delivery had its own transaction"
    );
}

#[tokio::test]
async fn a_database_failure_mid_batch_answers_503_to_each_delivery_of_the_batch() {
    // Inserting a message whose wamid starts with wamid.gcslow. takes a second; one starting
    // with wamid.gcpoison. fails (the database's error, mid-transaction).
    psql(
        "create schema if not exists test_faults;
         create or replace function test_faults.group_commit() returns trigger language plpgsql as $$
         begin
           if new.wa_message_id like 'wamid.gcslow.%' then perform pg_sleep(1); end if;
           if new.wa_message_id like 'wamid.gcpoison.%' then raise exception 'injected failure'; end if;
           return new;
         end $$;
         create or replace trigger test_group_commit_faults before insert on public.messages
           for each row execute function test_faults.group_commit();",
    )
    .await;
    let app = spawn_app().await;
    let org = TestOrg::create(app.db()).await;
    let (slow, slow_wamid) = delivery(&org, "wamid.gcslow.");
    let (poison, _) = delivery(&org, "wamid.gcpoison.");
    let others: Vec<_> = (0..20).map(|_| delivery(&org, "wamid.test.")).collect();

    // The slow delivery is stored alone (nothing waits); the others queue behind it and form
    // the next batch, with the poisoned one.
    let first = app.post_webhook(&slow);
    let rest = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        futures_util::future::join_all(
            std::iter::once(&poison)
                .chain(others.iter().map(|(body, _)| body))
                .map(|body| app.post_webhook(body)),
        )
        .await
    };
    let (first, rest) = tokio::join!(first, rest);

    assert_eq!(first.status(), 200);
    assert_eq!(messages_with_wamid(app.db(), &slow_wamid).await.len(), 1);
    for answer in rest {
        let (status, body) = status_and_json(answer).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], Value::from("unavailable"));
    }
    for (_, wamid) in &others {
        assert!(messages_with_wamid(app.db(), wamid).await.is_empty());
    }

    // Meta's redelivery of the healthy ones (without the poisoned one) stores them.
    for (body, wamid) in &others {
        assert_eq!(app.post_webhook(body).await.status(), 200);
        assert_eq!(messages_with_wamid(app.db(), wamid).await.len(), 1);
    }
    psql("drop trigger test_group_commit_faults on public.messages; drop schema test_faults cascade;")
        .await;
}
