//! CORS: preflights and answers for the configured admin origins only.

use reqwest::Method;

use crate::helpers::admin::{World, ADMIN_ORIGIN as ALLOWED};

#[tokio::test]
async fn a_preflight_from_an_allowed_origin_lists_the_routes_methods() {
    let w = World::new().await;
    let response = w
        .request_with_headers(
            Method::OPTIONS,
            "/api/admin/settings",
            &[
                ("origin", ALLOWED),
                ("access-control-request-method", "PUT"),
                (
                    "access-control-request-headers",
                    "authorization, content-type",
                ),
            ],
        )
        .await;
    assert_eq!(response.status(), 204);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(header("access-control-allow-origin"), ALLOWED);
    assert_eq!(header("access-control-allow-methods"), "GET, PUT, OPTIONS");
    assert!(header("access-control-allow-headers").contains("authorization"));
    assert!(header("access-control-allow-headers").contains("content-type"));
    assert!(header("access-control-max-age").parse::<u32>().is_ok());
    assert_eq!(header("vary"), "Origin");
}

#[tokio::test]
async fn other_origins_get_no_cors_headers() {
    let w = World::new().await;
    let preflight = w
        .request_with_headers(
            Method::OPTIONS,
            "/api/admin/me",
            &[
                ("origin", "https://evil.example.com"),
                ("access-control-request-method", "GET"),
            ],
        )
        .await;
    assert_eq!(preflight.status(), 204);
    for header in [
        "access-control-allow-origin",
        "access-control-allow-methods",
        "access-control-allow-headers",
    ] {
        assert!(preflight.headers().get(header).is_none(), "{header}");
    }

    let bearer = format!("Bearer {}", w.token(w.viewer_a));
    let lookalike = "https://admin.example.com.evil.example";
    let answer = w
        .request_with_headers(
            Method::GET,
            "/api/admin/me",
            &[("authorization", &bearer), ("origin", lookalike)],
        )
        .await;
    assert_eq!(answer.status(), 200);
    assert!(answer
        .headers()
        .get("access-control-allow-origin")
        .is_none());
}

#[tokio::test]
async fn answers_and_errors_carry_the_allowed_origin() {
    let w = World::new().await;
    let unauthenticated = w
        .request_with_headers(Method::GET, "/api/admin/me", &[("origin", ALLOWED)])
        .await;
    assert_eq!(unauthenticated.status(), 401);
    assert_eq!(
        unauthenticated.headers()["access-control-allow-origin"],
        ALLOWED,
        "the frontend can read the 401"
    );
    let wrong_method = w
        .request_with_headers(Method::DELETE, "/api/admin/me", &[("origin", ALLOWED)])
        .await;
    assert_eq!(wrong_method.status(), 405);
    assert_eq!(wrong_method.headers()["allow"], "GET, OPTIONS");
    assert_eq!(
        wrong_method.headers()["access-control-allow-origin"],
        ALLOWED
    );
}
