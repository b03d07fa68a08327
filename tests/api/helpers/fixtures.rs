//! The one loader of `tests/fixtures/`: Meta's documented payloads and the test-only keys.

use std::path::Path;

use serde_json::Value;

/// The text of `tests/fixtures/{path}`.
pub fn fixture_text(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// The JSON of `tests/fixtures/{path}`.
pub fn fixture_json(path: &str) -> Value {
    serde_json::from_str(&fixture_text(path)).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

/// A documented webhook payload from `tests/fixtures/whatsapp/`.
pub fn fixture(name: &str) -> Value {
    fixture_json(&format!("whatsapp/{name}"))
}

/// A documented Graph error envelope from `graph_responses.json`.
pub fn graph_error(key: &str) -> Value {
    fixture("graph_responses.json")[key].clone()
}
