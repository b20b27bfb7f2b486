//! The suite every registered action passes: a description, input and output schemas that are
//! well-formed JSON Schema documents with every input field described, and an example input
//! (`example:` in `actions.yaml`, `Action::example` for a Rust action) that the action accepts.
//! A new action without an example fails `every_action_has_an_accepted_example`.

use serde_json::{Map, Value};
use stepwise_integrations::Registry;

#[test]
fn every_action_has_an_accepted_example() {
    let registry = Registry::builtin();
    let mut problems = Vec::new();
    for action in registry.iter() {
        let name = action.name();
        match action.example() {
            None => problems.push(format!("{name}: no example")),
            Some(example) => {
                if let Err(error) = action.check_input(example) {
                    problems.push(format!("{name}: example rejected: {error}"));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn actions_are_named_and_described() {
    for action in Registry::builtin().iter() {
        let name = action.name();
        let (provider, verb) = name.split_once('.').unwrap_or_default();
        let is_ident = |part: &str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        };
        assert!(
            is_ident(provider) && is_ident(verb),
            "{name}: not `provider.action`"
        );
        assert!(
            !action.description().trim().is_empty(),
            "{name}: no description"
        );
    }
}

#[test]
fn schemas_are_well_formed() {
    for action in Registry::builtin().iter() {
        let name = action.name();
        for (kind, schema) in [
            ("input", action.input_schema()),
            ("output", action.output_schema()),
        ] {
            let root = schema
                .as_object()
                .unwrap_or_else(|| panic!("{name} {kind}: the schema is not an object"));
            assert_eq!(
                root.get("$schema").and_then(Value::as_str),
                Some("https://json-schema.org/draft/2020-12/schema"),
                "{name} {kind}: no draft 2020-12 `$schema`"
            );
            let mut problems = Vec::new();
            check_schema(schema, root, "#", &mut problems);
            assert!(problems.is_empty(), "{name} {kind}: {problems:#?}");
        }
    }
}

#[test]
fn inputs_are_documented_objects() {
    for action in Registry::builtin().iter() {
        let name = action.name();
        let schema = action.input_schema();
        assert_eq!(
            schema.get("type").and_then(Value::as_str),
            Some("object"),
            "{name}: `with:` is a mapping, so the input schema must be an object"
        );
        let properties = schema.get("properties").and_then(Value::as_object);
        for (field, property) in properties.into_iter().flatten() {
            let described = property
                .get("description")
                .and_then(Value::as_str)
                .is_some_and(|text| !text.trim().is_empty());
            assert!(
                described,
                "{name}: input field `{field}` has no doc comment"
            );
        }
    }
}

const TYPES: [&str; 7] = [
    "null", "boolean", "object", "array", "number", "string", "integer",
];

/// A structural check of the JSON Schema keywords schemars emits: enough to catch a hand-written
/// `extend(...)` typo or a dangling `$ref`.
fn check_schema(schema: &Value, root: &Map<String, Value>, at: &str, problems: &mut Vec<String>) {
    let object = match schema {
        Value::Bool(_) => return,
        Value::Object(object) => object,
        _ => return problems.push(format!("{at}: a schema is an object or a boolean")),
    };
    match object.get("type") {
        None => {}
        Some(Value::String(ty)) if TYPES.contains(&ty.as_str()) => {}
        Some(Value::Array(types))
            if types
                .iter()
                .all(|ty| ty.as_str().is_some_and(|ty| TYPES.contains(&ty))) => {}
        Some(other) => problems.push(format!("{at}: bad `type` {other}")),
    }
    if let Some(reference) = object.get("$ref") {
        let target = reference
            .as_str()
            .and_then(|r| r.strip_prefix("#/$defs/"))
            .and_then(|def| root.get("$defs")?.get(def));
        if target.is_none() {
            problems.push(format!("{at}: dangling `$ref` {reference}"));
        }
    }
    for keyword in ["description", "title", "format"] {
        if object.get(keyword).is_some_and(|value| !value.is_string()) {
            problems.push(format!("{at}: `{keyword}` is not a string"));
        }
    }
    if let Some(required) = object.get("required") {
        let names = required
            .as_array()
            .filter(|names| names.iter().all(Value::is_string));
        if names.is_none() {
            problems.push(format!("{at}: `required` is not an array of strings"));
        }
    }
    if object.get("enum").is_some_and(|values| !values.is_array()) {
        problems.push(format!("{at}: `enum` is not an array"));
    }
    for keyword in ["items", "additionalProperties", "not"] {
        if let Some(sub) = object.get(keyword) {
            check_schema(sub, root, &format!("{at}/{keyword}"), problems);
        }
    }
    for keyword in ["anyOf", "oneOf", "allOf"] {
        match object.get(keyword) {
            None => {}
            Some(Value::Array(subs)) if !subs.is_empty() => {
                for (index, sub) in subs.iter().enumerate() {
                    check_schema(sub, root, &format!("{at}/{keyword}/{index}"), problems);
                }
            }
            Some(_) => problems.push(format!("{at}: `{keyword}` is not a non-empty array")),
        }
    }
    for keyword in ["properties", "$defs"] {
        match object.get(keyword) {
            None => {}
            Some(Value::Object(subs)) => {
                for (key, sub) in subs {
                    check_schema(sub, root, &format!("{at}/{keyword}/{key}"), problems);
                }
            }
            Some(_) => problems.push(format!("{at}: `{keyword}` is not an object")),
        }
    }
}

/// Prints every schema with `--nocapture`; handy when writing a new action.
#[test]
fn print_schemas() {
    for action in Registry::builtin().iter() {
        println!("{} input: {}", action.name(), action.input_schema());
        println!("{} output: {}", action.name(), action.output_schema());
    }
}
