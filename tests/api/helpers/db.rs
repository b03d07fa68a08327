//! Rows arranged and read back through the service role (PostgREST), users created with psql
//! (PostgREST does not expose the auth schema), and an org of each test's own.

use serde_json::{json, Value};
use uuid::Uuid;

use super::app::TestApp;
use super::lib::{Caller, Postgrest};
use super::{eq, new_phone_number_id, new_uuid, stack_var};

pub async fn insert(db: &Postgrest, table: &str, row: Value) {
    db.from(table, Caller::Service)
        .insert(&row)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("insert {table}: {e}"));
}

/// Every row of `table` matching the PostgREST `filters` (`("column", "eq.value")`).
pub async fn select(db: &Postgrest, table: &str, filters: &[(&str, String)]) -> Vec<Value> {
    let mut query = db.from(table, Caller::Service).select("*");
    for (column, value) in filters {
        query = query.param(column, value);
    }
    query.fetch::<Vec<Value>>().await.expect("select").data
}

/// The row of `table` whose `id` is `id` (`null` when there is none).
pub async fn row(db: &Postgrest, table: &str, id: &str) -> Value {
    select(db, table, &[("id", eq(id))])
        .await
        .into_iter()
        .next()
        .unwrap_or(Value::Null)
}

/// Sets `values` on the rows of `table` whose `column` equals `value`.
pub async fn update(db: &Postgrest, table: &str, (column, value): (&str, &str), values: Value) {
    db.from(table, Caller::Service)
        .eq(column, value)
        .update(&values)
        .execute()
        .await
        .unwrap_or_else(|e| panic!("update {table}: {e}"));
}

/// How many alerts of `kind` the org `org_id` has.
pub async fn alert_count(db: &Postgrest, org_id: &str, kind: &str) -> usize {
    select(db, "alerts", &[("org_id", eq(org_id)), ("kind", eq(kind))])
        .await
        .len()
}

/// The dead letter queue entries about `reference`.
pub async fn dead_letters(db: &Postgrest, reference: &str) -> Vec<Value> {
    select(db, "dead_letter_queue", &[("ref", eq(reference))]).await
}

/// The messages whose WhatsApp id is `wamid`.
pub async fn messages_with_wamid(db: &Postgrest, wamid: &str) -> Vec<Value> {
    select(db, "messages", &[("wa_message_id", eq(wamid))]).await
}

/// Runs `sql` on the stack's database with psql, stopping at the first error.
pub async fn psql(sql: &str) {
    let url = stack_var("DATABASE_URL");
    let output = tokio::process::Command::new("psql")
        .args([url.as_str(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .await
        .expect("psql");
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// New users in `auth.users`, with the email `{id}@test.invalid`.
pub async fn create_users(count: usize) -> Vec<Uuid> {
    let users: Vec<Uuid> = (0..count).map(|_| Uuid::new_v4()).collect();
    let values: Vec<String> = users
        .iter()
        .map(|id| format!("('{id}', '{id}@test.invalid')"))
        .collect();
    psql(&format!(
        "insert into auth.users (id, email) values {}",
        values.join(", ")
    ))
    .await;
    users
}

/// An org with its own WhatsApp number and settings (reply template `assistant_reply`).
pub struct TestOrg {
    pub id: String,
    pub phone_number_id: String,
}

impl TestOrg {
    pub async fn create(db: &Postgrest) -> Self {
        let id = new_uuid();
        let phone_number_id = new_phone_number_id();
        insert(db, "orgs", json!({"id": id, "name": "Test org"})).await;
        insert(db, "whatsapp_numbers", json!({
            "org_id": id, "phone_number_id": phone_number_id, "display_phone_number": "+1 555 000 0000",
        }))
        .await;
        insert(
            db,
            "assistant_settings",
            json!({
                "org_id": id, "reply_template": "assistant_reply", "template_language": "en_US",
            }),
        )
        .await;
        Self {
            id,
            phone_number_id,
        }
    }

    /// Sets `values` on the org's rows of `table` (`orgs` itself, or a table with `org_id`).
    pub async fn update(&self, db: &Postgrest, table: &str, values: Value) {
        let column = if table == "orgs" { "id" } else { "org_id" };
        update(db, table, (column, &self.id), values).await;
    }

    /// The org's rows of `table` matching `filters` too.
    pub async fn rows(
        &self,
        db: &Postgrest,
        table: &str,
        filters: &[(&str, String)],
    ) -> Vec<Value> {
        let mut all = vec![("org_id", eq(&self.id))];
        all.extend(filters.iter().cloned());
        select(db, table, &all).await
    }

    /// The id of the org's WhatsApp number row.
    pub async fn number_id(&self, db: &Postgrest) -> Value {
        self.rows(db, "whatsapp_numbers", &[]).await[0]["id"].clone()
    }
}

/// Rows of `table` for `org`, oldest first.
pub async fn rows(app: &TestApp, table: &str, org: &TestOrg) -> Vec<Value> {
    org.rows(app.db(), table, &[("order", "created_at.asc".into())])
        .await
}

/// Polls until `table` has at least `n` rows for `org` (ledger rows land with the outcome).
pub async fn wait_for_rows(app: &TestApp, table: &str, org: &TestOrg, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let found = rows(app, table, org).await;
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    rows(app, table, org).await
}
