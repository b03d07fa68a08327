//! The settings' limits are stated once, by the database: the CHECK constraints on
//! `assistant_settings`. The OpenAPI document (SettingsUpdate), which the console reads its
//! limits from, must say the same: every limit it states is probed at its edge against the
//! constraints themselves (each evaluated by PostgreSQL on values built from the document),
//! and the API answers a value past a limit with 400 naming the field.

use serde_json::{json, Value};

use crate::helpers::admin::World;
use crate::helpers::app::{stack_var, status_and_json};

/// Every printable ASCII character, a tab and a non-ASCII letter: each is tried alone against
/// a pattern's character class.
fn probe_chars() -> Vec<char> {
    (' '..='~').chain(['\t', 'é']).collect()
}

/// A pattern `^[class]{lo,hi}$`: the class's characters and the bounds.
fn class_pattern(pattern: &str) -> Option<(Vec<char>, usize, usize)> {
    let inner = pattern.strip_prefix("^[")?.strip_suffix("}$")?;
    let (class, bounds) = inner.split_once("]{")?;
    let (lo, hi) = bounds.split_once(',')?;
    let chars: Vec<char> = class.chars().collect();
    let mut set = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if i + 2 < chars.len() && chars[i + 1] == '-' {
            set.extend(chars[i]..=chars[i + 2]);
            i += 3;
        } else {
            set.push(chars[i]);
            i += 1;
        }
    }
    Some((set, lo.parse().ok()?, hi.parse().ok()?))
}

/// A SQL literal of `value` (dollar-quoted text, a text array, a number or null).
fn literal(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::String(text) => format!("$q${text}$q$::text"),
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(literal).collect();
            format!("array[{}]::text[]", items.join(","))
        }
        number => format!("{number}::numeric"),
    }
}

/// Runs `sql` with psql; its one value.
fn query(sql: &str) -> String {
    let output = std::process::Command::new("psql")
        .args([&stack_var("DATABASE_URL"), "-X", "-q", "-t", "-A", "-v"])
        .arg("ON_ERROR_STOP=1")
        .args(["-c", sql])
        .output()
        .expect("psql");
    assert!(
        output.status.success(),
        "psql: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// Whether the table's CHECK constraints on `column` accept each value (null passes, as in
/// a CHECK).
fn accepted(column: &str, values: &[Value]) -> Vec<bool> {
    let expression = query(&format!(
        "select string_agg('(' || pg_get_expr(c.conbin, c.conrelid) || ')', ' and ')
         from pg_constraint c join pg_attribute a
           on a.attrelid = c.conrelid and a.attnum = any (c.conkey)
         where c.conrelid = 'public.assistant_settings'::regclass and c.contype = 'c'
           and a.attname = '{column}'"
    ));
    assert!(!expression.is_empty(), "no CHECK constraint on {column}");
    let rows: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(n, value)| format!("({n}, {})", literal(value)))
        .collect();
    let answer = query(&format!(
        "select string_agg(coalesce(({expression})::text, 'true'), ',' order by n)
         from (values {}) as s(n, {column})",
        rows.join(",")
    ));
    answer.split(',').map(|ok| ok == "true").collect()
}

/// The values at and just past the limits `schema` states, and whether each is within them.
fn probes(name: &str, schema: &Value) -> Vec<(Value, bool)> {
    let mut probes = Vec::new();
    let types = schema["type"].to_string();
    if types.contains("null") {
        probes.push((Value::Null, true));
    }
    if types.contains("integer") || types.contains("number") {
        let step = if types.contains("integer") { 1.0 } else { 0.01 };
        let (min, max) = (&schema["minimum"], &schema["maximum"]);
        let (lo, hi) = (min.as_f64().expect(name), max.as_f64().expect(name));
        probes.extend([(min.clone(), true), (max.clone(), true)]);
        probes.extend([(json!(lo - step), false), (json!(hi + step), false)]);
        return probes;
    }
    if types.contains("array") {
        let item = probes_of_text(name, &schema["items"]);
        let valid = item
            .iter()
            .find(|(_, ok)| *ok)
            .expect("a valid item")
            .0
            .clone();
        let most = schema["maxItems"].as_u64().expect(name) as usize;
        probes.push((json!(vec![valid.clone(); most]), true));
        probes.push((json!(vec![valid; most + 1]), false));
        probes.extend(item.into_iter().map(|(v, ok)| (json!([v]), ok)));
        return probes;
    }
    probes.extend(probes_of_text(name, schema));
    probes
}

fn probes_of_text(name: &str, schema: &Value) -> Vec<(Value, bool)> {
    let pattern = schema["pattern"].as_str().unwrap_or_default();
    let max_length = schema["maxLength"].as_u64().map(|n| n as usize);
    let mut probes = Vec::new();
    if let Some((class, lo, hi)) = class_pattern(pattern) {
        assert!(
            max_length.is_none_or(|max| max == hi),
            "{name}: maxLength {max_length:?} but the pattern allows {hi}"
        );
        let edge: String = class.iter().cycle().take(hi).collect();
        let over: String = class.iter().cycle().take(hi + 1).collect();
        probes.extend([(json!(edge), true), (json!(over), false)]);
        if lo > 0 {
            probes.push((json!(""), false));
        }
        for c in probe_chars() {
            probes.push((json!(c.to_string()), class.contains(&c)));
        }
        return probes;
    }
    // A "contains" pattern (\S: not only white space) with minLength and maxLength.
    assert_eq!(pattern, "\\S", "{name}: a pattern this test does not read");
    let max = max_length.expect("maxLength");
    probes.extend([
        (json!("é".repeat(max)), true),
        (json!("a".repeat(max + 1)), false),
        (json!(" \n\t "), false),
    ]);
    if schema["minLength"].as_u64() == Some(1) {
        probes.push((json!(""), false));
    }
    probes
}

#[tokio::test]
async fn the_documents_settings_limits_are_the_databases_constraints() {
    let w = World::new().await;
    let (status, document) = status_and_json(w.get("/api/admin/openapi.json").await).await;
    assert_eq!(status, 200);
    let properties = document["components"]["schemas"]["SettingsUpdate"]["properties"]
        .as_object()
        .expect("SettingsUpdate");
    assert_eq!(properties.len(), 15, "every field the API takes");
    let mut drift = Vec::new();
    for (name, schema) in properties {
        // A boolean's type is its bound (no CHECK to compare).
        if schema["type"] == "boolean" {
            continue;
        }
        let probes = probes(name, schema);
        let values: Vec<Value> = probes.iter().map(|(v, _)| v.clone()).collect();
        let answers = accepted(name, &values);
        for ((value, expected), answer) in probes.iter().zip(answers) {
            if answer != *expected {
                let shown: String = value.to_string().chars().take(80).collect();
                drift.push(format!(
                    "{name} = {shown}: the document says {}, the database {}",
                    within(*expected),
                    within(answer)
                ));
            }
        }
    }
    assert!(drift.is_empty(), "{drift:#?}");
}

fn within(ok: bool) -> &'static str {
    if ok {
        "within"
    } else {
        "past the limits"
    }
}

#[tokio::test]
async fn a_value_past_a_limit_is_400_naming_the_field() {
    let w = World::new().await;
    let token = w.token(w.admin_a);
    let path = format!("/api/admin/settings?org_id={}", w.a.org.id);
    for (field, value) in [
        ("template_language", json!("en_US_and_more_")),
        ("template_language", json!("en_US_and_more_x")),
        ("rate_limit_per_minute", json!(10_001)),
        ("monthly_cost_budget_usd", json!(1_000_000.01)),
        ("monthly_cost_budget_usd", json!(1e15)),
        ("enabled_tools", json!(["Not a tool"])),
    ] {
        let (status, body) = w.admin_put(&path, &token, &json!({ field: value })).await;
        if value == json!("en_US_and_more_") {
            assert_eq!(status, 200, "15 characters: {body}");
            continue;
        }
        assert_eq!(status, 400, "{field} = {value}: {body}");
        assert_eq!(body["error"]["code"], "bad_request");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.starts_with(&format!("{field}: ")),
            "{field}: {message}"
        );
    }
}
