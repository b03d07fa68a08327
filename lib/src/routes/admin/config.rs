//! `GET /api/admin/config.json`: what the admin console needs to sign users in (the Supabase
//! project URL and its publishable key), public. Never a secret: a secret or service-role key
//! configured by mistake in `SUPABASE_PUBLISHABLE_KEY` / `SUPABASE_ANON_KEY` is left out.

use base64::Engine;
use http::{header, HeaderValue};
use serde_json::{json, Value};

use super::guarded;
use crate::configuration::{KeyKind, Secret};
use crate::host::{Ctx, HandlerResult, Route};

pub const ROUTE: Route = Route {
    source: "api/admin/config.json.rs",
    handler: |request, ctx| {
        Box::pin(guarded(request, ctx, &["GET"], |_, ctx| async move {
            config(&ctx)
        }))
    },
};

fn config(ctx: &Ctx) -> HandlerResult {
    let settings = &ctx.state.settings;
    let key = settings
        .database
        .as_ref()
        .ok()
        .and_then(|db| db.anon_key.as_ref())
        .filter(|key| is_public(key))
        .map(|key| key.expose().to_string());
    let body = json!({
        "supabase_url": settings.admin.supabase_url,
        "supabase_key": key,
    });
    let mut response = crate::response::json(http::StatusCode::OK, &body);
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    Ok(response)
}

/// A publishable key, or a legacy JWT whose role is `anon`.
fn is_public(key: &Secret) -> bool {
    match KeyKind::of(key) {
        KeyKind::Publishable => true,
        KeyKind::Secret => false,
        KeyKind::LegacyJwt => jwt_role(key.expose()).as_deref() == Some("anon"),
    }
}

fn jwt_role(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    claims["role"].as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt(role: &str) -> Secret {
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"role":"{role}"}}"#));
        Secret::new(format!("eyJhbGciOiJIUzI1NiJ9.{claims}.sig"))
    }

    #[test]
    fn only_public_keys_are_served() {
        assert!(is_public(&Secret::new("sb_publishable_abc")));
        assert!(is_public(&jwt("anon")));
        assert!(!is_public(&Secret::new("sb_secret_abc")));
        assert!(!is_public(&jwt("service_role")));
        assert!(!is_public(&Secret::new("not a jwt")));
    }
}
