//! The admin console's static files for the dev server, and its local-only sign-in path.
//!
//! Only `dev-server` mounts a [`Console`]: route binaries (Vercel, AWS Lambda, a lone local
//! route) never do, so `/admin/local-session` exists on no deployment. On Vercel the files of
//! `public/` are served by the platform itself.
//!
//! The security headers of `/admin` have one home, `vercel.json`'s `headers`: the dev server
//! sends the same ones, its CSP's `connect-src` widened to the local Supabase URL's origin.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http::{header, HeaderName, HeaderValue, Response, StatusCode};
use serde_json::{json, Value};

/// The local-only path: its answer tells the console to offer sign-in with a token of
/// `scripts/stack token` (the local stack has no Supabase Auth server).
pub const LOCAL_SESSION_PATH: &str = "/admin/local-session";

/// The deployment's configuration, whose `headers` for `/admin` the dev server sends too.
const VERCEL_JSON: &str = include_str!("../../../vercel.json");

/// Serves the files under `root` (the repository's `public/`) at `/`, as Vercel does.
pub struct Console {
    root: PathBuf,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Console {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            headers: admin_headers(None),
        }
    }

    /// Lets the console's CSP connect to `supabase_url` (the local one, e.g. `http://127.0.0.1:…`,
    /// which vercel.json's `https://*.supabase.co` does not cover).
    pub fn connecting_to(mut self, supabase_url: Option<&str>) -> Self {
        self.headers = admin_headers(supabase_url);
        self
    }

    /// The answer for `path` when it is the console's (a file, or the local session); `None`
    /// for the routes (`/api/**`) and for paths that name no file.
    pub fn answer(&self, path: &str) -> Option<Response<Bytes>> {
        if path.starts_with("/api/") {
            return None;
        }
        let mut response = if path.trim_end_matches('/') == LOCAL_SESSION_PATH {
            local_session()
        } else {
            let file = self.file(path)?;
            let bytes = std::fs::read(&file).ok()?;
            let mut response = Response::new(Bytes::from(bytes));
            let headers = response.headers_mut();
            headers.insert(header::CONTENT_TYPE, content_type(&file));
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            response
        };
        if path == "/admin" || path.starts_with("/admin/") {
            response.headers_mut().extend(self.headers.iter().cloned());
        }
        Some(response)
    }

    /// The file `path` names under the root (a directory: its `index.html`); no `..`.
    fn file(&self, path: &str) -> Option<PathBuf> {
        let relative = Path::new(path.trim_start_matches('/'));
        if !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
        {
            return None;
        }
        let mut file = self.root.join(relative);
        if file.is_dir() {
            file.push("index.html");
        }
        file.is_file().then_some(file)
    }
}

/// vercel.json's headers for `/admin`, `supabase_url`'s origin added to the CSP's `connect-src`.
/// vercel.json is compiled in: a malformed one fails the unit tests below, never a request.
pub fn admin_headers(supabase_url: Option<&str>) -> Vec<(HeaderName, HeaderValue)> {
    let vercel: Value = serde_json::from_str(VERCEL_JSON).expect("vercel.json is JSON");
    let entry = vercel["headers"]
        .as_array()
        .and_then(|all| all.iter().find(|h| h["source"] == "/admin"))
        .expect("vercel.json has headers for /admin");
    let origin = supabase_url.and_then(origin);
    let pairs = entry["headers"].as_array().into_iter().flatten();
    pairs
        .filter_map(|h| Some((h["key"].as_str()?, h["value"].as_str()?)))
        .map(|(key, value)| {
            let value = match (&origin, key.eq_ignore_ascii_case("content-security-policy")) {
                (Some(origin), true) => with_connect_src(value, origin),
                _ => value.to_owned(),
            };
            let name = HeaderName::from_bytes(key.as_bytes()).expect("a header name");
            (name, HeaderValue::from_str(&value).expect("a header value"))
        })
        .collect()
}

/// `scheme://host[:port]` of `url`, when it has no characters a CSP source cannot hold.
fn origin(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    let clean = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
    };
    (matches!(scheme, "http" | "https") && clean(host)).then(|| format!("{scheme}://{host}"))
}

/// `csp` with `source` added to its `connect-src` directive.
fn with_connect_src(csp: &str, source: &str) -> String {
    csp.split(';')
        .map(str::trim)
        .map(|directive| match directive.starts_with("connect-src ") {
            true => format!("{directive} {source}"),
            false => directive.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn local_session() -> Response<Bytes> {
    let mut response = crate::response::json(
        StatusCode::OK,
        &json!({
            "local": true,
            "token_command": "scripts/stack token USER_UUID [EMAIL]",
        }),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn content_type(file: &Path) -> HeaderValue {
    let kind = match file.extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        _ => "application/octet-stream",
    };
    HeaderValue::from_static(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn console() -> Console {
        Console::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../public"))
    }

    #[test]
    fn serves_the_files_of_public_and_the_local_session() {
        let console = console();
        let page = console.answer("/admin").expect("the console's page");
        assert_eq!(
            page.headers()[header::CONTENT_TYPE],
            "text/html; charset=utf-8"
        );
        assert!(console.answer("/admin/app.js").is_some());
        let session = console.answer(LOCAL_SESSION_PATH).expect("local session");
        assert!(String::from_utf8_lossy(session.body()).contains("\"local\":true"));
    }

    fn csp(response: &Response<Bytes>) -> &str {
        response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii")
    }

    #[test]
    fn the_console_carries_vercel_jsons_security_headers() {
        let console = console();
        let vercel: Value = serde_json::from_str(VERCEL_JSON).expect("json");
        let entries = vercel["headers"].as_array().expect("headers");
        assert_eq!(entries[0]["source"], "/admin");
        assert_eq!(entries[1]["source"], "/admin/(.*)");
        assert_eq!(
            entries[0]["headers"], entries[1]["headers"],
            "the same for both"
        );
        for path in ["/admin", "/admin/", "/admin/app.js", LOCAL_SESSION_PATH] {
            let response = console.answer(path).expect(path);
            for h in entries[0]["headers"].as_array().expect("list") {
                let key = h["key"].as_str().expect("key");
                assert_eq!(response.headers()[key], h["value"].as_str().expect("value"));
            }
        }
        let page = console.answer("/admin").expect("page");
        let policy = csp(&page);
        for directive in [
            "default-src 'self'",
            "script-src 'self';",
            "style-src 'self';",
            "frame-ancestors 'none'",
            "object-src 'none'",
        ] {
            assert!(policy.contains(directive), "{directive} in {policy}");
        }
        assert!(!policy.contains("unsafe"), "{policy}");
        assert_eq!(page.headers()[header::X_FRAME_OPTIONS], "DENY");
        assert_eq!(page.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }

    #[test]
    fn the_local_supabase_url_is_added_to_connect_src_only() {
        let local = console().connecting_to(Some("http://127.0.0.1:54321/"));
        let page = local.answer("/admin").expect("page");
        assert!(
            csp(&page).contains("connect-src 'self' https://*.supabase.co http://127.0.0.1:54321;")
        );
        assert!(csp(&page).contains("default-src 'self';"));
        // Nothing a CSP source cannot hold gets in.
        let odd = console().connecting_to(Some("http://evil; script-src *"));
        assert!(!csp(&odd.answer("/admin").expect("page")).contains("evil"));
    }

    #[test]
    fn serves_nothing_outside_public_nor_the_routes() {
        let console = console();
        for path in [
            "/api/health",
            "/../Cargo.toml",
            "/admin/../../Cargo.toml",
            "/nope.js",
        ] {
            assert!(console.answer(path).is_none(), "{path}");
        }
    }
}
