//! `http.request`: one HTTP call, with the step's idempotency key, the SSRF guard and the
//! status classes of ARCHITECTURE.md (`integrations/`, retry).

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Number, Value, json};

use super::response::read_response;
use crate::action::{Action, ActionOutcome};
use crate::catalog::parse_duration;
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::{HTTP_INTEGRATION, IntegrationCall};

pub struct HttpRequest;

/// The header carrying the step's idempotency key, identical on every attempt of a step.
const IDEMPOTENCY_KEY: &str = "idempotency-key";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpRequestInput {
    /// The HTTP method.
    #[serde(default)]
    pub method: HttpMethod,
    /// The absolute `http://` or `https://` URL to call.
    pub url: String,
    /// Request headers. `Idempotency-Key` defaults to the step's idempotency key.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Query parameters, appended to those already in `url`.
    #[serde(default)]
    pub query: BTreeMap<String, QueryValue>,
    /// A JSON request body; sets `Content-Type: application/json` unless `headers` sets one.
    /// Not together with `body`.
    #[serde(default)]
    pub json: Option<Value>,
    /// A raw request body. Not together with `json`.
    #[serde(default)]
    pub body: Option<String>,
    /// Limit on the whole call, e.g. `10s`; defaults to the server's configured timeout.
    #[serde(default)]
    pub timeout: Option<String>,
    /// A connection of the tenant whose credentials the request carries (`Authorization:
    /// Bearer` for OAuth 2.0 and bearer connections, the configured header for API keys,
    /// `Authorization: Basic` for basic ones); defaults to the step's `connection:`. After a
    /// 401, an OAuth 2.0 token is refreshed and the request sent once more. The connection's
    /// rate limit is learned from the responses' headers.
    #[serde(default)]
    pub connection: Option<String>,
    /// Fail the step on a 4xx or 5xx status (429, 408 and most 5xx are retried, first briefly
    /// within the call, then per the step's `retry:`); when false, the final status is returned
    /// as output.
    #[serde(default = "yes")]
    pub fail_on_status: bool,
}

fn yes() -> bool {
    true
}

/// An HTTP method.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
    Post,
    Put,
    Patch,
    Delete,
    Options,
}

impl From<HttpMethod> for Method {
    fn from(method: HttpMethod) -> Self {
        match method {
            HttpMethod::Get => Method::GET,
            HttpMethod::Head => Method::HEAD,
            HttpMethod::Post => Method::POST,
            HttpMethod::Put => Method::PUT,
            HttpMethod::Patch => Method::PATCH,
            HttpMethod::Delete => Method::DELETE,
            HttpMethod::Options => Method::OPTIONS,
        }
    }
}

/// A query parameter value; numbers and booleans are written as JSON writes them.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum QueryValue {
    String(String),
    Number(Number),
    Bool(bool),
}

impl QueryValue {
    fn to_query_string(&self) -> String {
        match self {
            Self::String(text) => text.clone(),
            Self::Number(number) => number.to_string(),
            Self::Bool(flag) => flag.to_string(),
        }
    }
}

#[derive(Debug, Serialize, JsonSchema)]
pub struct HttpResponseOutput {
    /// The response status code.
    pub status: u16,
    /// Response headers by lower-case name; repeated headers are joined with `, `.
    pub headers: BTreeMap<String, String>,
    /// The response body: parsed JSON when the content type is JSON and the body parses,
    /// otherwise the body as text.
    pub body: Value,
}

#[async_trait]
impl Action for HttpRequest {
    type Input = HttpRequestInput;
    type Output = HttpResponseOutput;

    const NAME: &'static str = "http.request";
    const DESCRIPTION: &'static str =
        "Call an HTTP endpoint and return its status, headers and body.";

    fn example() -> Option<Value> {
        Some(json!({
            "method": "POST",
            "url": "https://api.example.com/orders",
            "headers": {"Authorization": "Bearer secret"},
            "query": {"page": 2, "expand": true, "q": "open"},
            "json": {"id": 42},
            "timeout": "10s",
            "fail_on_status": false,
        }))
    }

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: HttpRequestInput,
    ) -> Result<ActionOutcome<HttpResponseOutput>, ActionError> {
        if input.json.is_some() && input.body.is_some() {
            return Err(ActionError::InvalidInput(
                "set either `json` or `body`, not both".to_owned(),
            ));
        }
        let method = Method::from(input.method);
        let mut request = ctx
            .http()
            .request(method.clone(), &input.url)?
            .headers(headers(&input.headers, ctx.idempotency_key())?);
        if !input.query.is_empty() {
            let pairs: Vec<(&str, String)> = input
                .query
                .iter()
                .map(|(name, value)| (name.as_str(), value.to_query_string()))
                .collect();
            request = request.query(&pairs);
        }
        if let Some(json) = &input.json {
            request = request.json(json);
        }
        if let Some(body) = input.body {
            request = request.body(body);
        }
        if let Some(timeout) = &input.timeout {
            request = request.timeout(parse_duration("timeout", timeout)?);
        }

        let connection = input
            .connection
            .clone()
            .or_else(|| ctx.invocation().connection.clone());
        let call =
            IntegrationCall::new(HTTP_INTEGRATION, Self::NAME, request).connection(connection);
        match ctx.send(call).await?.done_or_wait() {
            Ok(response) => {
                read_response(ctx, &method, response, input.fail_on_status).map(ActionOutcome::Done)
            }
            Err(wait) => Ok(wait),
        }
    }
}

/// The request headers: the user's, marked sensitive so no Debug output or HTTP/2 header
/// table keeps them, plus the idempotency key unless the user set their own.
fn headers(
    user: &BTreeMap<String, String>,
    idempotency_key: &str,
) -> Result<HeaderMap, ActionError> {
    let mut headers = HeaderMap::with_capacity(user.len() + 1);
    for (name, value) in user {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            ActionError::InvalidInput(format!("`{name}` is not a valid header name"))
        })?;
        // The value is deliberately left out of the message: it may be a secret.
        let mut value = HeaderValue::from_str(value).map_err(|_| {
            ActionError::InvalidInput(format!("header `{name}` has an invalid value"))
        })?;
        value.set_sensitive(true);
        headers.append(header, value);
    }
    if !headers.contains_key(IDEMPOTENCY_KEY) {
        let key = HeaderValue::from_str(idempotency_key).map_err(|_| {
            ActionError::Permanent(format!(
                "idempotency key `{idempotency_key}` is not a valid header value"
            ))
        })?;
        headers.insert(IDEMPOTENCY_KEY, key);
    }
    Ok(headers)
}
