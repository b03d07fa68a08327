//! The admin console's static files for the dev server, and its local-only sign-in path.
//!
//! Only `dev-server` mounts a [`Console`]: route binaries (Vercel, AWS Lambda, a lone local
//! route) never do, so `/admin/local-session` exists on no deployment. On Vercel the files of
//! `public/` are served by the platform itself.

use std::path::{Component, Path, PathBuf};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use serde_json::json;

/// The local-only path: its answer tells the console to offer sign-in with a token of
/// `scripts/stack token` (the local stack has no Supabase Auth server).
pub const LOCAL_SESSION_PATH: &str = "/admin/local-session";

/// Serves the files under `root` (the repository's `public/`) at `/`, as Vercel does.
pub struct Console {
    root: PathBuf,
}

impl Console {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The answer for `path` when it is the console's (a file, or the local session); `None`
    /// for the routes (`/api/**`) and for paths that name no file.
    pub fn answer(&self, path: &str) -> Option<Response<Bytes>> {
        if path.starts_with("/api/") {
            return None;
        }
        if path.trim_end_matches('/') == LOCAL_SESSION_PATH {
            return Some(local_session());
        }
        let file = self.file(path)?;
        let bytes = std::fs::read(&file).ok()?;
        let mut response = Response::new(Bytes::from(bytes));
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, content_type(&file));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
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
