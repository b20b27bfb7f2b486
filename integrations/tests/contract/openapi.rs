//! The extracted provider descriptions (`src/catalog/{provider}/contract/openapi.json`, written
//! by `contract/refresh.mjs`) and the check of one contract fixture against its operation.
//!
//! OpenAPI 3.0 schema objects become JSON Schema 2020-12 (`to_json_schema`): `nullable` adds
//! `null` (to `type` and `enum`, or as an `anyOf` branch when the schema composes others),
//! boolean `exclusiveMinimum`/`exclusiveMaximum` become numeric bounds, siblings of a `$ref`
//! are dropped as OpenAPI 3.0 says; 3.1 style (`type` arrays, `const`) passes through.
//! Formats are validated (unknown ones, such as Stripe's `unix-time`, are ignored).
//!
//! Form-encoded bodies, query strings and path segments carry strings, so values are coerced
//! to the schema's type before validation (`"true"` to a boolean, `"10"` to an integer where
//! the schema wants one; anything else stays a string and fails the type check). Bracketed
//! keys (`metadata[plan]`, `expand[]`, `items[0][price]`) are decoded into objects and arrays,
//! as Stripe's `deepObject` style encodes them (a fixture may give them decoded already, and an
//! object keyed `0`, `1`... where the schema wants an array is that array); an array or object given for a field the form
//! schema types as a string is its JSON text (Slack's `blocks` travel as JSON in a form field,
//! or as JSON in a JSON body, which Slack also accepts). A query parameter of `style: form`
//! with `explode: false` is an array written as one comma-separated value (OpenAPI 3.0
//! "Style Values"), so it is split before validation (Microsoft Graph's `$select`).
//!
//! OData control information (`@odata.type`, `@odata.etag`...) is never required: an OData
//! payload states `@odata.type` only when the type cannot be inferred (OData JSON Format 4.01,
//! section 4.5.3), but descriptions generated from OData metadata (Microsoft Graph's) list it
//! as required on every type.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use jsonschema::Validator;

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// One provider's extracted description.
#[derive(Debug, Deserialize)]
pub struct Spec {
    pub provider: String,
    pub source: Value,
    /// Keyed `METHOD /path/template`.
    pub operations: BTreeMap<String, Value>,
    #[serde(default)]
    pub components: Map<String, Value>,
    #[serde(skip)]
    converted_schemas: Value,
    /// Compiled validators by schema text: a schema compiles once however many fixtures use it.
    #[serde(skip)]
    validators: Mutex<HashMap<String, Arc<Validator>>>,
}

/// A fixture file, in the format both the contract test and the actions' wiremock test read.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixture {
    pub operation: String,
    pub input: Value,
    pub request: FixtureRequest,
    pub response: FixtureResponse,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureRequest {
    pub method: String,
    pub path: String,
    pub query: Option<Map<String, Value>>,
    pub body: Option<Value>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FixtureResponse {
    pub status: u16,
    pub body: Value,
}

/// One way a fixture departs from its operation: where (a JSON pointer into the fixture file)
/// and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}: {}", self.pointer, self.message)
    }
}

fn violation(pointer: impl Into<String>, message: impl Into<String>) -> Violation {
    Violation {
        pointer: pointer.into(),
        message: message.into(),
    }
}

impl Spec {
    pub fn load(path: &Path) -> Spec {
        let text = std::fs::read_to_string(path)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let mut spec: Spec = serde_json::from_str(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        let schemas = spec
            .components
            .get("schemas")
            .and_then(Value::as_object)
            .map(|schemas| {
                schemas
                    .iter()
                    .map(|(name, schema)| (name.clone(), to_json_schema(schema)))
                    .collect::<Map<_, _>>()
            })
            .unwrap_or_default();
        spec.converted_schemas = Value::Object(schemas);
        spec
    }

    /// The action (`provider.action`) of each operation.
    pub fn actions(&self) -> BTreeMap<String, String> {
        self.operations
            .iter()
            .map(|(operation, object)| {
                let action = object["action"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{}: {operation} names no action", self.provider));
                (action.to_owned(), operation.clone())
            })
            .collect()
    }

    /// The base path of the provider's server (`/api` for Slack's `https://slack.com/api`).
    fn server_path(&self) -> &str {
        let url = self.source["servers"][0].as_str().unwrap_or_default();
        let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
        after_scheme
            .find('/')
            .map_or("", |slash| after_scheme[slash..].trim_end_matches('/'))
    }

    /// `node`, or what its `$ref` chain (`#/components/...`) points to.
    fn deref<'a>(&'a self, mut node: &'a Value) -> &'a Value {
        while let Some(reference) = node.get("$ref").and_then(Value::as_str) {
            node = self.pointer(reference);
        }
        node
    }

    fn pointer(&self, reference: &str) -> &Value {
        reference
            .strip_prefix("#/components")
            .and_then(|rest| {
                let (kind, rest) = rest.trim_start_matches('/').split_once('/')?;
                let name = rest.replace("~1", "/").replace("~0", "~");
                self.components.get(kind)?.get(name)
            })
            .unwrap_or_else(|| panic!("{}: unresolved $ref {reference}", self.provider))
    }

    /// Validates `instance` against the OpenAPI `schema`; violations point below `pointer`.
    pub fn validate(&self, schema: &Value, instance: &Value, pointer: &str) -> Vec<Violation> {
        let validator = self.validator(schema);
        validator
            .iter_errors(instance)
            .map(|error| {
                violation(
                    format!("{pointer}{}", error.instance_path().as_str()),
                    error.to_string(),
                )
            })
            .collect()
    }

    fn validator(&self, schema: &Value) -> Arc<Validator> {
        let key = schema.to_string();
        let mut validators = self
            .validators
            .lock()
            .expect("no test panics holding the lock");
        let validator = validators.entry(key).or_insert_with(|| {
            let mut root = match to_json_schema(schema) {
                Value::Object(root) => root,
                other => Map::from_iter([("allOf".to_owned(), json!([other]))]),
            };
            // Converted components under their original pointer, so `$ref`s resolve unchanged.
            root.insert(
                "components".to_owned(),
                json!({ "schemas": self.converted_schemas }),
            );
            let validator = jsonschema::draft202012::options()
                .should_validate_formats(true)
                .build(&Value::Object(root))
                .unwrap_or_else(|error| {
                    panic!("{}: schema does not compile: {error}", self.provider)
                });
            Arc::new(validator)
        });
        Arc::clone(validator)
    }

    /// Every violation of `fixture` against its operation in this spec; empty when it conforms.
    pub fn check(&self, fixture: &Fixture) -> Vec<Violation> {
        let Some(operation) = self.operations.get(&fixture.operation) else {
            return vec![violation(
                "/operation",
                format!(
                    "`{}` is not an operation of the extracted {} description (add it to refresh.mjs)",
                    fixture.operation, self.provider
                ),
            )];
        };
        let (method, template) = fixture
            .operation
            .split_once(' ')
            .expect("operation keys are `METHOD /path`");
        let mut violations = Vec::new();
        if !fixture.request.method.eq_ignore_ascii_case(method) {
            violations.push(violation(
                "/request/method",
                format!(
                    "`{}`, but the operation is {method}",
                    fixture.request.method
                ),
            ));
        }
        let parameters: Vec<&Value> = operation["parameters"]
            .as_array()
            .map(|parameters| parameters.iter().map(|p| self.deref(p)).collect())
            .unwrap_or_default();
        violations.extend(self.check_path(template, &fixture.request.path, &parameters));
        violations.extend(self.check_query(fixture.request.query.as_ref(), &parameters));
        violations.extend(self.check_body(operation, fixture.request.body.as_ref()));
        violations.extend(self.check_response(operation, &fixture.response));
        violations
    }

    fn check_path(&self, template: &str, path: &str, parameters: &[&Value]) -> Vec<Violation> {
        const POINTER: &str = "/request/path";
        let path = path
            .strip_prefix(self.server_path())
            .filter(|rest| rest.starts_with('/'))
            .unwrap_or(path);
        let expected: Vec<&str> = template.split('/').collect();
        let actual: Vec<&str> = path.split('/').collect();
        if expected.len() != actual.len() {
            return vec![violation(
                POINTER,
                format!("`{path}` does not match `{template}`"),
            )];
        }
        let mut violations = Vec::new();
        for (expected, actual) in expected.into_iter().zip(actual) {
            // `{name}`, with literal text around it or not (Google's `{range}:append`).
            let parameter = expected.split_once('{').and_then(|(prefix, rest)| {
                let (name, suffix) = rest.split_once('}')?;
                let value = actual.strip_prefix(prefix)?.strip_suffix(suffix)?;
                Some((name, value))
            });
            let Some((name, value)) = parameter else {
                if expected != actual {
                    violations.push(violation(
                        POINTER,
                        format!("`{path}` does not match `{template}` at `{actual}`"),
                    ));
                }
                continue;
            };
            let decoded = percent_decode(value);
            if decoded.is_empty() {
                violations.push(violation(POINTER, format!("`{{{name}}}` is empty")));
                continue;
            }
            match find_parameter(parameters, "path", name) {
                Some(parameter) => {
                    let value = self.coerce(&Value::String(decoded), &parameter["schema"]);
                    violations.extend(
                        self.validate(&parameter["schema"], &value, POINTER)
                            .into_iter()
                            .map(|v| violation(v.pointer, format!("`{{{name}}}`: {}", v.message))),
                    );
                }
                None => violations.push(violation(
                    POINTER,
                    format!("`{{{name}}}` is not a declared path parameter"),
                )),
            }
        }
        violations
    }

    fn check_query(
        &self,
        query: Option<&Map<String, Value>>,
        parameters: &[&Value],
    ) -> Vec<Violation> {
        let empty = Map::new();
        let query = query.unwrap_or(&empty);
        let mut violations = Vec::new();
        for parameter in parameters.iter().filter(|p| p["in"] == "query") {
            let name = parameter["name"].as_str().unwrap_or_default();
            if parameter["required"] == true && !query.contains_key(name) {
                violations.push(violation(
                    "/request/query",
                    format!("required query parameter `{name}` is missing"),
                ));
            }
        }
        let decoded = decode_brackets(query);
        for (name, value) in &decoded {
            let pointer = format!("/request/query/{}", escape_pointer(name));
            match find_parameter(parameters, "query", name) {
                Some(parameter) => {
                    let value = match value {
                        Value::String(text)
                            if parameter["explode"] == false
                                && self.types_of(&parameter["schema"]).contains("array") =>
                        {
                            Value::Array(
                                text.split(',')
                                    .map(|item| Value::String(item.to_owned()))
                                    .collect(),
                            )
                        }
                        other => other.clone(),
                    };
                    let value = self.coerce(&value, &parameter["schema"]);
                    violations.extend(self.validate(&parameter["schema"], &value, &pointer));
                }
                None => violations.push(violation(
                    pointer,
                    format!("`{name}` is not a query parameter of the operation"),
                )),
            }
        }
        violations
    }

    fn check_body(&self, operation: &Value, body: Option<&Value>) -> Vec<Violation> {
        const POINTER: &str = "/request/body";
        let request_body = operation.get("requestBody").map(|node| self.deref(node));
        let (Some(request_body), Some(body)) = (request_body, body) else {
            return match (request_body, body) {
                (Some(declared), None) if declared["required"] == true => {
                    vec![violation(POINTER, "the operation requires a body")]
                }
                (None, Some(_)) => vec![violation(POINTER, "the operation takes no body")],
                _ => Vec::new(),
            };
        };
        let content = &request_body["content"];
        if let Some(schema) = json_body_schema(content) {
            return self.validate(schema, body, POINTER);
        }
        let Some(form) = content.get("application/x-www-form-urlencoded") else {
            return vec![violation(
                POINTER,
                format!("no JSON or form media type among {content}"),
            )];
        };
        let Value::Object(fields) = body else {
            return vec![violation(
                POINTER,
                "a form body must be an object of fields",
            )];
        };
        let decoded = Value::Object(decode_brackets(fields));
        let coerced = self.coerce(&decoded, &form["schema"]);
        self.validate(&form["schema"], &coerced, POINTER)
    }

    fn check_response(&self, operation: &Value, response: &FixtureResponse) -> Vec<Violation> {
        let responses = &operation["responses"];
        let status = response.status.to_string();
        let range = format!("{}XX", response.status / 100);
        let Some(declared) = [status.as_str(), range.as_str(), "default"]
            .into_iter()
            .find_map(|key| responses.get(key))
        else {
            return vec![violation(
                "/response/status",
                format!("{status} is not a declared response of the operation"),
            )];
        };
        let declared = self.deref(declared);
        let schema = declared["content"]
            .as_object()
            .and_then(|content| {
                content
                    .iter()
                    .find(|(media, _)| media.starts_with("application/json"))
            })
            .map(|(_, media)| &media["schema"]);
        match schema {
            Some(schema) => self.validate(schema, &response.body, "/response/body"),
            None if response.body.is_null() => Vec::new(),
            None => vec![violation(
                "/response/body",
                format!("the {status} response declares no JSON body"),
            )],
        }
    }

    /// `value` with strings turned into the booleans and numbers `schema` asks for, and arrays
    /// or objects turned into JSON text where `schema` only takes a string (see the module docs).
    fn coerce(&self, value: &Value, schema: &Value) -> Value {
        let types = self.types_of(schema);
        let wants = |kind: &str| types.contains(kind);
        match value {
            Value::String(text) if !types.is_empty() && !wants("string") => {
                let boolean = match text.as_str() {
                    "true" | "false" if wants("boolean") => Some(Value::Bool(text == "true")),
                    _ => None,
                };
                let integer = (wants("integer") || wants("number"))
                    .then(|| text.parse::<i64>().ok().map(Value::from))
                    .flatten();
                let number = wants("number")
                    .then(|| text.parse::<f64>().ok().map(Value::from))
                    .flatten();
                let parsed = boolean.or(integer).or(number);
                parsed.unwrap_or_else(|| value.clone())
            }
            // `items[0][price]` decoded as an object keyed by index.
            Value::Object(fields)
                if wants("array")
                    && !wants("object")
                    && !fields.is_empty()
                    && fields.keys().all(|key| key.parse::<usize>().is_ok()) =>
            {
                let mut indexed: Vec<(usize, &Value)> = fields
                    .iter()
                    .map(|(key, item)| (key.parse().expect("checked numeric above"), item))
                    .collect();
                indexed.sort_by_key(|(index, _)| *index);
                let items = indexed.into_iter().map(|(_, item)| item.clone()).collect();
                self.coerce(&Value::Array(items), schema)
            }
            Value::Array(items) if wants("array") || !wants("string") => Value::Array(
                items
                    .iter()
                    .map(
                        |item| match self.subschemas(schema, &|s| s.get("items")).first() {
                            Some(items) => self.coerce(item, items),
                            None => item.clone(),
                        },
                    )
                    .collect(),
            ),
            Value::Object(fields) if wants("object") || !wants("string") => Value::Object(
                fields
                    .iter()
                    .map(|(name, field)| {
                        let property = self
                            .subschemas(schema, &|s| s.get("properties")?.get(name))
                            .into_iter()
                            .chain(self.subschemas(schema, &|s| {
                                s.get("additionalProperties").filter(|a| a.is_object())
                            }))
                            .next();
                        let coerced =
                            property.map_or_else(|| field.clone(), |p| self.coerce(field, p));
                        (name.clone(), coerced)
                    })
                    .collect(),
            ),
            Value::Array(_) | Value::Object(_) => Value::String(value.to_string()),
            _ => value.clone(),
        }
    }

    /// The JSON types `schema` admits, through `$ref`s and `allOf`/`anyOf`/`oneOf`.
    fn types_of(&self, schema: &Value) -> BTreeSet<String> {
        let mut types = BTreeSet::new();
        self.each_branch(schema, &mut |branch| match &branch["type"] {
            Value::String(kind) => {
                types.insert(kind.clone());
            }
            Value::Array(kinds) => {
                types.extend(kinds.iter().filter_map(Value::as_str).map(str::to_owned))
            }
            _ => {}
        });
        types
    }

    /// What `pick` finds in `schema` or any of its composed branches, in order.
    fn subschemas<'a>(
        &'a self,
        schema: &'a Value,
        pick: &dyn Fn(&'a Value) -> Option<&'a Value>,
    ) -> Vec<&'a Value> {
        let mut found = Vec::new();
        self.each_branch(schema, &mut |branch| found.extend(pick(branch)));
        found
    }

    fn each_branch<'a>(&'a self, schema: &'a Value, visit: &mut dyn FnMut(&'a Value)) {
        let schema = self.deref(schema);
        visit(schema);
        for keyword in ["allOf", "anyOf", "oneOf"] {
            for branch in schema[keyword].as_array().into_iter().flatten() {
                self.each_branch(branch, visit);
            }
        }
    }
}

/// The schema of a JSON request body: the `application/json` one, else, in a description
/// converted from Google's Discovery format, the one schema every upload media type states
/// (Gmail's `messages.send` lists only `message/*` types, each with the `Message` resource
/// that its JSON body is).
fn json_body_schema(content: &Value) -> Option<&Value> {
    if let Some(json) = content.get("application/json") {
        return Some(&json["schema"]);
    }
    let media = content.as_object()?;
    let mut schemas = media
        .iter()
        .filter(|(kind, _)| *kind != "application/x-www-form-urlencoded")
        .map(|(_, media)| &media["schema"]);
    let first = schemas.next()?;
    schemas.all(|schema| schema == first).then_some(first)
}

fn find_parameter<'a>(parameters: &[&'a Value], location: &str, name: &str) -> Option<&'a Value> {
    parameters
        .iter()
        .copied()
        .find(|p| p["in"] == location && p["name"] == name)
}

/// An OpenAPI 3.0 (or 3.1) schema object as a JSON Schema 2020-12 schema.
pub fn to_json_schema(schema: &Value) -> Value {
    let Value::Object(object) = schema else {
        return schema.clone();
    };
    if let Some(reference) = object.get("$ref") {
        return json!({ "$ref": reference });
    }
    let mut converted = Map::new();
    for (keyword, value) in object {
        let value = match keyword.as_str() {
            "properties" | "patternProperties" => Value::Object(
                value
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(name, schema)| (name.clone(), to_json_schema(schema)))
                    .collect(),
            ),
            "items" | "additionalProperties" | "not" => to_json_schema(value),
            "required" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|name| {
                        name.as_str()
                            .is_none_or(|name| !name.starts_with("@odata."))
                    })
                    .cloned()
                    .collect(),
            ),
            "allOf" | "anyOf" | "oneOf" => Value::Array(
                value
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(to_json_schema)
                    .collect(),
            ),
            // OpenAPI-only keywords that JSON Schema would misread or that say nothing about
            // validity.
            "nullable" | "discriminator" | "xml" | "readOnly" | "writeOnly" | "deprecated" => {
                continue;
            }
            _ => value.clone(),
        };
        converted.insert(keyword.clone(), value);
    }
    for (flag, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(exclusive)) = converted.get(flag).cloned() {
            converted.remove(flag);
            if exclusive && let Some(limit) = converted.remove(bound) {
                converted.insert(flag.to_owned(), limit);
            }
        }
    }
    if object.get("nullable") != Some(&Value::Bool(true)) {
        return Value::Object(converted);
    }
    let composed = ["allOf", "anyOf", "oneOf", "not"]
        .iter()
        .any(|keyword| converted.contains_key(*keyword));
    match converted.get_mut("type") {
        Some(kind) if !composed => {
            let mut kinds = match kind.take() {
                Value::Array(kinds) => kinds,
                single => vec![single],
            };
            if !kinds.contains(&json!("null")) {
                kinds.push(json!("null"));
            }
            *kind = Value::Array(kinds);
            if let Some(Value::Array(members)) = converted.get_mut("enum")
                && !members.contains(&Value::Null)
            {
                members.push(Value::Null);
            }
            Value::Object(converted)
        }
        _ => json!({ "anyOf": [{ "type": "null" }, Value::Object(converted)] }),
    }
}

/// Form fields with bracketed keys (`a[b]`, `a[]`, `a[0][b]`) decoded into nested values.
pub fn decode_brackets(fields: &Map<String, Value>) -> Map<String, Value> {
    let mut decoded = Map::new();
    for (key, value) in fields {
        let (head, path) = match key.split_once('[') {
            Some((head, rest)) if rest.ends_with(']') => (
                head,
                rest[..rest.len() - 1]
                    .split("][")
                    .map(str::to_owned)
                    .collect::<Vec<_>>(),
            ),
            _ => (key.as_str(), Vec::new()),
        };
        let slot = decoded.entry(head.to_owned()).or_insert(Value::Null);
        insert_at(slot, &path, value.clone());
    }
    decoded
}

fn insert_at(slot: &mut Value, path: &[String], value: Value) {
    let Some((segment, rest)) = path.split_first() else {
        *slot = value;
        return;
    };
    if segment.is_empty() || segment.parse::<usize>().is_ok() {
        if !slot.is_array() {
            *slot = Value::Array(Vec::new());
        }
        let items = slot.as_array_mut().expect("made an array above");
        let index = segment.parse::<usize>().unwrap_or(items.len());
        if items.len() <= index {
            items.resize(index + 1, Value::Null);
        }
        insert_at(&mut items[index], rest, value);
    } else {
        if !slot.is_object() {
            *slot = Value::Object(Map::new());
        }
        let fields = slot.as_object_mut().expect("made an object above");
        insert_at(
            fields.entry(segment.clone()).or_insert(Value::Null),
            rest,
            value,
        );
    }
}

fn percent_decode(segment: &str) -> String {
    form_urlencoded::parse(format!("x={}", segment.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

fn escape_pointer(token: &str) -> String {
    token.replace('~', "~0").replace('/', "~1")
}
