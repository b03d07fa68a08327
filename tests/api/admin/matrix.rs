//! Every admin endpoint x {no token, expired, wrong audience, wrong signature, `alg: none`,
//! viewer of org A, admin of org A (ES256 from the JWKS), admin of org B}: the expected status,
//! org B never seeing a row of org A, and nothing changed by those who may not change it.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::admin::World;
use crate::helpers::jwt::{claims, es256, hs256, hs256_with, unsigned, TEST_KID};
use crate::helpers::lib::ROUTES;

/// One endpoint called on org A's resources, and what each signed-in identity gets.
struct Case {
    route: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    viewer_a: u16,
    admin_a: u16,
    admin_b: u16,
}

impl Case {
    /// Calls the endpoint with `token` (none when `None`).
    async fn send(&self, w: &World, token: Option<&str>) -> reqwest::Response {
        w.request(self.method.clone(), &self.path, token, self.body.as_ref())
            .await
    }

    /// Calls the endpoint with `token`: the status and JSON body.
    async fn call(&self, w: &World, token: &str) -> (u16, Value) {
        w.admin(
            self.method.clone(),
            &self.path,
            Some(token),
            self.body.as_ref(),
        )
        .await
    }
}

fn case(
    route: &'static str,
    method: Method,
    path: String,
    body: Option<Value>,
    [viewer_a, admin_a, admin_b]: [u16; 3],
) -> Case {
    Case {
        route,
        method,
        path,
        body,
        viewer_a,
        admin_a,
        admin_b,
    }
}

/// Reads as the matrix runs them: the mutations come after the reads.
#[rustfmt::skip]
fn cases(w: &World) -> Vec<Case> {
    let org = &w.a.org.id;
    let conversation = &w.a.conversation;
    let [replayed, discarded] = &w.a.dead_letters;
    let viewer = w.viewer_a;
    use Method as M;
    vec![
        case("/api/admin/me", M::GET, "/api/admin/me".into(), None, [200, 200, 200]),
        case("/api/admin/overview", M::GET,
             format!("/api/admin/overview?org_id={org}"),
             None, [200, 200, 404]),
        case("/api/admin/conversations", M::GET,
             format!("/api/admin/conversations?org_id={org}"),
             None, [200, 200, 200]),
        case("/api/admin/conversations/[id]", M::GET,
             format!("/api/admin/conversations/{conversation}"),
             None, [200, 200, 404]),
        case("/api/admin/settings", M::GET,
             format!("/api/admin/settings?org_id={org}"),
             None, [200, 200, 404]),
        case("/api/admin/usage", M::GET,
             format!("/api/admin/usage?org_id={org}"),
             None, [200, 200, 404]),
        case("/api/admin/dead-letters", M::GET,
             format!("/api/admin/dead-letters?org_id={org}"),
             None, [200, 200, 200]),
        case("/api/admin/alerts", M::GET,
             format!("/api/admin/alerts?org_id={org}"),
             None, [200, 200, 200]),
        case("/api/admin/audit-log", M::GET,
             format!("/api/admin/audit-log?org_id={org}"),
             None, [200, 200, 200]),
        case("/api/admin/members", M::GET,
             format!("/api/admin/members?org_id={org}"),
             None, [200, 200, 404]),
        case("/api/admin/conversations/[id]/handoff", M::POST,
             format!("/api/admin/conversations/{conversation}/handoff"),
             Some(json!({"mode": "human"})), [403, 200, 404]),
        case("/api/admin/conversations/[id]/messages", M::POST,
             format!("/api/admin/conversations/{conversation}/messages"),
             Some(json!({"text": "Hi, this is Marta from the front desk."})), [403, 201, 404]),
        case("/api/admin/settings", M::PUT,
             format!("/api/admin/settings?org_id={org}"),
             Some(json!({"language": "es", "rate_limit_per_minute": 20})), [403, 200, 404]),
        case("/api/admin/dead-letters/[id]/replay", M::POST,
             format!("/api/admin/dead-letters/{replayed}/replay"),
             None, [403, 200, 404]),
        case("/api/admin/dead-letters/[id]/discard", M::POST,
             format!("/api/admin/dead-letters/{discarded}/discard"),
             None, [403, 200, 404]),
        case("/api/admin/rate-limits/reset", M::POST,
             "/api/admin/rate-limits/reset".into(),
             Some(json!({"org_id": org})), [403, 200, 404]),
        case("/api/admin/contacts/[id]/erase", M::POST,
             format!("/api/admin/contacts/{}/erase", w.a.contact),
             None, [403, 403, 404]),
        case("/api/admin/alerts/[id]/acknowledge", M::POST,
             format!("/api/admin/alerts/{}/acknowledge", w.a.alert),
             None, [403, 200, 404]),
        case("/api/admin/members", M::POST,
             format!("/api/admin/members?org_id={org}"),
             Some(json!({"email": format!("{}@test.invalid", w.admin_b), "role": "viewer"})),
             [403, 403, 404]),
        case("/api/admin/members/[id]", M::PATCH,
             format!("/api/admin/members/{viewer}?org_id={org}"),
             Some(json!({"role": "admin"})), [403, 403, 404]),
        case("/api/admin/members/[id]", M::DELETE,
             format!("/api/admin/members/{viewer}?org_id={org}"),
             None, [403, 403, 404]),
    ]
}

/// The identities that must get 401, with the error code they get.
fn rejected_tokens(w: &World) -> Vec<(&'static str, Option<String>, &'static str)> {
    let valid = claims(w.admin_a);
    let mut expired = valid.clone();
    expired["exp"] = json!(chrono::Utc::now().timestamp() - 3600);
    let mut wrong_audience = valid.clone();
    wrong_audience["aud"] = json!("anon");
    vec![
        ("no token", None, "missing_token"),
        ("expired", Some(hs256(&expired)), "invalid_token"),
        (
            "wrong audience",
            Some(es256(&wrong_audience, TEST_KID)),
            "invalid_token",
        ),
        (
            "wrong signature",
            Some(hs256_with(&valid, b"not-the-project-secret-0123456789")),
            "invalid_token",
        ),
        ("alg none", Some(unsigned(&valid)), "invalid_token"),
    ]
}

/// Every id of org A's rows that a response could leak.
fn org_a_ids(w: &World) -> Vec<String> {
    let a = &w.a;
    let mut ids = vec![
        a.org.id.clone(),
        a.contact.clone(),
        a.conversation.clone(),
        a.inbound.clone(),
        a.alert.clone(),
    ];
    ids.extend(a.dead_letters.iter().cloned());
    ids
}

/// The admin routes that need no token.
const PUBLIC: [&str; 2] = ["/api/admin/openapi.json", "/api/admin/config.json"];

#[tokio::test]
async fn every_admin_endpoint_answers_each_identity_as_expected() {
    let w = World::new().await;
    let cases = cases(&w);

    // The matrix covers every admin route but the public ones (the OpenAPI document, the
    // console's configuration).
    let covered: BTreeSet<&str> = cases.iter().map(|c| c.route).collect();
    let routes: BTreeSet<String> = ROUTES
        .iter()
        .map(|r| r.path())
        .filter(|p| p.starts_with("/api/admin/") && !PUBLIC.contains(&p.as_str()))
        .collect();
    assert_eq!(
        covered,
        routes.iter().map(String::as_str).collect::<BTreeSet<_>>()
    );

    for (who, token, code) in rejected_tokens(&w) {
        for case in &cases {
            let response = case.send(&w, token.as_deref()).await;
            assert_eq!(
                response.status(),
                401,
                "{who}: {} {}",
                case.method,
                case.path
            );
            let challenge = response
                .headers()
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            assert!(
                challenge.starts_with("Bearer"),
                "{who}: challenge {challenge:?}"
            );
            let body: Value = response.json().await.expect("json");
            assert_eq!(body["error"]["code"], code, "{who}: {}", case.path);
        }
    }

    let viewer_a = w.token(w.viewer_a);
    let admin_b = w.token(w.admin_b);
    let admin_a = es256(&claims(w.admin_a), TEST_KID);
    let leaks = org_a_ids(&w);

    for case in &cases {
        let (status, body) = case.call(&w, &viewer_a).await;
        assert_eq!(
            status, case.viewer_a,
            "viewer A: {} {} -> {body}",
            case.method, case.path
        );
        let own_rows = !["/api/admin/me", "/api/admin/audit-log"].contains(&case.route);
        if case.method == Method::GET && own_rows {
            assert!(
                body.to_string().contains(&w.a.org.id),
                "viewer A reads org A: {}",
                case.path
            );
        }

        let (status, body) = case.call(&w, &admin_b).await;
        assert_eq!(
            status, case.admin_b,
            "admin B: {} {} -> {body}",
            case.method, case.path
        );
        let text = body.to_string();
        for id in &leaks {
            assert!(
                !text.contains(id.as_str()),
                "admin B saw org A's {id} in {} {}",
                case.method,
                case.path
            );
        }
    }
    assert!(
        w.audit_all().await.is_empty(),
        "refused attempts changed nothing"
    );

    for case in &cases {
        let (status, body) = case.call(&w, &admin_a).await;
        assert_eq!(
            status, case.admin_a,
            "admin A: {} {} -> {body}",
            case.method, case.path
        );
    }
    let actions: BTreeSet<String> = w
        .audit_all()
        .await
        .iter()
        .map(|row| row["action"].as_str().unwrap_or_default().to_string())
        .collect();
    let expected = [
        "alert.acknowledge",
        "conversation.handoff",
        "dead_letter.discard",
        "dead_letter.replay",
        "message.send",
        "rate_limits.reset",
        "settings.update",
    ];
    assert_eq!(actions, expected.iter().map(|a| a.to_string()).collect());
}
