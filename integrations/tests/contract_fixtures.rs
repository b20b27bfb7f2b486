//! Every provider action against its contract fixture (`src/catalog/{provider}/contract/{action}.json`):
//! run with the fixture's `input` against a stand-in answering the fixture's `response`, the
//! action sends exactly the fixture's `request` and succeeds. `contract.rs` checks the same
//! files against the providers' OpenAPI descriptions where one is published, so together they
//! tie each action to the real API.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::{Map, Value};
use stepwise_integrations::Registry;
use wiremock::matchers::any;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

/// The extract of a provider's published description (`contract/refresh.mjs`), beside its
/// fixtures; not a fixture.
const EXTRACT: &str = "openapi.json";

/// Every declared provider: each of their actions has a fixture.
fn providers() -> impl Iterator<Item = &'static str> {
    stepwise_integrations::providers::provider_names()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Fixture {
    /// The reference page the fixture is taken from, for a provider that publishes no OpenAPI
    /// description (no `contract:` in its declaration) or an operation its description lacks.
    #[serde(default)]
    source: Option<String>,
    operation: String,
    input: Value,
    request: ExpectedRequest,
    response: FixtureResponse,
}

#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedRequest {
    method: String,
    path: String,
    query: Option<Map<String, Value>>,
    body: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FixtureResponse {
    status: u16,
    body: Value,
}

/// `(action name, path)` of every fixture file in the providers' `contract/` folders.
fn fixture_files() -> Vec<(String, PathBuf)> {
    let catalog = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/catalog");
    let mut files = Vec::new();
    for provider in providers() {
        let dir = catalog.join(provider).join("contract");
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|error| panic!("{dir:?}: {error}")) {
            let path = entry.expect("directory entry").path();
            if path.file_name().is_some_and(|name| name == EXTRACT) {
                continue;
            }
            assert_eq!(
                path.extension().and_then(|ext| ext.to_str()),
                Some("json"),
                "{path:?}: fixtures are JSON files"
            );
            let action = path
                .file_stem()
                .and_then(|stem| stem.to_str())
                .expect("name");
            files.push((format!("{provider}.{action}"), path));
        }
    }
    files.sort();
    files
}

#[test]
fn every_provider_action_has_a_contract_fixture() {
    let registered: BTreeSet<String> = Registry::builtin()
        .iter()
        .map(|action| action.name().to_owned())
        .filter(|name| providers().any(|provider| name.starts_with(&format!("{provider}."))))
        .collect();
    let with_fixture: BTreeSet<String> =
        fixture_files().into_iter().map(|(name, _)| name).collect();
    assert_eq!(registered, with_fixture);
}

#[tokio::test]
async fn every_action_sends_its_fixture_request_and_accepts_its_response() {
    for (action, path) in fixture_files() {
        let text = std::fs::read_to_string(&path).expect("readable fixture");
        let fixture: Fixture = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{path:?}: not a fixture: {error}"));
        check_operation(&action, &fixture);
        check_source(&action, &fixture);

        let server = MockServer::start().await;
        Mock::given(any())
            .respond_with(
                ResponseTemplate::new(fixture.response.status)
                    .set_body_json(&fixture.response.body),
            )
            .mount(&server)
            .await;
        let output = support::run_provider_action(&server.uri(), &action, fixture.input.clone())
            .await
            .unwrap_or_else(|error| panic!("{action}: failed on its fixture: {error}"));
        assert!(output.is_object(), "{action}: output {output}");

        let received = server.received_requests().await.expect("recording");
        let [request] = received.as_slice() else {
            panic!("{action}: expected one request, got {}", received.len());
        };
        assert_eq!(
            sent(request),
            fixture.request,
            "{action}: the request differs from its fixture"
        );
    }
}

/// A fixture no published description checks cites the reference page it comes from.
fn check_source(action: &str, fixture: &Fixture) {
    let provider = action
        .split_once('.')
        .map_or(action, |(provider, _)| provider);
    let described = stepwise_integrations::providers::provider(provider)
        .is_some_and(|spec| spec.contract.is_some());
    let cited = fixture
        .source
        .as_deref()
        .is_some_and(|source| source.starts_with("https://"));
    assert!(
        described || cited,
        "{action}: its provider publishes no OpenAPI description, so the fixture cites its \
         reference page in `source`"
    );
}

/// The fixture's `operation` is `METHOD /template` whose method is the request's and whose
/// template matches the request's path segment by segment (`{name}` matches any text:
/// `{order_id}.json` matches `450789469.json`).
fn check_operation(action: &str, fixture: &Fixture) {
    let (method, template) = fixture.operation.split_once(' ').unwrap_or_else(|| {
        panic!(
            "{action}: operation `{}` is not `METHOD /path`",
            fixture.operation
        )
    });
    assert_eq!(method, fixture.request.method, "{action}: operation method");
    let template: Vec<&str> = template.split('/').collect();
    let concrete: Vec<&str> = fixture.request.path.split('/').collect();
    let matches = template.len() == concrete.len()
        && template
            .iter()
            .zip(&concrete)
            .all(|(expected, actual)| segment_matches(expected, actual));
    assert!(
        matches,
        "{action}: path `{}` does not match `{}`",
        fixture.request.path, fixture.operation
    );
}

/// Whether `actual` is the template segment `expected` with its `{name}`, if any, filled.
fn segment_matches(expected: &str, actual: &str) -> bool {
    let Some((prefix, rest)) = expected.split_once('{') else {
        return expected == actual;
    };
    let Some((_, suffix)) = rest.split_once('}') else {
        return expected == actual;
    };
    actual.len() > prefix.len() + suffix.len()
        && actual.starts_with(prefix)
        && actual.ends_with(suffix)
}

/// The request as a fixture states it: query and form bodies decoded, JSON bodies parsed.
fn sent(request: &Request) -> ExpectedRequest {
    let mut query = Map::new();
    for (key, value) in request.url.query_pairs() {
        let previous = query.insert(key.to_string(), Value::String(value.to_string()));
        assert!(previous.is_none(), "query parameter `{key}` repeated");
    }
    let content_type = request
        .headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    let body = if request.body.is_empty() {
        None
    } else if content_type.starts_with("application/json") {
        Some(serde_json::from_slice(&request.body).expect("a JSON body"))
    } else if content_type.starts_with("application/x-www-form-urlencoded") {
        Some(decode_form(&request.body))
    } else {
        panic!("unexpected request content type `{content_type}`")
    };
    ExpectedRequest {
        method: request.method.to_string(),
        path: request.url.path().to_owned(),
        query: (!query.is_empty()).then_some(query),
        body,
    }
}

/// A form body as JSON: `a=1&metadata[plan]=pro&expand[]=x` becomes
/// `{"a": "1", "metadata": {"plan": "pro"}, "expand": ["x"]}` (OpenAPI's `deepObject` style,
/// which Stripe uses), every value a string.
fn decode_form(body: &[u8]) -> Value {
    let mut root = Value::Object(Map::new());
    for (key, value) in form_urlencoded::parse(body) {
        let (name, rest) = key.split_once('[').unwrap_or((&key, ""));
        let mut path = vec![name.to_owned()];
        path.extend(
            rest.trim_end_matches(']')
                .split("][")
                .filter(|_| !rest.is_empty())
                .map(str::to_owned),
        );
        insert(&mut root, &path, Value::String(value.into_owned()), &key);
    }
    root
}

fn insert(node: &mut Value, path: &[String], value: Value, key: &str) {
    let Some((first, rest)) = path.split_first() else {
        *node = value;
        return;
    };
    if first.is_empty() {
        let Value::Array(items) = node else {
            panic!("form key `{key}`: `[]` on a value that is not a list");
        };
        items.push(Value::Null);
        return insert(items.last_mut().expect("just pushed"), rest, value, key);
    }
    let Value::Object(fields) = node else {
        panic!("form key `{key}`: `[{first}]` on a value that is not an object");
    };
    let child = fields
        .entry(first.clone())
        .or_insert_with(|| match rest.first() {
            None => Value::Null,
            Some(next) if next.is_empty() => Value::Array(Vec::new()),
            Some(_) => Value::Object(Map::new()),
        });
    if rest.is_empty() && !child.is_null() {
        panic!("form key `{key}` repeated");
    }
    insert(child, rest, value, key);
}

#[test]
fn form_bodies_decode_as_deep_objects() {
    assert_eq!(
        decode_form(
            b"amount=1500&metadata%5Border%5D=42&metadata%5Bnote%5D=a+b&expand%5B%5D=charge"
        ),
        serde_json::json!({
            "amount": "1500",
            "metadata": {"order": "42", "note": "a b"},
            "expand": ["charge"],
        })
    );
}
