//! Declarative actions: an action that is one REST call (or one listing of pages) is data in
//! its provider's folder, `catalog/{provider}/actions.yaml`, embedded by the registration line
//! (`providers!`) next to `provider.yaml` and parsed once. A [`DeclaredAction`] is a
//! [`DynAction`] like a Rust action, so the registry, the workflow validator, the conformance
//! and contract tests and the API see no difference; it reaches the network only through
//! [`ActionContext::send`]. Its integration is its folder's; its errors are read with the
//! provider's error envelope (`envelope.rs`), which the provider's Rust actions share.
//! See `integrations/README.md` for the format, walked through.

mod envelope;
pub(crate) mod link;
mod projection;
mod request;
mod spec;

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use jsonschema::Validator;
use reqwest::header::{CONTENT_TYPE, LINK};
use reqwest::{Method, Url};
use serde_json::{Map, Value, json};

pub use envelope::ErrorEnvelope;
pub use envelope::check;
pub use projection::Projection;
pub use spec::{ActionSpec, ActionsFile, Body, Output, PageStyle, Pagination, Param, ParamIn};

use self::projection::lookup;
use self::request::{Parts, Payload, query_text};
use crate::action::{ActionOutcome, DynAction};
use crate::catalog::ACTION_DECLARATIONS;
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::providers::ProviderSpec;
use crate::registry::Registry;
use crate::runtime::{IntegrationCall, IntegrationResponse};

const DRAFT_2020_12: &str = "https://json-schema.org/draft/2020-12/schema";

/// One declared action, checked and with its schemas compiled.
pub struct DeclaredAction {
    provider: &'static ProviderSpec,
    /// `provider.action`.
    name: String,
    operation: String,
    method: Method,
    spec: ActionSpec,
    input_schema: Value,
    output_schema: Value,
    input: Validator,
    output: Validator,
}

impl std::fmt::Debug for DeclaredAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeclaredAction")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl DeclaredAction {
    /// The action `name` of `provider` declared by `spec`, or what is wrong with it.
    pub fn new(
        provider: &'static ProviderSpec,
        name: &str,
        spec: ActionSpec,
    ) -> Result<Self, String> {
        let method = match spec.method.as_str() {
            "GET" | "POST" | "PUT" | "PATCH" | "DELETE" => {
                Method::from_bytes(spec.method.as_bytes()).map_err(|error| error.to_string())?
            }
            other => {
                return Err(format!(
                    "method `{other}` is not GET, POST, PUT, PATCH or DELETE"
                ));
            }
        };
        let input_schema = input_schema(provider, &spec.input)?;
        check_mapping(&spec, &input_schema)?;
        let output_schema = object_schema(&spec.output.schema, "output.schema")?;
        check_output(&spec, &output_schema)?;
        let compile = |schema: &Value, what: &str| {
            jsonschema::validator_for(schema).map_err(|error| format!("{what}: {error}"))
        };
        let input = compile(&input_schema, "input")?;
        if let Some(example) = &spec.example
            && let Some(error) = input.iter_errors(example).next()
        {
            let at = error.instance_path().as_str().to_owned();
            return Err(format!("example{at}: {error}"));
        }
        Ok(Self {
            provider,
            name: format!("{}.{name}", provider.name),
            operation: spec
                .operation
                .clone()
                .unwrap_or_else(|| name.replace('_', " ")),
            method,
            input,
            output: compile(&output_schema, "output.schema")?,
            input_schema,
            output_schema,
            spec,
        })
    }

    /// The input checked against the schema, with the schema's top-level defaults filled in.
    fn prepared_input(&self, input: &Value) -> Result<Map<String, Value>, ActionError> {
        if let Some(error) = self.input.iter_errors(input).next() {
            return Err(ActionError::InvalidInput(self.explain(&error)));
        }
        let mut input = input.as_object().cloned().unwrap_or_default();
        let properties = self.input_schema["properties"]
            .as_object()
            .into_iter()
            .flatten();
        for (name, property) in properties {
            if let Some(default) = property.get("default")
                && input.get(name).is_none_or(Value::is_null)
            {
                input.insert(name.clone(), default.clone());
            }
        }
        Ok(input)
    }

    /// A validation error in the words of the schema object whose keyword failed, when it
    /// has an `errorMessage` (the ajv-errors convention), else located by the input's path.
    fn explain(&self, error: &jsonschema::ValidationError<'_>) -> String {
        if let Some(message) = stepwise_workflows::declared_message(&self.input_schema, error) {
            return message.to_owned();
        }
        let at: String = error
            .instance_path()
            .as_str()
            .split('/')
            .filter(|segment| !segment.is_empty())
            .map(|segment| format!(".{segment}"))
            .collect();
        if at.is_empty() {
            error.to_string()
        } else {
            format!("`with{at}`: {error}")
        }
    }

    /// The request for one page: the parts, with the position of `page` when paginated.
    fn request(
        &self,
        ctx: &ActionContext,
        parts: &Parts,
        position: Option<&Position>,
    ) -> Result<reqwest::RequestBuilder, ActionError> {
        let mut url = parts.url.clone();
        let mut query = parts.query.clone();
        let mut body = parts.body.clone();
        // The position replaces what the input set for the pagination parameter.
        let pagination = self.spec.pagination.as_ref();
        let param = pagination.and_then(|pagination| pagination.param.clone());
        let in_body = pagination.is_some_and(|pagination| pagination.param_in == ParamIn::Body);
        if let Some(param) = &param {
            query.retain(|(name, _)| name != param);
            if let Some(Payload::Json(fields)) = &mut body {
                fields.remove(param);
            }
        }
        match (position, param) {
            (Some(Position::Link(next)), _) => {
                url = next.clone();
                query.clear();
            }
            (Some(Position::Param(value)), Some(param)) => match &mut body {
                Some(Payload::Json(fields)) if in_body => {
                    fields.insert(param, value.clone());
                }
                _ => query.push((param, query_text(value))),
            },
            _ => {}
        }
        let mut request = ctx.http().request(self.method.clone(), url.as_str())?;
        if !query.is_empty() {
            request = request.query(&query);
        }
        for (name, value) in &parts.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(header) = &self.spec.idempotency_key {
            request = request.header(header.as_str(), ctx.idempotency_key());
        }
        Ok(match body {
            None => request,
            Some(Payload::Json(fields)) => request.json(&fields),
            Some(Payload::Encoded {
                content_type,
                bytes,
            }) => request.header(CONTENT_TYPE, content_type).body(bytes),
        })
    }

    /// Sends one request and reads the answer with the provider's error envelope.
    async fn call(
        &self,
        ctx: &ActionContext,
        connection: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<ActionOutcome<(IntegrationResponse, Value)>, ActionError> {
        let call = IntegrationCall::new(&self.provider.name, &self.name, request)
            .connection(Some(connection.to_owned()));
        let response = match ctx.send(call).await?.done_or_wait() {
            Ok(response) => response,
            Err(wait) => return Ok(wait),
        };
        envelope::read(self.provider, &self.operation, &response)?;
        let answer = serde_json::from_slice(&response.body).map_err(|error| self.oddly(error))?;
        Ok(ActionOutcome::Done((response, answer)))
    }

    fn oddly(&self, error: impl std::fmt::Display) -> ActionError {
        ActionError::Permanent(format!(
            "{} {} answered oddly: {error}",
            self.provider.display_name, self.operation
        ))
    }

    /// Every page up to the input's `max_pages`: the last answer with every page's items in
    /// place of its own, and where to resume when `max_pages` stopped early.
    async fn pages(
        &self,
        ctx: &ActionContext,
        connection: &str,
        parts: &Parts,
        input: &Map<String, Value>,
        pagination: &Pagination,
    ) -> Result<ActionOutcome<(Value, Option<Value>)>, ActionError> {
        let max_pages = input
            .get(&pagination.max_pages)
            .and_then(Value::as_u64)
            .unwrap_or(1);
        let mut items = Vec::new();
        let mut position = self.first_position(parts, pagination);
        for page in 1..=max_pages {
            let request = self.request(ctx, parts, position.as_ref())?;
            let (response, mut answer) =
                match self.call(ctx, connection, request).await?.done_or_wait() {
                    Ok(done) => done,
                    Err(wait) => return Ok(wait),
                };
            let page_items = match lookup(&answer, &pagination.items) {
                Some(Value::Array(page_items)) => page_items.clone(),
                Some(Value::Null) | None => Vec::new(),
                Some(_) => return Err(self.oddly(format!("`{}` is not a list", pagination.items))),
            };
            let count = page_items.len() as u64;
            items.extend(page_items);
            let next = self.next_position(
                pagination,
                &response,
                &answer,
                position.as_ref(),
                count,
                &parts.url,
            )?;
            let last = next.is_none() || page == max_pages;
            if last {
                replace(
                    &mut answer,
                    &pagination.items,
                    Value::Array(std::mem::take(&mut items)),
                );
                let resume = next.map(|next| match next {
                    Position::Param(value) => value,
                    Position::Link(url) => Value::String(url.into()),
                });
                return Ok(ActionOutcome::Done((answer, resume)));
            }
            position = next;
        }
        Err(self.oddly("no page was fetched"))
    }

    /// The position the input starts from (a cursor, page or offset it sets), else the
    /// style's start.
    fn first_position(&self, parts: &Parts, pagination: &Pagination) -> Option<Position> {
        let param = pagination.param.as_deref()?;
        let given = parts
            .query
            .iter()
            .find(|(name, _)| name == param)
            .map(|(_, value)| Value::String(value.clone()))
            .or_else(|| match &parts.body {
                Some(Payload::Json(fields)) => fields.get(param).cloned(),
                _ => None,
            });
        match pagination.style {
            PageStyle::Cursor | PageStyle::Link => given
                .filter(|value| value.as_str().is_none_or(|text| !text.is_empty()))
                .map(Position::Param),
            PageStyle::Page | PageStyle::Offset => {
                let start = given
                    .as_ref()
                    .and_then(|value| value.as_u64().or_else(|| value.as_str()?.parse().ok()))
                    .or(pagination.start)
                    .unwrap_or(u64::from(pagination.style == PageStyle::Page));
                Some(Position::Param(json!(start)))
            }
        }
    }

    /// Where the page after this one is, or `None` after the last page.
    fn next_position(
        &self,
        pagination: &Pagination,
        response: &IntegrationResponse,
        answer: &Value,
        current: Option<&Position>,
        count: u64,
        base: &Url,
    ) -> Result<Option<Position>, ActionError> {
        if let Some(path) = &pagination.has_more
            && lookup(answer, path) == Some(&Value::Bool(false))
        {
            return Ok(None);
        }
        let number = |position: Option<&Position>| match position {
            Some(Position::Param(value)) => value.as_u64().unwrap_or_default(),
            _ => 0,
        };
        Ok(match pagination.style {
            PageStyle::Cursor => pagination
                .next
                .as_deref()
                .and_then(|path| lookup(answer, path))
                .filter(|next| !next.is_null() && next.as_str().is_none_or(|text| !text.is_empty()))
                .cloned()
                .map(Position::Param),
            PageStyle::Page => (count > 0).then(|| Position::Param(json!(number(current) + 1))),
            PageStyle::Offset => {
                (count > 0).then(|| Position::Param(json!(number(current) + count)))
            }
            PageStyle::Link => self.next_link(response, base)?.map(Position::Link),
        })
    }

    /// The `rel="next"` target of the answer's `Link` fields, resolved against its URL and
    /// refused when it leaves the connection's origin (its token goes with every page).
    fn next_link(
        &self,
        response: &IntegrationResponse,
        base: &Url,
    ) -> Result<Option<Url>, ActionError> {
        let display = &self.provider.display_name;
        let operation = &self.operation;
        let fields: Vec<&str> = response
            .headers
            .get_all(LINK)
            .iter()
            .filter_map(|value| value.to_str().ok())
            .collect();
        let links = link::parse(&fields.join(",")).map_err(|error| {
            ActionError::Permanent(format!(
                "{display} {operation} sent an invalid Link header: {error}"
            ))
        })?;
        let Some(next) = links.into_iter().find(|link| link.has_rel("next")) else {
            return Ok(None);
        };
        let next = response.url.join(&next.target).map_err(|error| {
            ActionError::Permanent(format!(
                "{display} {operation} sent an invalid next page link: {error}"
            ))
        })?;
        if next.origin() != base.origin() {
            return Err(ActionError::Permanent(format!(
                "{display} {operation}: the next page link points to {}, not to the \
                 connection's API at {}; refused",
                next.origin().ascii_serialization(),
                base.origin().ascii_serialization()
            )));
        }
        Ok(Some(next))
    }
}

/// Where the next page of a listing is.
#[derive(Debug, Clone)]
enum Position {
    /// The value of the pagination parameter.
    Param(Value),
    /// The URL the `Link` header named.
    Link(Url),
}

/// Replaces the value at the dotted `path` (`.` is the whole value).
fn replace(value: &mut Value, path: &str, new: Value) {
    if path.is_empty() || path == "." {
        *value = new;
        return;
    }
    let mut current = value;
    for segment in path.split('.') {
        if !current.is_object() {
            *current = Value::Object(Map::new());
        }
        let Value::Object(fields) = current else {
            return;
        };
        current = fields.entry(segment).or_insert(Value::Null);
    }
    *current = new;
}

#[async_trait]
impl DynAction for &'static DeclaredAction {
    fn name(&self) -> &'static str {
        let action: &'static DeclaredAction = self;
        &action.name
    }

    fn description(&self) -> &'static str {
        let action: &'static DeclaredAction = self;
        &action.spec.description
    }

    fn input_schema(&self) -> &Value {
        &self.input_schema
    }

    fn output_schema(&self) -> &Value {
        &self.output_schema
    }

    fn check_input(&self, input: &Value) -> Result<(), ActionError> {
        self.prepared_input(input).map(drop)
    }

    fn example(&self) -> Option<&Value> {
        self.spec.example.as_ref()
    }

    fn is_pure(&self) -> bool {
        false
    }

    async fn execute_json(
        &self,
        ctx: &ActionContext,
        input: Value,
    ) -> Result<ActionOutcome<Value>, ActionError> {
        let mut input = self.prepared_input(&input)?;
        let connection = match input.remove("connection") {
            Some(Value::String(name)) => ctx.connection_name(Some(name))?,
            _ => ctx.connection_name(None)?,
        };
        let base = ctx.base_url(&self.provider.name, &connection).await?;
        let parts = request::parts(&self.spec, &base, &input)?;
        let (answer, resume) = match &self.spec.pagination {
            None => {
                let request = self.request(ctx, &parts, None)?;
                match self.call(ctx, &connection, request).await?.done_or_wait() {
                    Ok((_, answer)) => (answer, None),
                    Err(wait) => return Ok(wait),
                }
            }
            Some(pagination) => match self
                .pages(ctx, &connection, &parts, &input, pagination)
                .await?
                .done_or_wait()
            {
                Ok(done) => done,
                Err(wait) => return Ok(wait),
            },
        };
        let mut output: Map<String, Value> = self
            .spec
            .output
            .fields
            .iter()
            .map(|(name, projection)| (name.clone(), projection.apply(&answer)))
            .collect();
        if let Some(pagination) = &self.spec.pagination {
            if let Some(field) = &pagination.more {
                output.insert(field.clone(), Value::Bool(resume.is_some()));
            }
            if let Some(field) = &pagination.resume {
                output.insert(field.clone(), resume.unwrap_or(Value::Null));
            }
        }
        let output = Value::Object(output);
        if let Some(error) = self.output.iter_errors(&output).next() {
            let at = error.instance_path().as_str().to_owned();
            return Err(self.oddly(format!("{at} {error}").trim_start()));
        }
        Ok(ActionOutcome::Done(output))
    }
}

/// `schema` as an object schema with the draft named (`type: object` filled in).
fn object_schema(schema: &Value, what: &str) -> Result<Value, String> {
    let Value::Object(fields) = schema else {
        return Err(format!("{what} is not a mapping"));
    };
    let mut fields = fields.clone();
    match fields.get("type") {
        None => {
            fields.insert("type".into(), json!("object"));
        }
        Some(Value::String(kind)) if kind == "object" => {}
        Some(_) => return Err(format!("{what} describes an object (`type: object`)")),
    }
    let mut schema = Map::new();
    schema.insert("$schema".into(), json!(DRAFT_2020_12));
    schema.extend(fields);
    Ok(Value::Object(schema))
}

/// The declared input schema with the step's `connection` input added and unknown inputs
/// refused (a typo in `with:` is reported, as Rust actions do).
fn input_schema(provider: &ProviderSpec, declared: &Value) -> Result<Value, String> {
    let mut schema = object_schema(declared, "input")?;
    let fields = schema.as_object_mut().ok_or("input is not a mapping")?;
    fields
        .entry("additionalProperties")
        .or_insert(Value::Bool(false));
    let properties = fields
        .entry("properties")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or("input.properties is not a mapping")?;
    if properties.contains_key("connection") {
        return Err("`connection` is every action's own input; do not declare it".into());
    }
    properties.insert(
        "connection".into(),
        json!({
            "description": format!(
                "The {} connection; defaults to the step's `connection:`.",
                provider.display_name
            ),
            "type": ["string", "null"],
        }),
    );
    for (name, property) in properties.iter() {
        if property
            .get("description")
            .and_then(Value::as_str)
            .is_none_or(|text| text.trim().is_empty())
        {
            return Err(format!("input `{name}` has no description"));
        }
    }
    Ok(schema)
}

/// Every input goes somewhere exactly once: the path, the query, a header or the body (or
/// it bounds the pages); everything the request names is an input.
fn check_mapping(spec: &ActionSpec, schema: &Value) -> Result<(), String> {
    let properties = schema["properties"].as_object().ok_or("no properties")?;
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut used: Vec<&str> = Vec::new();
    for segment in spec.path.split('{').skip(1) {
        let name = segment.split_once('}').ok_or("unclosed `{` in the path")?.0;
        if !required.contains(&name) {
            return Err(format!("path input `{name}` is not a required input"));
        }
        used.push(name);
    }
    let params = spec
        .query
        .iter()
        .chain(&spec.headers)
        .chain(spec.body.iter().flat_map(Body::params));
    used.extend(params.map(|param| param.input.as_str()));
    if let Some(pagination) = &spec.pagination {
        used.push(&pagination.max_pages);
        let needs_param = pagination.style != PageStyle::Link;
        if needs_param != pagination.param.is_some() {
            return Err(
                "pagination: `param` is needed exactly when the style is not `link`".into(),
            );
        }
        if (pagination.style == PageStyle::Cursor) != pagination.next.is_some() {
            return Err("pagination: `next` is needed exactly when the style is `cursor`".into());
        }
        if pagination.param_in == ParamIn::Body && !matches!(spec.body, Some(Body::Json(_))) {
            return Err("pagination: `param_in: body` needs a JSON body".into());
        }
        let max_pages = &properties.get(&pagination.max_pages).ok_or_else(|| {
            format!(
                "pagination: `max_pages` input `{}` is not declared",
                pagination.max_pages
            )
        })?;
        if max_pages.get("default").is_none() || max_pages.get("maximum").is_none() {
            return Err(
                "pagination: the `max_pages` input needs a `default` and a `maximum`".into(),
            );
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for name in &used {
        if !properties.contains_key(*name) {
            return Err(format!("`{name}` is sent but is not an input"));
        }
        if !seen.insert(*name) {
            return Err(format!("input `{name}` is sent twice"));
        }
    }
    if let Some(unused) = properties
        .keys()
        .find(|name| *name != "connection" && !seen.contains(name.as_str()))
    {
        return Err(format!("input `{unused}` is never sent"));
    }
    Ok(())
}

/// The output schema's properties are exactly what the projection and the pagination
/// produce.
fn check_output(spec: &ActionSpec, schema: &Value) -> Result<(), String> {
    let mut produced: Vec<&str> = spec.output.fields.keys().map(String::as_str).collect();
    if let Some(pagination) = &spec.pagination {
        produced.extend(pagination.resume.as_deref());
        produced.extend(pagination.more.as_deref());
    }
    produced.sort_unstable();
    let mut declared: Vec<&str> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, _)| name.as_str())
        .collect();
    declared.sort_unstable();
    if produced != declared {
        return Err(format!(
            "the output produces {produced:?} but its schema declares {declared:?}"
        ));
    }
    Ok(())
}

/// Every provider's declared actions, parsed and checked once. A test builds them all, so a
/// bad one never ships.
static ACTIONS: LazyLock<Vec<DeclaredAction>> = LazyLock::new(|| {
    declared_actions().unwrap_or_else(|error| {
        panic!("an embedded actions.yaml is invalid (see declarative::tests): {error}")
    })
});

fn declared_actions() -> Result<Vec<DeclaredAction>, String> {
    let mut actions = Vec::new();
    for (folder, text) in ACTION_DECLARATIONS {
        let provider = crate::providers::provider(folder)
            .ok_or_else(|| format!("catalog/{folder}: no provider.yaml declares `{folder}`"))?;
        let file: ActionsFile = serde_saphyr::from_str(text)
            .map_err(|error| format!("catalog/{folder}/actions.yaml: {error}"))?;
        for (name, spec) in file {
            let action = DeclaredAction::new(provider, &name, spec)
                .map_err(|error| format!("catalog/{folder}/actions.yaml: `{name}`: {error}"))?;
            actions.push(action);
        }
    }
    Ok(actions)
}

/// Adds the actions `provider` declares (its folder's `actions.yaml`) to `registry`.
pub(crate) fn register(registry: &mut Registry, provider: &str) {
    for action in ACTIONS
        .iter()
        .filter(|action| action.provider.name == provider)
    {
        registry.insert(Arc::new(action));
    }
}

#[cfg(test)]
mod tests;
