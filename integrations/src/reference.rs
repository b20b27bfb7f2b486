//! What a person needs to find and use an action, derived from the registry (each action's
//! name, description and schemas, through [`DynAction`]) and the provider declarations: the
//! integrations with their actions, and an action's fields and an example step.
//! `stepwise integrations`, `GET /api/v1/integrations` and the generated pages of
//! reference pages in `catalog/` all show this, so they cannot disagree.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};
use stepwise_workflows::diagnostics::closest;
use utoipa::ToSchema;

use crate::action::DynAction;
use crate::providers::{ProviderSpec, provider, providers};
use crate::registry::Registry;

/// Where an integration's actions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum IntegrationKind {
    /// A provider declared in `catalog/{name}/provider.yaml`: its actions call the provider's
    /// API through a connection.
    Provider,
    /// A built-in action family (`core`, `http`, `workflow`): no provider behind it.
    Builtin,
}

/// An integration and its actions.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IntegrationSummary {
    /// The prefix of its actions' names; for a provider, the `integration` of its connections.
    #[schema(example = "slack")]
    pub name: String,
    #[schema(example = "Slack")]
    pub display_name: String,
    pub kind: IntegrationKind,
    pub categories: Vec<String>,
    pub docs_url: Option<String>,
    /// The connection kinds its actions accept (`oauth2`, `bearer`, `api_key`, `basic`); empty
    /// for a built-in family.
    pub auth: Vec<String>,
    /// Its actions, by name.
    pub actions: Vec<ActionSummary>,
}

/// An action's name and what it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ActionSummary {
    #[schema(example = "slack.post_message")]
    pub name: String,
    pub description: String,
}

/// Everything about one action.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ActionReference {
    #[schema(example = "slack.post_message")]
    pub name: String,
    pub description: String,
    /// The integration it belongs to.
    #[schema(example = "slack")]
    pub integration: String,
    /// A step using it names a connection (`connection:`, or the action's `connection` input).
    pub needs_connection: bool,
    /// Running it has no effect outside the step's own result.
    pub pure: bool,
    /// The fields of `with:`: required ones first, the others by name.
    pub inputs: Vec<Field>,
    /// The fields of the step's output (`steps.<id>.output`).
    pub outputs: Vec<Field>,
    /// The JSON Schema `with:` is checked against.
    #[schema(value_type = Value)]
    pub input_schema: Value,
    /// The JSON Schema of the step's output.
    #[schema(value_type = Value)]
    pub output_schema: Value,
    /// A step using the action, in YAML: the inputs the action's declared example sets (else
    /// the required ones with placeholder values or the schema's examples), the others
    /// commented out.
    pub example: String,
}

/// One field of an action's input or output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Field {
    /// Dotted path below `with:` or the output; `[]` stands for the items of a list
    /// (`channels[].id`), `*` for any key of an open object.
    #[schema(example = "channel")]
    pub path: String,
    /// The JSON type, readably: `string`, `integer`, `object[]`, `"open" | "closed"`...
    #[serde(rename = "type")]
    #[schema(example = "string")]
    pub type_name: String,
    /// The field must be present (in an input) or always is (in an output), when its parent is.
    pub required: bool,
    pub description: Option<String>,
}

/// Every integration with its actions (`GET /api/v1/integrations`).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct IntegrationList {
    /// The built-in families first, then the providers in registration order.
    pub integrations: Vec<IntegrationSummary>,
}

/// What `GET /api/v1/integrations/{name}` and `stepwise integrations show` answer: an
/// integration with its actions, and the action when the name was one.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Reference {
    pub integration: IntegrationSummary,
    pub action: Option<ActionReference>,
}

/// A name that is neither an integration nor an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    pub name: String,
    /// The closest integration or action name, when one is close enough to be meant.
    pub suggestion: Option<String>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no integration or action is named `{}`", self.name)?;
        match &self.suggestion {
            Some(suggestion) => write!(f, "; did you mean `{suggestion}`?"),
            None => write!(f, "; `stepwise integrations list` shows them all"),
        }
    }
}

impl std::error::Error for UnknownName {}

/// [`integrations`] as the wire type.
pub fn list(registry: &Registry) -> IntegrationList {
    IntegrationList {
        integrations: integrations(registry),
    }
}

/// Every integration: the built-in families first (by name), then the providers in
/// registration order, each with its actions by name.
pub fn integrations(registry: &Registry) -> Vec<IntegrationSummary> {
    let families: BTreeSet<&str> = registry
        .iter()
        .map(|action| integration_of(action.name()))
        .filter(|prefix| provider(prefix).is_none())
        .collect();
    families
        .into_iter()
        .map(|family| summary(registry, family, None))
        .chain(
            providers()
                .iter()
                .map(|spec| summary(registry, &spec.name, Some(spec))),
        )
        .collect()
}

/// The integration or action called `name`.
pub fn lookup(registry: &Registry, name: &str) -> Result<Reference, UnknownName> {
    if let Some(action) = registry.get(name) {
        let integration = integration_of(action.name());
        return Ok(Reference {
            integration: summary(registry, integration, provider(integration)),
            action: Some(action_reference(action.as_ref())),
        });
    }
    let integrations = integrations(registry);
    if let Some(integration) = integrations.iter().find(|i| i.name == name) {
        return Ok(Reference {
            integration: integration.clone(),
            action: None,
        });
    }
    let names = integrations.iter().flat_map(|integration| {
        std::iter::once(integration.name.as_str()).chain(
            integration
                .actions
                .iter()
                .map(|action| action.name.as_str()),
        )
    });
    Err(UnknownName {
        name: name.to_owned(),
        suggestion: closest(name, names).map(str::to_owned),
    })
}

/// The reference of one action.
pub fn action_reference(action: &dyn DynAction) -> ActionReference {
    let name = action.name();
    let integration = integration_of(name);
    let needs_connection = provider(integration).is_some();
    let input = SchemaDoc::new(action.input_schema());
    let output = SchemaDoc::new(action.output_schema());
    ActionReference {
        name: name.to_owned(),
        description: action.description().to_owned(),
        integration: integration.to_owned(),
        needs_connection,
        pure: action.is_pure(),
        inputs: input.fields(),
        outputs: output.fields(),
        input_schema: action.input_schema().clone(),
        output_schema: action.output_schema().clone(),
        example: example_step(
            name,
            needs_connection.then_some(integration),
            &input,
            action.example(),
        ),
    }
}

/// The part of an action's name before the dot.
fn integration_of(action: &str) -> &str {
    action
        .split_once('.')
        .map_or(action, |(integration, _)| integration)
}

fn summary(registry: &Registry, name: &str, spec: Option<&ProviderSpec>) -> IntegrationSummary {
    let prefix = format!("{name}.");
    let mut actions: Vec<ActionSummary> = registry
        .iter()
        .filter(|action| action.name().starts_with(&prefix))
        .map(|action| ActionSummary {
            name: action.name().to_owned(),
            description: action.description().to_owned(),
        })
        .collect();
    actions.sort_by(|a, b| a.name.cmp(&b.name));
    match spec {
        Some(spec) => IntegrationSummary {
            name: spec.name.clone(),
            display_name: spec.display_name.clone(),
            kind: IntegrationKind::Provider,
            categories: spec.categories.clone(),
            docs_url: spec.docs_url.clone(),
            auth: spec.auth.clone(),
            actions,
        },
        None => IntegrationSummary {
            name: name.to_owned(),
            display_name: family_display_name(name),
            kind: IntegrationKind::Builtin,
            categories: Vec::new(),
            docs_url: None,
            auth: Vec::new(),
            actions,
        },
    }
}

/// `Core` for `core`: a family has no declaration to name it.
fn family_display_name(family: &str) -> String {
    // An acronym is not a word to capitalise.
    if family == "http" {
        return "HTTP".to_owned();
    }
    let mut chars = family.chars();
    chars
        .next()
        .map(|first| first.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// How deep nested objects are listed as fields and sampled in examples; `$ref` cycles stop
/// here too.
const MAX_DEPTH: usize = 4;

/// A JSON Schema as schemars writes it (draft 2020-12, local `$ref`s into `$defs`), read for
/// people.
struct SchemaDoc<'s> {
    root: &'s Value,
}

impl<'s> SchemaDoc<'s> {
    fn new(root: &'s Value) -> Self {
        Self { root }
    }

    /// Follows local `$ref`s (`#/$defs/Name`).
    fn resolve(&self, mut schema: &'s Value) -> &'s Value {
        for _ in 0..MAX_DEPTH {
            let target = schema
                .get("$ref")
                .and_then(Value::as_str)
                .and_then(|reference| reference.strip_prefix('#'))
                .and_then(|pointer| self.root.pointer(pointer));
            match target {
                Some(target) => schema = target,
                None => break,
            }
        }
        schema
    }

    /// The schema without the `null` alternative an optional value adds.
    fn non_null(&self, schema: &'s Value) -> &'s Value {
        let schema = self.resolve(schema);
        let variants = alternatives(schema);
        let mut present = variants.iter().filter(|variant| !is_null(variant));
        match (present.next(), present.next()) {
            (Some(only), None) if !variants.is_empty() => self.resolve(only),
            _ => schema,
        }
    }

    /// The root's fields: its properties (nested objects and lists of objects as dotted
    /// paths), or `*` when it is an object open to any key.
    fn fields(&self) -> Vec<Field> {
        let mut fields = Vec::new();
        let root = self.non_null(self.root);
        self.push_fields(root, "", 0, &mut fields);
        if fields.is_empty() && self.is_open_object(root) {
            fields.push(Field {
                path: "*".to_owned(),
                type_name: self.additional_type(root),
                required: false,
                description: description(self.root),
            });
        }
        fields
    }

    fn push_fields(&self, schema: &'s Value, prefix: &str, depth: usize, out: &mut Vec<Field>) {
        for (name, property, required) in ordered_properties(schema) {
            let path = format!("{prefix}{name}");
            out.push(Field {
                path: path.clone(),
                type_name: self.type_name(property, 0),
                required,
                description: description(property).or_else(|| description(self.non_null(property))),
            });
            if depth + 1 >= MAX_DEPTH {
                continue;
            }
            let inner = self.non_null(property);
            if has_properties(inner) {
                self.push_fields(inner, &format!("{path}."), depth + 1, out);
            } else if types(inner).contains(&"array")
                && let Some(items) = inner.get("items").map(|items| self.non_null(items))
                && has_properties(items)
            {
                self.push_fields(items, &format!("{path}[]."), depth + 1, out);
            }
        }
    }

    fn is_open_object(&self, schema: &Value) -> bool {
        types(schema).contains(&"object")
            && schema.get("additionalProperties") != Some(&Value::Bool(false))
    }

    fn additional_type(&self, schema: &'s Value) -> String {
        schema
            .get("additionalProperties")
            .map_or_else(|| "any".to_owned(), |extra| self.type_name(extra, 0))
    }

    /// The type of a value, readably.
    fn type_name(&self, schema: &'s Value, depth: usize) -> String {
        let schema = self.resolve(schema);
        if depth >= MAX_DEPTH || is_any(schema) {
            return "any".to_owned();
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return values
                .iter()
                .filter(|value| !value.is_null())
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(" | ");
        }
        if let Some(value) = schema.get("const") {
            return value.to_string();
        }
        let variants = alternatives(schema);
        if !variants.is_empty() {
            let mut names: Vec<String> = Vec::new();
            for variant in variants.iter().filter(|variant| !is_null(variant)) {
                let name = self.type_name(variant, depth + 1);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
            return names.join(" | ");
        }
        let names: Vec<String> = types(schema)
            .into_iter()
            .map(|kind| match kind {
                "array" => {
                    let items = schema.get("items").map_or_else(
                        || "any".to_owned(),
                        |items| self.type_name(items, depth + 1),
                    );
                    if items.contains(' ') {
                        format!("({items})[]")
                    } else {
                        format!("{items}[]")
                    }
                }
                "string" => match schema.get("format").and_then(Value::as_str) {
                    Some(format) => format!("string ({format})"),
                    None => "string".to_owned(),
                },
                "object" if !has_properties(schema) && self.is_open_object(schema) => {
                    match self.additional_type(schema).as_str() {
                        "any" => "object".to_owned(),
                        values => format!("map of {values}"),
                    }
                }
                other => other.to_owned(),
            })
            .collect();
        if names.is_empty() {
            "any".to_owned()
        } else {
            names.join(" | ")
        }
    }

    /// A value that fits `schema`: its first example, else its default, const or first enum
    /// value, else a placeholder of its type (`<name>` for a string).
    fn sample(&self, schema: &'s Value, name: &str, depth: usize) -> Sample {
        let resolved = self.non_null(schema);
        if let Some(value) = known_value(schema).or_else(|| known_value(resolved)) {
            return Sample::Json(value.clone());
        }
        let schema = resolved;
        let placeholder = || Sample::Json(Value::String(format!("<{name}>")));
        if depth >= MAX_DEPTH {
            return placeholder();
        }
        let kind = types(schema).first().copied();
        if kind == Some("object") || has_properties(schema) {
            return self.sample_object(schema, depth);
        }
        if let Some(first) = alternatives(schema)
            .iter()
            .find(|variant| !is_null(variant))
        {
            return self.sample(first, name, depth + 1);
        }
        match kind {
            Some("string") => match schema.get("format").and_then(Value::as_str) {
                Some("date-time") => Sample::Json("2026-01-01T09:00:00Z".into()),
                Some("date") => Sample::Json("2026-01-01".into()),
                Some("uri" | "url") => Sample::Json("https://example.com".into()),
                Some("email") => Sample::Json("user@example.com".into()),
                _ => placeholder(),
            },
            // An integer's bounds are whole numbers, so `as` drops nothing.
            Some("integer") => Sample::Json((bounded_number(schema).round() as i64).into()),
            Some("number") => Sample::Json(bounded_number(schema).into()),
            Some("boolean") => Sample::Json(Value::Bool(false)),
            Some("array") => {
                let items = schema.get("items").unwrap_or(&Value::Bool(true));
                Sample::List(vec![self.sample(items, name, depth + 1)])
            }
            _ => placeholder(),
        }
    }

    /// An object holding what [`sampled_properties`] names, or one `key` when the object
    /// declares no properties and takes any.
    fn sample_object(&self, schema: &'s Value, depth: usize) -> Sample {
        let properties = schema.get("properties").and_then(Value::as_object);
        let entries: Vec<(String, Sample)> = sampled_properties(schema)
            .into_iter()
            .filter_map(|key| {
                let property = properties?.get(key)?;
                Some((key.to_owned(), self.sample(property, key, depth + 1)))
            })
            .collect();
        if entries.is_empty() && !has_properties(schema) && self.is_open_object(schema) {
            let value = schema
                .get("additionalProperties")
                .unwrap_or(&Value::Bool(true));
            return Sample::Map(vec![(
                "key".to_owned(),
                self.sample(value, "value", depth + 1),
            )]);
        }
        Sample::Map(entries)
    }
}

/// The properties an example of an object sets: the required ones, those the first of its
/// alternatives requires (`oneOf: [{required: [duration]}, {required: [until]}]` asks for one
/// of them), and the same of each `allOf` part (a declared rule over several fields).
fn sampled_properties(schema: &Value) -> Vec<&str> {
    let mut names = required_names(schema);
    let parts = alternatives(schema).first().into_iter().chain(
        schema
            .get("allOf")
            .and_then(Value::as_array)
            .into_iter()
            .flatten(),
    );
    for part in parts {
        for name in sampled_properties(part) {
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    names
}

fn required_names(schema: &Value) -> Vec<&str> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

/// The value a schema names itself: its first example, its default, its const or its first
/// enum value.
fn known_value(schema: &Value) -> Option<&Value> {
    schema
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|examples| examples.first())
        .or_else(|| schema.get("default").filter(|value| !value.is_null()))
        .or_else(|| schema.get("const"))
        .or_else(|| {
            schema
                .get("enum")
                .and_then(Value::as_array)
                .and_then(|values| values.iter().find(|value| !value.is_null()))
        })
}

/// An example value whose maps keep a fixed order (serde_json's map order depends on a cargo
/// feature, and the generated pages must not).
#[derive(Clone)]
enum Sample {
    Json(Value),
    List(Vec<Sample>),
    Map(Vec<(String, Sample)>),
}

impl From<&Value> for Sample {
    /// `value` with every object's keys in name order.
    fn from(value: &Value) -> Self {
        match value {
            Value::Array(items) => Self::List(items.iter().map(Self::from).collect()),
            Value::Object(fields) => {
                let mut entries: Vec<(String, Sample)> = fields
                    .iter()
                    .map(|(key, value)| (key.clone(), Self::from(value)))
                    .collect();
                entries.sort_by(|(a, _), (b, _)| a.cmp(b));
                Self::Map(entries)
            }
            other => Self::Json(other.clone()),
        }
    }
}

impl Serialize for Sample {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Json(value) => value.serialize(serializer),
            Self::List(items) => items.serialize(serializer),
            Self::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    map.serialize_entry(key, value)?;
                }
                map.end()
            }
        }
    }
}

/// A step using `action`: `id` from the action's name, `connection:` when the action's
/// integration needs one, the inputs of its declared `example` (else the required inputs) as
/// values and the other inputs as comments.
fn example_step(
    action: &str,
    connection: Option<&str>,
    input: &SchemaDoc<'_>,
    example: Option<&Value>,
) -> String {
    let id = action.split_once('.').map_or(action, |(_, id)| id);
    let mut out = format!("- id: {id}\n  uses: {action}\n");
    if let Some(integration) = connection {
        out.push_str(&format!(
            "  connection: my-{}\n",
            integration.replace('_', "-")
        ));
    }
    let root = input.non_null(input.root);
    let required = match example {
        Some(Value::Object(fields)) => example_fields(root, fields),
        _ => match input.sample(root, "value", 0) {
            Sample::Map(required) => required,
            _ => return out,
        },
    };
    let optional: Vec<(String, Sample)> = ordered_properties(root)
        .into_iter()
        .filter(|(key, _, _)| !required.iter().any(|(set, _)| set == key))
        .map(|(key, property, _)| (key.to_owned(), input.sample(property, key, 1)))
        .collect();
    let with_prefix = if required.is_empty() { "  # " } else { "  " };
    if required.is_empty() && optional.is_empty() {
        return out;
    }
    out.push_str(with_prefix);
    out.push_str("with:\n");
    for (key, value) in &required {
        push_entry(&mut out, "    ", key, value);
    }
    let comment = if required.is_empty() {
        "  #   "
    } else {
        "    # "
    };
    for (key, value) in &optional {
        push_entry(&mut out, comment, key, value);
    }
    out
}

/// The fields of a declared example in the order of the schema's properties (then any others
/// by name), so a page reads as the reference table does.
fn example_fields(schema: &Value, fields: &Map<String, Value>) -> Vec<(String, Sample)> {
    let declared: Vec<&str> = ordered_properties(schema)
        .into_iter()
        .map(|(key, _, _)| key)
        .collect();
    let mut others: Vec<&str> = fields
        .keys()
        .map(String::as_str)
        .filter(|key| !declared.contains(key))
        .collect();
    others.sort_unstable();
    declared
        .into_iter()
        .filter(|key| fields.contains_key(*key))
        .chain(others)
        .map(|key| (key.to_owned(), Sample::from(&fields[key])))
        .collect()
}

/// `key: value` in YAML, every line behind `prefix`.
fn push_entry(out: &mut String, prefix: &str, key: &str, value: &Sample) {
    let entry = Sample::Map(vec![(key.to_owned(), value.clone())]);
    let text = serde_saphyr::to_string(&entry)
        .unwrap_or_else(|error| format!("{key}: # cannot render an example: {error}\n"));
    for line in text.lines() {
        out.push_str(prefix);
        out.push_str(line);
        out.push('\n');
    }
}

/// The schema's properties: required ones in the order the schema lists them, then the
/// others by name.
fn ordered_properties(schema: &Value) -> Vec<(&str, &Value, bool)> {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let required = required_names(schema);
    let mut ordered: Vec<(&str, &Value, bool)> = required
        .iter()
        .filter_map(|name| properties.get(*name).map(|schema| (*name, schema, true)))
        .collect();
    let mut optional: Vec<(&str, &Value, bool)> = properties
        .iter()
        .filter(|(name, _)| !required.contains(&name.as_str()))
        .map(|(name, schema)| (name.as_str(), schema, false))
        .collect();
    optional.sort_by(|a, b| a.0.cmp(b.0));
    ordered.extend(optional);
    ordered
}

fn has_properties(schema: &Value) -> bool {
    schema
        .get("properties")
        .and_then(Value::as_object)
        .is_some_and(|properties| !properties.is_empty())
}

fn alternatives(schema: &Value) -> &[Value] {
    schema
        .get("anyOf")
        .or_else(|| schema.get("oneOf"))
        .and_then(Value::as_array)
        .map_or(&[], Vec::as_slice)
}

/// The `type` keyword's names, `null` left out.
fn types(schema: &Value) -> Vec<&str> {
    match schema.get("type") {
        Some(Value::String(kind)) if kind != "null" => vec![kind.as_str()],
        Some(Value::Array(kinds)) => kinds
            .iter()
            .filter_map(Value::as_str)
            .filter(|kind| *kind != "null")
            .collect(),
        _ => Vec::new(),
    }
}

fn is_null(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
        || schema.get("const") == Some(&Value::Null)
}

/// `true`, `{}` or a schema holding only annotations: any JSON value.
fn is_any(schema: &Value) -> bool {
    match schema {
        Value::Bool(accepts) => *accepts,
        Value::Object(keywords) => keywords.keys().all(|keyword| {
            matches!(
                keyword.as_str(),
                "description" | "title" | "default" | "examples" | "$schema" | "$defs"
            )
        }),
        _ => false,
    }
}

/// The schema's description on one line.
fn description(schema: &Value) -> Option<String> {
    let text = schema.get("description").and_then(Value::as_str)?;
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A number within the schema's bounds, 1 when they allow it.
fn bounded_number(schema: &Value) -> f64 {
    let minimum = schema.get("minimum").and_then(Value::as_f64);
    let maximum = schema.get("maximum").and_then(Value::as_f64);
    let mut value = minimum.map_or(1.0, |minimum| minimum.max(1.0));
    if let Some(maximum) = maximum {
        value = value.min(maximum);
    }
    value
}

#[cfg(test)]
mod tests {
    use async_trait::async_trait;
    use schemars::JsonSchema;
    use serde::Deserialize;
    use stepwise_workflows::parse_workflow;

    use super::*;
    use crate::action::{Action, ActionOutcome};
    use crate::context::ActionContext;
    use crate::error::ActionError;

    /// `example` as the one step of a workflow.
    fn workflow_of(example: &str) -> String {
        let steps: String = example.lines().map(|line| format!("  {line}\n")).collect();
        format!("name: example\nsteps:\n{steps}")
    }

    #[test]
    fn every_example_step_is_a_valid_step() {
        let registry = Registry::builtin();
        for action in registry.iter() {
            let reference = action_reference(action.as_ref());
            let source = workflow_of(&reference.example);
            let parsed = parse_workflow("example.yaml", &source, &registry);
            assert!(
                parsed.diagnostics.is_empty(),
                "{}:\n{source}\n{:?}",
                action.name(),
                parsed.diagnostics
            );
            let step = &parsed.workflow.expect("workflow").steps[0];
            assert_eq!(step.uses, action.name());
            assert_eq!(
                step.connection.is_some(),
                reference.needs_connection,
                "{source}"
            );
        }
    }

    #[test]
    fn a_provider_action_shows_its_fields_and_a_step_with_a_connection() {
        let registry = Registry::builtin();
        let reference = lookup(&registry, "slack.post_message").expect("known");
        assert_eq!(reference.integration.name, "slack");
        assert_eq!(reference.integration.kind, IntegrationKind::Provider);
        assert!(reference.integration.auth.contains(&"oauth2".to_owned()));
        let action = reference.action.expect("an action");
        assert!(action.needs_connection && !action.pure);
        assert_eq!(
            action.inputs[0],
            Field {
                path: "channel".into(),
                type_name: "string".into(),
                required: true,
                description: Some(
                    "The channel: an ID (`C0123456789`), a name (`#sales`) or a user ID for a direct message."
                        .into()
                ),
            }
        );
        let blocks = action
            .inputs
            .iter()
            .find(|f| f.path == "blocks")
            .expect("blocks");
        assert_eq!(
            (blocks.type_name.as_str(), blocks.required),
            ("any[]", false)
        );
        assert!(action.outputs.iter().any(|f| f.path == "ts" && f.required));
        // The declared example's inputs, the others commented out.
        let example = &action.example;
        assert!(
            example.starts_with(
                "- id: post_message\n  uses: slack.post_message\n  connection: my-slack\n  with:\n    \
                 channel: \"#sales\"\n    text: \"Paid: 42 EUR\"\n    thread_ts: \"1700000000.000100\"\n"
            ),
            "{example}"
        );
        assert!(example.contains("    # blocks:\n"), "{example}");
        // Without one, the required inputs as placeholders; one of `text` and `blocks` is
        // required (an `allOf` rule): the step sets the first.
        let placeholders = example_step(
            &action.name,
            Some("slack"),
            &SchemaDoc::new(&action.input_schema),
            None,
        );
        assert!(
            placeholders.contains("  with:\n    channel: <channel>\n    text: <text>\n"),
            "{placeholders}"
        );
        assert!(placeholders.contains("    # blocks:\n"), "{placeholders}");
    }

    #[test]
    fn builtin_families_need_no_connection_and_open_objects_take_any_key() {
        let registry = Registry::builtin();
        let set = lookup(&registry, "core.set").expect("known");
        assert_eq!(set.integration.kind, IntegrationKind::Builtin);
        assert_eq!(set.integration.display_name, "Core");
        let set = set.action.expect("an action");
        assert!(set.pure && !set.needs_connection);
        assert_eq!(set.inputs.len(), 1);
        assert_eq!(
            (
                set.inputs[0].path.as_str(),
                set.inputs[0].type_name.as_str()
            ),
            ("*", "any")
        );
        assert!(
            set.example
                .contains("  with:\n    customer_id: 42\n    tags:\n    - vip\n"),
            "{}",
            set.example
        );
        let without_example = |action: &ActionReference| {
            example_step(
                &action.name,
                None,
                &SchemaDoc::new(&action.input_schema),
                None,
            )
        };
        let placeholders = without_example(&set);
        assert!(
            placeholders.contains("  with:\n    key: <value>\n"),
            "{placeholders}"
        );
        // `oneOf` of required fields: a step without an example sets the first.
        let sleep = lookup(&registry, "core.sleep")
            .expect("known")
            .action
            .expect("action");
        assert!(sleep.example.contains("    # until: "), "{}", sleep.example);
        let placeholders = without_example(&sleep);
        assert!(
            placeholders.contains("    duration: <duration>\n"),
            "{placeholders}"
        );
        assert!(placeholders.contains("    # until: "), "{placeholders}");
    }

    #[test]
    fn integrations_list_families_then_providers_and_every_action_once() {
        let registry = Registry::builtin();
        let integrations = integrations(&registry);
        let names: Vec<&str> = integrations.iter().map(|i| i.name.as_str()).collect();
        let providers: Vec<&str> = crate::providers::provider_names().collect();
        assert_eq!(names[names.len() - providers.len()..], providers[..]);
        assert!(
            names.starts_with(&["core", "http", "workflow"]),
            "{names:?}"
        );
        let mut listed: Vec<&str> = integrations
            .iter()
            .flat_map(|i| i.actions.iter().map(|a| a.name.as_str()))
            .collect();
        listed.sort_unstable();
        let registered: Vec<&str> = registry.iter().map(|action| action.name()).collect();
        assert_eq!(listed, registered);
        let slack = lookup(&registry, "slack").expect("known");
        assert!(slack.action.is_none());
        assert!(
            slack
                .integration
                .actions
                .iter()
                .all(|a| a.name.starts_with("slack."))
        );
    }

    #[test]
    fn an_unknown_name_suggests_the_closest() {
        let registry = Registry::builtin();
        let typo = lookup(&registry, "slack.post_mesage").expect_err("unknown");
        assert_eq!(typo.suggestion.as_deref(), Some("slack.post_message"));
        assert_eq!(
            typo.to_string(),
            "no integration or action is named `slack.post_mesage`; did you mean `slack.post_message`?"
        );
        let provider = lookup(&registry, "slak").expect_err("unknown");
        assert_eq!(provider.suggestion.as_deref(), Some("slack"));
        let nothing = lookup(&registry, "zzzzzz").expect_err("unknown");
        assert_eq!(nothing.suggestion, None);
        assert!(nothing.to_string().contains("stepwise integrations list"));
    }

    struct Schedule;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code, reason = "only its schema is read")]
    struct ScheduleInput {
        /// When to start.
        #[schemars(example = "2026-12-24T18:00:00Z")]
        at: String,
        #[schemars(range(min = 5, max = 9))]
        repeats: u32,
        target: Target,
        #[serde(default)]
        labels: Vec<Label>,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code, reason = "only its schema is read")]
    struct Target {
        kind: Kind,
        urgent: bool,
    }

    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    #[allow(dead_code, reason = "only its schema is read")]
    enum Kind {
        Email,
        Sms,
    }

    #[derive(Deserialize, JsonSchema)]
    #[allow(dead_code, reason = "only its schema is read")]
    struct Label {
        name: String,
    }

    #[derive(Serialize, JsonSchema)]
    struct Scheduled {
        ids: Vec<String>,
    }

    #[async_trait]
    impl Action for Schedule {
        type Input = ScheduleInput;
        type Output = Scheduled;
        const NAME: &'static str = "core.schedule";
        const DESCRIPTION: &'static str = "Schedule something.";

        async fn execute(
            &self,
            _ctx: &ActionContext,
            _input: ScheduleInput,
        ) -> Result<ActionOutcome<Scheduled>, ActionError> {
            Err(ActionError::Permanent("never run".into()))
        }
    }

    #[test]
    fn examples_bounds_enums_and_nested_fields_come_from_the_schema() {
        let mut registry = Registry::default();
        registry.register(Schedule);
        let reference =
            action_reference(registry.get("core.schedule").expect("registered").as_ref());
        let paths: Vec<(&str, &str, bool)> = reference
            .inputs
            .iter()
            .map(|f| (f.path.as_str(), f.type_name.as_str(), f.required))
            .collect();
        assert_eq!(
            paths,
            [
                ("at", "string", true),
                ("repeats", "integer", true),
                ("target", "object", true),
                ("target.kind", r#""email" | "sms""#, true),
                ("target.urgent", "boolean", true),
                ("labels", "object[]", false),
                ("labels[].name", "string", true),
            ]
        );
        assert_eq!(
            reference.example,
            "- id: schedule\n  uses: core.schedule\n  with:\n    at: \"2026-12-24T18:00:00Z\"\n    \
             repeats: 5\n    target:\n      kind: email\n      urgent: false\n    # labels:\n    \
             # - name: <name>\n"
        );
        let parsed = parse_workflow("x.yaml", &workflow_of(&reference.example), &registry);
        assert!(parsed.diagnostics.is_empty(), "{:?}", parsed.diagnostics);
        assert_eq!(reference.outputs[0].type_name, "string[]");
    }
}
