//! Contract tests: every provider action's request and response fixture
//! (`src/catalog/{provider}/contract/{action}.json`) is validated against the provider's
//! published OpenAPI description, reduced to the operations the actions call (the folder's
//! `contract/openapi.json`, written by `contract/refresh.mjs`). A fixture that drifts from the
//! real API fails here.

#[path = "contract/openapi.rs"]
mod openapi;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Instant;

use openapi::{Fixture, Spec, decode_brackets, to_json_schema};
use serde_json::{Value, json};
use stepwise_integrations::Registry;

/// The extract of a provider's published description, beside its fixtures; not a fixture.
const EXTRACT: &str = "openapi.json";

fn crate_dir() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `contract/` folder of every provider whose declaration names a published description
/// (`contract:`), as (provider, folder).
fn contract_dirs() -> Vec<(String, PathBuf)> {
    stepwise_integrations::providers::providers()
        .iter()
        .filter(|spec| spec.contract.is_some())
        .map(|spec| {
            let dir = crate_dir().join(format!("src/catalog/{}/contract", spec.name));
            (spec.name.clone(), dir)
        })
        .collect()
}

/// The extracted descriptions, keyed by provider; loaded once, so every test shares their
/// compiled validators.
fn specs() -> &'static BTreeMap<String, Spec> {
    static SPECS: LazyLock<BTreeMap<String, Spec>> = LazyLock::new(|| {
        let specs: BTreeMap<String, Spec> = contract_dirs()
            .into_iter()
            .map(|(_, dir)| dir.join(EXTRACT))
            .filter(|path| path.is_file())
            .map(|path| {
                let spec = Spec::load(&path);
                (spec.provider.clone(), spec)
            })
            .collect();
        assert!(
            !specs.is_empty(),
            "no extracted descriptions in src/catalog/*/contract/{EXTRACT}"
        );
        specs
    });
    &SPECS
}

fn fixture_path(action: &str) -> PathBuf {
    let (provider, verb) = action
        .split_once('.')
        .expect("actions are `provider.action`");
    crate_dir().join(format!("src/catalog/{provider}/contract/{verb}.json"))
}

/// Whether the fixture at `path` cites its reference page (`source`): its operation is one the
/// published description lacks, so `contract_fixtures.rs` alone checks it.
fn cites_its_page(path: &Path) -> bool {
    read_json(path).get("source").is_some()
}

/// Every fixture file on disk checked against a description, as (action name, path).
fn fixture_files() -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for (provider, dir) in contract_dirs() {
        for file in
            std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        {
            let path = file.expect("a directory entry").path();
            if path.file_name().is_some_and(|name| name == EXTRACT) || cites_its_page(&path) {
                continue;
            }
            let verb = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .unwrap_or_default();
            files.push((format!("{provider}.{verb}"), path));
        }
    }
    files.sort();
    files
}

fn relative(path: &Path) -> String {
    path.strip_prefix(crate_dir())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every problem of the fixture at `path` for `action`, each line naming the fixture file and
/// the JSON pointer into it.
fn check_fixture(
    specs: &BTreeMap<String, Spec>,
    action: &str,
    path: &Path,
    fixture: &Value,
) -> Vec<String> {
    let name = relative(path);
    let provider = action
        .split_once('.')
        .map_or(action, |(provider, _)| provider);
    let Some(spec) = specs.get(provider) else {
        return vec![format!(
            "{name}: no extracted description for provider `{provider}`"
        )];
    };
    let fixture: Fixture = match serde_json::from_value(fixture.clone()) {
        Ok(fixture) => fixture,
        Err(error) => return vec![format!("{name}: not a contract fixture: {error}")],
    };
    let mut problems = Vec::new();
    match spec.actions().get(action) {
        Some(operation) if *operation == fixture.operation => {}
        Some(operation) => problems.push(format!(
            "{name}#/operation: `{}`, but {action} calls `{operation}` (contract/refresh.mjs)",
            fixture.operation
        )),
        None => problems.push(format!(
            "{name}: {action} has no operation in contract/refresh.mjs"
        )),
    }
    problems.extend(
        spec.check(&fixture)
            .iter()
            .map(|violation| format!("{name}{violation}")),
    );
    match Registry::builtin().get(action) {
        Some(registered) => {
            if let Err(error) = registered.check_input(&fixture.input) {
                problems.push(format!("{name}#/input: {error}"));
            }
        }
        None => problems.push(format!("{name}: {action} is not a registered action")),
    }
    problems
}

fn read_json(path: &Path) -> Value {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("{}: not JSON: {error}", relative(path)))
}

#[test]
fn every_provider_action_has_an_operation() {
    let specs = specs();
    let missing: Vec<&str> = Registry::builtin()
        .iter()
        .map(|action| action.name())
        .filter(|name| {
            name.split_once('.')
                .and_then(|(provider, _)| specs.get(provider))
                .is_some_and(|spec| !spec.actions().contains_key(*name))
                && !(fixture_path(name).is_file() && cites_its_page(&fixture_path(name)))
        })
        .collect();
    assert!(
        missing.is_empty(),
        "actions without an operation in integrations/contract/refresh.mjs: {missing:?}"
    );
}

#[test]
fn every_operation_has_a_fixture_and_every_fixture_an_operation() {
    let specs = specs();
    let expected: Vec<String> = specs
        .values()
        .flat_map(|spec| spec.actions().into_keys())
        .collect();
    assert!(!expected.is_empty(), "the specs name no action");
    let missing: Vec<String> = expected
        .iter()
        .filter(|action| !fixture_path(action).is_file())
        .map(|action| relative(&fixture_path(action)))
        .collect();
    assert!(missing.is_empty(), "contract fixtures missing: {missing:?}");
    let stray: Vec<String> = fixture_files()
        .into_iter()
        .filter(|(action, _)| !expected.contains(action))
        .map(|(_, path)| relative(&path))
        .collect();
    assert!(
        stray.is_empty(),
        "fixtures of no extracted operation: {stray:?}"
    );
}

#[test]
fn fixtures_conform_to_the_provider_descriptions() {
    let started = Instant::now();
    let specs = specs();
    let files = fixture_files();
    assert!(!files.is_empty(), "no contract fixtures");
    let problems: Vec<String> = files
        .iter()
        .flat_map(|(action, path)| check_fixture(specs, action, path, &read_json(path)))
        .collect();
    assert!(
        problems.is_empty(),
        "fixtures drift from the providers' descriptions:\n{}",
        problems.join("\n")
    );
    eprintln!(
        "{} fixtures checked in {:?}",
        files.len(),
        started.elapsed()
    );
}

/// `fixture` with the value at `pointer` replaced, or removed when `value` is `None`.
fn tampered(mut fixture: Value, pointer: &str, value: Option<Value>) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("a pointer below the root");
    let parent = fixture
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("{pointer}: no parent in the fixture"));
    match (parent, value) {
        (Value::Object(fields), Some(value)) => {
            fields.insert(key.to_owned(), value);
        }
        (Value::Object(fields), None) => {
            fields
                .remove(key)
                .unwrap_or_else(|| panic!("{pointer}: nothing to remove"));
        }
        (Value::Array(items), Some(value)) => {
            items[key.parse::<usize>().expect("an index")] = value
        }
        (other, _) => panic!("{pointer}: cannot tamper inside {other}"),
    }
    fixture
}

#[test]
fn a_tampered_fixture_is_rejected_with_its_name_and_pointer() {
    let specs = specs();
    for (action, path) in fixture_files() {
        let original = read_json(&path);
        let method = original["request"]["method"].as_str().unwrap_or_default();
        let other_method = if method == "PUT" { "PATCH" } else { "PUT" };
        let request_path = original["request"]["path"].as_str().unwrap_or_default();
        let name = relative(&path);
        for (pointer, value, says) in [
            (
                "/request/method",
                json!(other_method),
                "but the operation is",
            ),
            (
                "/request/path",
                json!(format!("{request_path}/more")),
                "does not match",
            ),
        ] {
            let variant = tampered(original.clone(), pointer, Some(value));
            let problems = check_fixture(specs, &action, &path, &variant);
            let expected = format!("{name}#{pointer}:");
            assert!(
                problems
                    .iter()
                    .any(|problem| problem.starts_with(&expected) && problem.contains(says)),
                "{action}: tampering {pointer} should report `{expected} ... {says}`, got {problems:#?}"
            );
        }
    }
}

/// The checker's own test description (`contract/acme.json`): the OpenAPI 3.0 features the
/// providers' descriptions use, in a made-up API, so these tests depend on no provider.
fn acme() -> &'static Spec {
    static ACME: LazyLock<Spec> =
        LazyLock::new(|| Spec::load(&crate_dir().join("tests/contract/acme.json")));
    &ACME
}

/// A fixture of `acme()` that conforms, for each of its operations.
fn acme_fixture(operation: &str) -> Value {
    let issue = json!({
        "id": 1, "number": 1347, "title": "Broken", "closed_at": null,
        "user": {"id": 583231, "login": "octocat"},
    });
    let (path, query, body, status, answer) = match operation {
        "POST /repos/{owner}/{repo}/issues" => (
            "/repos/acme/web/issues",
            Value::Null,
            json!({"title": "Broken", "labels": ["bug"]}),
            201,
            issue,
        ),
        "GET /repos/{owner}/{repo}/issues" => (
            "/repos/acme/web/issues",
            json!({"state": "open", "per_page": "30"}),
            Value::Null,
            200,
            json!([issue]),
        ),
        "POST /chat.postMessage" => (
            "/chat.postMessage",
            Value::Null,
            json!({"channel": "C024BE91L", "text": "Paid"}),
            200,
            json!({"ok": true, "ts": "1700000000.000100", "message": {"text": "Paid", "ts": "1700000000.000100"}}),
        ),
        "POST /v1/customers" => (
            "/v1/customers",
            Value::Null,
            json!({"email": "ada@example.com", "name": "Ada Lovelace", "metadata[plan]": "pro"}),
            200,
            json!({"id": "cus_1", "object": "customer", "email": "ada@example.com", "livemode": false}),
        ),
        other => panic!("no acme fixture of {other}"),
    };
    json!({
        "operation": operation,
        "input": {},
        "request": {"method": operation.split(' ').next(), "path": path, "query": query, "body": body},
        "response": {"status": status, "body": answer},
    })
}

/// The problems `acme()` finds in `fixture`, each `#pointer: message`.
fn acme_problems(fixture: Value) -> Vec<String> {
    let fixture: Fixture = serde_json::from_value(fixture).expect("a contract fixture");
    acme()
        .check(&fixture)
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn a_value_that_breaks_the_description_is_rejected_at_its_pointer() {
    const ISSUE: &str = "POST /repos/{owner}/{repo}/issues";
    const MESSAGE: &str = "POST /chat.postMessage";
    const CUSTOMER: &str = "POST /v1/customers";
    // (operation, pointer, new value or removal, the pointer the problem names, words it says)
    let cases: [(&str, &str, Option<Value>, &str, &str); 12] = [
        (
            ISSUE,
            "/response/body/number",
            None,
            "#/response/body:",
            "\"number\" is a required property",
        ),
        (
            ISSUE,
            "/response/body/user/id",
            Some(json!("583231")),
            "#/response/body/user/id:",
            "is not of type \"integer\"",
        ),
        (
            ISSUE,
            "/response/body/closed_at",
            Some(json!("yesterday")),
            "#/response/body/closed_at:",
            "is not a \"date-time\"",
        ),
        (
            ISSUE,
            "/request/body/title",
            Some(json!(true)),
            "#/request/body/title:",
            "is not valid under any of the schemas",
        ),
        (
            ISSUE,
            "/request/path",
            Some(json!("/repos/acme/issues")),
            "#/request/path:",
            "does not match `/repos/{owner}/{repo}/issues`",
        ),
        (
            ISSUE,
            "/request/method",
            Some(json!("PUT")),
            "#/request/method:",
            "the operation is POST",
        ),
        (
            MESSAGE,
            "/response/body/ts",
            Some(json!("yesterday")),
            "#/response/body/ts:",
            "does not match",
        ),
        (
            MESSAGE,
            "/response/body/message/app_name",
            Some(json!("Stepwise")),
            "#/response/body/message:",
            "Additional properties are not allowed",
        ),
        (
            CUSTOMER,
            "/response/body/livemode",
            Some(json!("false")),
            "#/response/body/livemode:",
            "is not of type \"boolean\"",
        ),
        (
            CUSTOMER,
            "/request/body/balance",
            Some(json!("ten")),
            "#/request/body/balance:",
            "is not of type \"integer\"",
        ),
        (
            CUSTOMER,
            "/request/body/invoice_settings[footer]",
            Some(json!("x".repeat(5001))),
            "#/request/body/invoice_settings/footer:",
            "is longer than 5000 characters",
        ),
        (
            CUSTOMER,
            "/request/body/nickname",
            Some(json!("Ada")),
            "#/request/body:",
            "Additional properties are not allowed ('nickname' was unexpected)",
        ),
    ];
    for (operation, pointer, value, names, says) in cases {
        let original = acme_fixture(operation);
        assert_eq!(
            acme_problems(original.clone()),
            Vec::<String>::new(),
            "{operation}: the untampered fixture must pass"
        );
        let problems = acme_problems(tampered(original, pointer, value));
        assert!(
            problems
                .iter()
                .any(|problem| problem.starts_with(names) && problem.contains(says)),
            "{operation}: tampering {pointer} should report `{names} ... {says}`, got {problems:#?}"
        );
    }
}

#[test]
fn wire_forms_of_valid_values_are_accepted() {
    const MESSAGE: &str = "POST /chat.postMessage";
    const CUSTOMER: &str = "POST /v1/customers";
    // (operation, pointer, a value as the wire or the fixture writer may give it)
    let cases = [
        (CUSTOMER, "/request/body/balance", json!("-500")),
        (CUSTOMER, "/request/body/metadata[order]", json!("42")),
        (CUSTOMER, "/request/body/expand[]", json!("tax")),
        (
            CUSTOMER,
            "/request/body/invoice_settings",
            json!({"custom_fields": {"0": {"name": "PO", "value": "42"}}}),
        ),
        (CUSTOMER, "/request/body/address", json!("")),
        (
            MESSAGE,
            "/request/body/blocks",
            json!([{"type": "section", "text": {"type": "mrkdwn", "text": "Paid"}}]),
        ),
        (MESSAGE, "/request/body/unfurl_links", json!("false")),
        (MESSAGE, "/request/body/unfurl_media", json!(true)),
        // Paths may carry the server's base path (`https://api.acme.test/api`).
        (MESSAGE, "/request/path", json!("/api/chat.postMessage")),
    ];
    for (operation, pointer, value) in cases {
        let variant = tampered(acme_fixture(operation), pointer, Some(value.clone()));
        let problems = acme_problems(variant);
        assert!(
            problems.is_empty(),
            "{operation}: {pointer} = {value} should pass: {problems:#?}"
        );
    }
}

#[test]
fn query_strings_are_coerced_to_their_parameter_types_and_checked() {
    let list_issues = |query: Value| {
        acme_problems(tampered(
            acme_fixture("GET /repos/{owner}/{repo}/issues"),
            "/request/query",
            Some(query),
        ))
    };
    assert_eq!(
        list_issues(json!({"state": "open", "labels": "bug,ui", "per_page": "30", "page": 2})),
        Vec::<String>::new()
    );
    let problems = list_issues(json!({"state": "opened", "per_page": "ten"}));
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("#/request/query/state:") && p.contains("is not one of")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("#/request/query/per_page:")
                && p.contains("is not of type \"integer\"")),
        "{problems:#?}"
    );
}

#[test]
fn a_fixture_of_an_unknown_operation_or_query_is_rejected() {
    let original = acme_fixture("POST /repos/{owner}/{repo}/issues");
    let wrong_operation = tampered(
        original.clone(),
        "/operation",
        Some(json!("POST /repos/{owner}/{repo}/pulls")),
    );
    let problems = acme_problems(wrong_operation);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("is not an operation of the extracted acme description")),
        "{problems:#?}"
    );
    let with_query = tampered(original, "/request/query", Some(json!({"draft": "true"})));
    let problems = acme_problems(with_query);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("#/request/query/draft: `draft` is not a query parameter")),
        "{problems:#?}"
    );
}

#[test]
fn openapi_schemas_become_json_schema() {
    let cases = [
        (
            json!({"type": "string", "nullable": true}),
            json!({"type": ["string", "null"]}),
        ),
        (
            json!({"type": "string", "enum": ["open", "closed"], "nullable": true}),
            json!({"type": ["string", "null"], "enum": ["open", "closed", null]}),
        ),
        (
            json!({"anyOf": [{"$ref": "#/components/schemas/address"}], "nullable": true}),
            json!({"anyOf": [{"type": "null"}, {"anyOf": [{"$ref": "#/components/schemas/address"}]}]}),
        ),
        (
            json!({"$ref": "#/components/schemas/customer", "nullable": true}),
            json!({"$ref": "#/components/schemas/customer"}),
        ),
        (
            json!({"type": "integer", "minimum": 0, "exclusiveMinimum": true}),
            json!({"type": "integer", "exclusiveMinimum": 0}),
        ),
        (
            json!({"type": "integer", "maximum": 9, "exclusiveMaximum": false}),
            json!({"type": "integer", "maximum": 9}),
        ),
        (
            json!({"type": ["string", "null"], "const": "x"}),
            json!({"type": ["string", "null"], "const": "x"}),
        ),
        (
            json!({"type": "object", "properties": {"nullable": {"type": "boolean", "nullable": true, "readOnly": true}}}),
            json!({"type": "object", "properties": {"nullable": {"type": ["boolean", "null"]}}}),
        ),
        (
            json!({"type": "array", "items": {"type": "object", "additionalProperties": {"type": "integer", "nullable": true}}}),
            json!({"type": "array", "items": {"type": "object", "additionalProperties": {"type": ["integer", "null"]}}}),
        ),
        (
            json!({"type": "object", "required": ["@odata.type", "id"], "properties": {"@odata.type": {"type": "string"}}}),
            json!({"type": "object", "required": ["id"], "properties": {"@odata.type": {"type": "string"}}}),
        ),
    ];
    for (openapi, expected) in cases {
        assert_eq!(to_json_schema(&openapi), expected, "{openapi}");
    }
}

#[test]
fn form_keys_with_brackets_decode_into_objects_and_arrays() {
    let fields = json!({
        "email": "ada@example.com",
        "metadata[plan]": "pro",
        "metadata[seats]": "3",
        "expand[]": "customer",
        "items[1][price]": "price_2",
        "items[0][price]": "price_1",
    });
    let decoded = decode_brackets(fields.as_object().expect("an object"));
    assert_eq!(
        Value::Object(decoded),
        json!({
            "email": "ada@example.com",
            "metadata": {"plan": "pro", "seats": "3"},
            "expand": ["customer"],
            "items": [{"price": "price_1"}, {"price": "price_2"}],
        })
    );
}
