//! The suite every registered action passes: a description, input and output schemas that are
//! well-formed JSON Schema documents with every input field described, and a fixture input that
//! the action accepts. A new action without a fixture here fails `every_action_has_a_fixture`.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};
use stepwise_integrations::Registry;

/// One realistic `with:` per action, keyed by action name.
fn fixtures() -> BTreeMap<&'static str, Value> {
    BTreeMap::from([
        (
            "core.log",
            json!({"message": {"order": 42}, "level": "warn"}),
        ),
        ("core.set", json!({"customer_id": 42, "tags": ["vip"]})),
        ("core.fail", json!({"message": "order 42 has no lines"})),
        ("core.sleep", json!({"duration": "1h 30m"})),
        (
            "core.wait_for_webhook",
            json!({
                "source": "github",
                "events": ["pull_request"],
                "match": {"body.action": "closed", "body.pull_request.number": 42},
                "timeout": "7d",
            }),
        ),
        (
            "github.create_issue",
            json!({
                "owner": "acme",
                "repo": "web",
                "title": "Checkout fails",
                "body": "Seen in run 42",
                "labels": ["bug"],
                "assignees": ["octocat"],
            }),
        ),
        (
            "github.comment",
            json!({"owner": "acme", "repo": "web", "issue_number": 1347, "body": "Fixed in run 42"}),
        ),
        (
            "github.list_issues",
            json!({
                "owner": "acme",
                "repo": "web",
                "state": "all",
                "labels": ["bug", "ui"],
                "per_page": 50,
                "max_pages": 3,
            }),
        ),
        (
            "notion.append_block_children",
            json!({
                "block_id": "b55c9c91-384d-452b-81db-d1ef79372b75",
                "children": [{"object": "block", "type": "paragraph",
                              "paragraph": {"rich_text": [{"text": {"content": "Refunded order 42."}}]}}],
            }),
        ),
        (
            "notion.get_page",
            json!({"page_id": "59833787-2cf9-4fdf-8782-e53db20768a5"}),
        ),
        (
            "notion.query_database",
            json!({
                "database_id": "897e5a76ae524b489fdfe71f5945d1af",
                "filter": {"property": "Status", "select": {"equals": "Reading"}},
                "sorts": [{"property": "Due", "direction": "ascending"}],
                "page_size": 50,
                "max_pages": 3,
            }),
        ),
        (
            "openai.create_chat_completion",
            json!({
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "system", "content": "Sort tickets into billing, bug or other."},
                    {"role": "user", "content": "I was charged twice for order 42."},
                ],
                "temperature": 0,
                "max_tokens": 5,
            }),
        ),
        (
            "openai.create_embeddings",
            json!({"model": "text-embedding-3-small", "input": ["Refund for order 42"]}),
        ),
        ("openai.list_models", json!({})),
        (
            "slack.list_channels",
            json!({
                "types": ["public_channel", "private_channel"],
                "exclude_archived": true,
                "limit": 100,
                "max_pages": 5,
            }),
        ),
        (
            "slack.post_message",
            json!({"channel": "#sales", "text": "Paid: 42 EUR", "thread_ts": "1700000000.000100"}),
        ),
        (
            "slack.update_message",
            json!({"channel": "C024BE91L", "ts": "1700000000.000100", "text": "Refunded: 42 EUR"}),
        ),
        (
            "stripe.create_customer",
            json!({
                "email": "ada@example.com",
                "name": "Ada Lovelace",
                "metadata": {"plan": "pro"},
            }),
        ),
        (
            "stripe.create_refund",
            json!({
                "payment_intent": "pi_3MtwBwLkdIwHu7ix28a3tqPa",
                "amount": 1500,
                "reason": "requested_by_customer",
                "metadata": {"order": "42"},
            }),
        ),
        (
            "stripe.get_payment_intent",
            json!({"id": "pi_3MtwBwLkdIwHu7ix28a3tqPa"}),
        ),
        (
            "http.request",
            json!({
                "method": "POST",
                "url": "https://api.example.com/orders",
                "headers": {"Authorization": "Bearer secret"},
                "query": {"page": 2, "expand": true, "q": "open"},
                "json": {"id": 42},
                "timeout": "10s",
                "fail_on_status": false,
            }),
        ),
        (
            "workflow.run",
            json!({"workflow": "refund", "input": {"order": 42}, "timeout": "10m"}),
        ),
    ])
}

#[test]
fn every_action_has_a_fixture() {
    let registry = Registry::builtin();
    let registered: Vec<&str> = registry.iter().map(|action| action.name()).collect();
    let fixtures = fixtures();
    let with_fixture: Vec<&str> = fixtures.keys().copied().collect();
    assert_eq!(
        registered, with_fixture,
        "every registered action needs exactly one fixture in tests/conformance.rs"
    );
}

#[test]
fn fixtures_are_accepted() {
    let registry = Registry::builtin();
    for (name, fixture) in fixtures() {
        let action = registry
            .get(name)
            .expect("fixture names a registered action");
        if let Err(error) = action.check_input(&fixture) {
            panic!("{name}: fixture rejected: {error}");
        }
    }
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
