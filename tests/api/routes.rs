//! The route table, the `[[bin]]`s of Cargo.toml and the files under `api/` never drift.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use bytes::Bytes;

use crate::helpers::lib::{serve, Route, ROUTES};
use crate::helpers::spawn_app;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn api_files(dir: &Path, found: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read api/") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            api_files(&path, found);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root()).expect("under root");
            found.insert(relative.to_string_lossy().into_owned());
        }
    }
}

/// `path -> name` of every `[[bin]]` in the root Cargo.toml.
fn cargo_bins() -> BTreeMap<String, String> {
    let manifest = std::fs::read_to_string(root().join("Cargo.toml")).expect("Cargo.toml");
    let mut bins = BTreeMap::new();
    for block in manifest.split("\n[[bin]]").skip(1) {
        let block = block.split("\n[").next().unwrap_or_default();
        let field = |key: &str| {
            block.lines().find_map(|line| {
                let (k, v) = line.split_once('=')?;
                (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
            })
        };
        let (name, path) = (
            field("name").expect("bin name"),
            field("path").expect("bin path"),
        );
        assert!(
            bins.insert(path.clone(), name).is_none(),
            "two [[bin]]s for {path}"
        );
    }
    bins
}

#[test]
fn every_api_file_has_a_uniquely_named_bin_and_a_route() {
    let mut files = BTreeSet::new();
    api_files(&root().join("api"), &mut files);
    assert!(files.contains("api/health.rs"));

    let bins = cargo_bins();
    let bin_paths: BTreeSet<String> = bins.keys().cloned().collect();
    assert_eq!(files, bin_paths, "api/**/*.rs and the [[bin]] paths differ");
    let names: BTreeSet<&String> = bins.values().collect();
    assert_eq!(names.len(), bins.len(), "bin names must be unique");

    let sources: BTreeSet<String> = ROUTES.iter().map(|r| r.source.to_string()).collect();
    assert_eq!(files, sources, "api/**/*.rs and routes::ROUTES differ");
    assert!(
        !root().join("src/main.rs").exists(),
        "src/main.rs switches Vercel's Rust functions off"
    );
}

#[test]
fn each_api_file_serves_the_route_declared_for_it() {
    for route in ROUTES {
        let text = std::fs::read_to_string(root().join(route.source)).expect("api file");
        assert!(
            text.contains("assistant::serve!("),
            "{} must hand its route to a host",
            route.source
        );
    }
}

/// A concrete URL for a route path: `[id]` segments get a sample value.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|s| {
            if s.starts_with('[') {
                "sample-value"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn the_dev_server_serves_every_route_at_its_vercel_path() {
    let app = spawn_app().await;
    for route in ROUTES {
        let response = app.get(&concrete(&route.path())).await;
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        assert_ne!(
            body["error"]["code"],
            "route_not_found",
            "{} is not served",
            route.path()
        );
    }
    let response = app.get("/api/no-such-route").await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "route_not_found");
}

static ECHO: Route = Route {
    source: "api/things/[id]/handoff.rs",
    handler: |request, _ctx| {
        Box::pin(async move {
            let query = request.uri().query().unwrap_or_default().to_string();
            Ok(http::Response::new(Bytes::from(query)))
        })
    },
};

static NEW: Route = Route {
    source: "api/things/new/handoff.rs",
    handler: |_request, _ctx| Box::pin(async { Ok(http::Response::new(Bytes::from("literal"))) }),
};

#[tokio::test]
async fn dynamic_segments_arrive_as_query_parameters_like_on_vercel() {
    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    static TABLE: [&Route; 2] = [&ECHO, &NEW];
    tokio::spawn(serve(listener, &TABLE, app.state.clone()));

    let echo = |path: &str| {
        let url = format!("http://{address}{path}");
        async move {
            reqwest::get(url)
                .await
                .expect("request")
                .text()
                .await
                .expect("text")
        }
    };
    assert_eq!(
        echo("/api/things/abc%20d/handoff?x=1").await,
        "x=1&id=abc+d"
    );
    assert_eq!(echo("/api/things/42/handoff").await, "id=42");
    assert_eq!(echo("/api/things/new/handoff").await, "literal");
}

/// Every `.rs` file below `dir`, with its text.
fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut files = BTreeSet::new();
    api_files(dir, &mut files);
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(root().join(&file)).expect("read source");
            (file, text)
        })
        .collect()
}

/// The area of a file under `lib/src/routes/`: `webhook` for `routes/webhook.rs`, `admin` for
/// `routes/admin/settings.rs`.
fn area(file: &str) -> &str {
    let rest = file.trim_start_matches("lib/src/routes/");
    rest.split(['/', '.']).next().unwrap_or(rest)
}

/// The core below the HTTP boundary: built from explicit parts in `startup`, it returns its
/// own errors (health/ joins at merge).
const CORE: [&str; 5] = ["inbound", "jobs", "billing", "health", "send"];

#[test]
fn the_core_imports_neither_the_startup_state_nor_the_http_error() {
    for area in CORE {
        let files = sources(&root().join("lib/src").join(area));
        assert!(!files.is_empty(), "lib/src/{area} has sources");
        for (file, text) in files {
            for boundary in ["crate::startup", "crate::error", "AppState", "ApiError"] {
                assert!(
                    !text.contains(boundary),
                    "{file} (the core) names {boundary}"
                );
            }
        }
    }
}

#[test]
fn no_route_imports_another_and_the_core_imports_no_route() {
    let routes = sources(&root().join("lib/src/routes"));
    assert!(routes.len() > 5, "routes found: {}", routes.len());
    let areas: BTreeSet<&str> = routes.iter().map(|(file, _)| area(file)).collect();
    for (file, text) in &routes {
        for prefix in ["crate::routes::", "super::"] {
            for (at, _) in text.match_indices(prefix) {
                let used = text[at + prefix.len()..]
                    .trim_start_matches("super::")
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .next()
                    .unwrap_or_default();
                let other_area = areas.contains(used) && used != area(file);
                assert!(!other_area, "{file} imports the route area {used}");
            }
        }
    }
    let core = sources(&root().join("lib/src"))
        .into_iter()
        .filter(|(file, _)| {
            !file.starts_with("lib/src/routes/") && !file.starts_with("lib/src/bin/")
        });
    for (file, text) in core {
        if file == "lib/src/lib.rs" {
            continue;
        }
        assert!(
            !text.contains("crate::routes"),
            "{file} (the core) imports from routes/"
        );
    }
}
