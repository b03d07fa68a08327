//! Checks a tool call's input against the same JSON Schema the model is given.
//!
//! Only the keywords the tools' schemas use are supported: `type` (object, array, string,
//! integer, number, boolean), `properties`, `required`, `additionalProperties: false`, `enum`,
//! `minLength`, `maxLength`, `minimum`, `maximum`, `exclusiveMinimum`, `items`, `minItems`,
//! `maxItems`. A schema using anything
//! else is a programming error caught by the tests.

use serde_json::Value;

/// The first way `value` breaks `schema`, as a sentence the model can act on.
pub fn validate(schema: &Value, value: &Value) -> Result<(), String> {
    check(schema, value, "input")
}

fn check(schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(kind) = schema["type"].as_str() {
        let ok = match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.as_i64().is_some() || value.as_u64().is_some(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => false,
        };
        if !ok {
            return Err(format!("{at} must be of type {kind}"));
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(value) {
            return Err(format!(
                "{at} must be one of {}",
                Value::from(allowed.clone())
            ));
        }
    }
    if let Some(text) = value.as_str() {
        let length = text.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|min| length < min) {
            return Err(format!("{at} is too short"));
        }
        if schema["maxLength"].as_u64().is_some_and(|max| length > max) {
            return Err(format!("{at} is too long"));
        }
    }
    if let Some(number) = value.as_f64() {
        let below = |key: &str, strict: bool| {
            schema[key].as_f64().is_some_and(|bound| {
                if strict {
                    number <= bound
                } else {
                    number < bound
                }
            })
        };
        if below("minimum", false) || below("exclusiveMinimum", true) {
            return Err(format!("{at} is too small"));
        }
        if schema["maximum"].as_f64().is_some_and(|max| number > max) {
            return Err(format!("{at} is too large"));
        }
    }
    if let Some(items) = value.as_array() {
        let count = items.len() as u64;
        if schema["minItems"].as_u64().is_some_and(|min| count < min) {
            return Err(format!("{at} has too few items"));
        }
        if schema["maxItems"].as_u64().is_some_and(|max| count > max) {
            return Err(format!(
                "{at} has too many items (at most {})",
                schema["maxItems"]
            ));
        }
        for (i, item) in items.iter().enumerate() {
            check(&schema["items"], item, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema["properties"].as_object();
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !object.contains_key(name) {
                return Err(format!("{at}.{name} is required"));
            }
        }
        for (name, field) in object {
            match properties.and_then(|p| p.get(name)) {
                Some(field_schema) => check(field_schema, field, &format!("{at}.{name}"))?,
                None if schema["additionalProperties"] == Value::Bool(false) => {
                    return Err(format!("{at}.{name} is not a known field"));
                }
                None => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inputs_are_checked_field_by_field() {
        let schema = json!({
            "type": "object",
            "properties": {
                "text": {"type": "string", "minLength": 1, "maxLength": 5},
                "n": {"type": "integer", "minimum": 1},
                "amount": {"type": "number", "exclusiveMinimum": 0},
                "kind": {"type": "string", "enum": ["a", "b"]},
            },
            "required": ["text"],
            "additionalProperties": false,
        });
        assert_eq!(validate(&schema, &json!({"text": "hi", "n": 2})), Ok(()));
        let error = |value| validate(&schema, &value).expect_err("invalid");
        assert_eq!(error(json!({})), "input.text is required");
        assert_eq!(error(json!({"text": ""})), "input.text is too short");
        assert_eq!(error(json!({"text": "toolong"})), "input.text is too long");
        assert_eq!(
            error(json!({"text": "a", "n": 1.5})),
            "input.n must be of type integer"
        );
        assert_eq!(error(json!({"text": "a", "n": 0})), "input.n is too small");
        assert_eq!(
            error(json!({"text": "a", "amount": 0})),
            "input.amount is too small"
        );
        assert_eq!(
            error(json!({"text": "a", "kind": "c"})),
            r#"input.kind must be one of ["a","b"]"#
        );
        assert_eq!(
            error(json!({"text": "a", "x": 1})),
            "input.x is not a known field"
        );
        assert_eq!(error(json!("text")), "input must be of type object");
    }
}
