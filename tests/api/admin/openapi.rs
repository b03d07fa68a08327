//! The OpenAPI document stays true: its paths and methods are exactly what the routes serve
//! (probed over HTTP), and real answers of every admin endpoint match their declared schemas.

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::admin::World;
use crate::helpers::lib::{OPENAPI_DOCUMENT, ROUTES};
use crate::helpers::new_uuid;

/// The methods a route answers: anything but 405 (probed without credentials).
async fn served_methods(w: &World, path: &str) -> BTreeSet<String> {
    let mut served = BTreeSet::new();
    for method in [
        Method::GET,
        Method::HEAD,
        Method::POST,
        Method::PUT,
        Method::PATCH,
        Method::DELETE,
    ] {
        let response = w.request(method.clone(), path, None, None).await;
        assert_ne!(response.status(), 404, "{method} {path} is not routed");
        if response.status() != 405 {
            served.insert(method.as_str().to_lowercase());
        }
    }
    served
}

#[tokio::test]
async fn the_document_lists_exactly_the_routes_and_their_methods() {
    let w = World::new().await;
    let response = w
        .request(Method::GET, "/api/admin/openapi.json", None, None)
        .await;
    assert_eq!(response.status(), 200, "public, no token");
    let document: Value = response.json().await.expect("JSON");
    assert_eq!(document["openapi"], "3.1.0");

    let declared: BTreeMap<String, BTreeSet<String>> = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .map(|(path, item)| {
            let methods = item
                .as_object()
                .expect("path item")
                .keys()
                .cloned()
                .collect();
            (path.clone(), methods)
        })
        .collect();
    let mut served = BTreeMap::new();
    for route in ROUTES {
        let path = route.path();
        let concrete = path.replace("[id]", &new_uuid());
        served.insert(
            path.replace("[id]", "{id}"),
            served_methods(&w, &concrete).await,
        );
    }
    assert_eq!(declared, served);
}

/// Checks `value` against `schema` (the subset of JSON Schema the document uses: `$ref`,
/// `type` with `null`, `properties`, `required`, `items`, `enum`, `allOf`); returns the errors.
fn check(document: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        return check(
            document,
            &document["components"]["schemas"][name],
            value,
            at,
            errors,
        );
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        check(document, part, value, at, errors);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let type_ok = types.is_empty()
        || types.contains(&kind)
        || (kind == "integer" && types.contains(&"number"));
    if !type_ok {
        errors.push(format!("{at}: {kind} is not {types:?}"));
        return;
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            errors.push(format!("{at}: {value} not in {allowed:?}"));
        }
    }
    if let Value::Object(fields) = value {
        for name in schema["required"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if !fields.contains_key(name) {
                errors.push(format!("{at}: missing {name}"));
            }
        }
        for (name, property) in schema["properties"].as_object().into_iter().flatten() {
            if let Some(field) = fields.get(name) {
                check(document, property, field, &format!("{at}.{name}"), errors);
            }
        }
    }
    if let Value::Array(items) = value {
        for (i, item) in items.iter().enumerate() {
            check(
                document,
                &schema["items"],
                item,
                &format!("{at}[{i}]"),
                errors,
            );
        }
    }
}

#[tokio::test]
async fn every_admin_answer_matches_its_declared_schema() {
    let w = World::new().await;
    let document: Value = serde_json::from_str(OPENAPI_DOCUMENT).expect("document");
    let org = w.a.org.id.clone();
    let conversation = w.a.conversation.clone();
    let [letter, other_letter] = w.a.dead_letters.clone();
    let owner = w.token(w.owner_a);
    #[rustfmt::skip]
    let calls: Vec<(Method, &str, String, Option<Value>)> = vec![
        (Method::GET, "/api/admin/me", "/api/admin/me".into(), None),
        (Method::GET, "/api/admin/config.json", "/api/admin/config.json".into(), None),
        (Method::GET, "/api/admin/overview", format!("/api/admin/overview?org_id={org}"), None),
        (Method::GET, "/api/admin/conversations",
         format!("/api/admin/conversations?org_id={org}&limit=1"), None),
        (Method::GET, "/api/admin/conversations/{id}",
         format!("/api/admin/conversations/{conversation}"), None),
        (Method::POST, "/api/admin/conversations/{id}/handoff",
         format!("/api/admin/conversations/{conversation}/handoff"),
         Some(json!({"mode": "human"}))),
        (Method::POST, "/api/admin/conversations/{id}/messages",
         format!("/api/admin/conversations/{conversation}/messages"),
         Some(json!({"text": "Hello from the team"}))),
        (Method::GET, "/api/admin/settings", format!("/api/admin/settings?org_id={org}"), None),
        (Method::PUT, "/api/admin/settings",
         format!("/api/admin/settings?org_id={org}"), Some(json!({"language": "es"}))),
        (Method::GET, "/api/admin/usage", format!("/api/admin/usage?org_id={org}"), None),
        (Method::GET, "/api/admin/dead-letters",
         format!("/api/admin/dead-letters?org_id={org}"), None),
        (Method::POST, "/api/admin/dead-letters/{id}/replay",
         format!("/api/admin/dead-letters/{letter}/replay"), None),
        (Method::POST, "/api/admin/dead-letters/{id}/discard",
         format!("/api/admin/dead-letters/{other_letter}/discard"), None),
        (Method::POST, "/api/admin/rate-limits/reset",
         "/api/admin/rate-limits/reset".into(), Some(json!({"org_id": org}))),
        (Method::GET, "/api/admin/alerts", format!("/api/admin/alerts?org_id={org}"), None),
        (Method::POST, "/api/admin/alerts/{id}/acknowledge",
         format!("/api/admin/alerts/{}/acknowledge", w.a.alert), None),
        (Method::GET, "/api/admin/audit-log", format!("/api/admin/audit-log?org_id={org}"), None),
        (Method::POST, "/api/admin/members",
         format!("/api/admin/members?org_id={org}"),
         Some(json!({"email": format!("{}@test.invalid", w.admin_b), "role": "viewer"}))),
        (Method::GET, "/api/admin/members", format!("/api/admin/members?org_id={org}"), None),
        (Method::PATCH, "/api/admin/members/{id}",
         format!("/api/admin/members/{}?org_id={org}", w.viewer_a), Some(json!({"role": "admin"}))),
        (Method::DELETE, "/api/admin/members/{id}",
         format!("/api/admin/members/{}?org_id={org}", w.admin_b), None),
        // Last: it erases the conversation the calls above use.
        (Method::POST, "/api/admin/contacts/{id}/erase",
         format!("/api/admin/contacts/{}/erase", w.a.contact), None),
        // Errors have their declared shape too.
        (Method::GET, "/api/admin/overview", "/api/admin/overview?org_id=nope".into(), None),
        (Method::GET, "/api/admin/overview",
         format!("/api/admin/overview?org_id={}", w.b.org.id), None),
        (Method::POST, "/api/admin/dead-letters/{id}/discard",
         format!("/api/admin/dead-letters/{other_letter}/discard"), None),
    ];
    let mut errors = Vec::new();
    let mut checked = BTreeSet::new();
    for (method, template, path, body) in calls {
        let (status, answer) = w
            .admin(method.clone(), &path, Some(&owner), body.as_ref())
            .await;
        let operation = &document["paths"][template][method.as_str().to_lowercase()];
        let declared = &operation["responses"][status.to_string()];
        assert!(
            declared.is_object(),
            "{method} {path}: status {status} is not declared ({answer})"
        );
        let schema = &declared["content"]["application/json"]["schema"];
        check(
            &document,
            schema,
            &answer,
            &format!("{method} {template} {status}"),
            &mut errors,
        );
        if status < 300 {
            checked.insert((template, method.as_str().to_lowercase()));
        }
    }
    assert!(
        errors.is_empty(),
        "answers that do not match the document:\n{}",
        errors.join("\n")
    );
    let admin_operations = document["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .filter(|(path, _)| path.starts_with("/api/admin/") && *path != "/api/admin/openapi.json")
        .map(|(_, item)| item.as_object().map_or(0, |i| i.len()))
        .sum::<usize>();
    assert_eq!(
        checked.len(),
        admin_operations,
        "every admin operation answered with success once"
    );

    // A 401 matches too.
    let (status, answer) = w.admin(Method::GET, "/api/admin/me", None, None).await;
    assert_eq!(status, 401);
    let mut errors = Vec::new();
    check(
        &document,
        &json!({"$ref": "#/components/schemas/Error"}),
        &answer,
        "401",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
}
