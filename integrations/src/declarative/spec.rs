//! The shape of `actions.yaml`: one entry per action that is one REST call (or one listing
//! of pages), keyed by the action's name within its provider.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::projection::Projection;

/// One declared action.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionSpec {
    /// One line for docs and `stepwise schema`.
    pub description: String,
    /// What error messages call the call (`chat.postMessage`); the action's name with spaces
    /// by default.
    #[serde(default)]
    pub operation: Option<String>,
    /// `GET`, `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: String,
    /// Appended to the connection's base URL; `{name}` is input `name`'s text, and each
    /// segment is percent-encoded.
    pub path: String,
    /// Inputs sent in the query string (a list is joined with commas).
    #[serde(default)]
    pub query: Vec<Param>,
    /// Inputs sent as request headers.
    #[serde(default)]
    pub headers: Vec<Param>,
    #[serde(default)]
    pub body: Option<Body>,
    /// The header that carries the step's idempotency key (the same on every attempt), so the
    /// provider performs a retried write once.
    #[serde(default)]
    pub idempotency_key: Option<String>,
    /// The JSON Schema of `with:` (an object; every property described). The step's
    /// `connection` input is added to it.
    pub input: Value,
    pub output: Output,
    #[serde(default)]
    pub pagination: Option<Pagination>,
    /// One realistic `with:`, checked against `input` when the declaration loads; the
    /// conformance suite and the reference page use it.
    #[serde(default)]
    pub example: Option<Value>,
}

/// An input sent as a parameter: `name`, or `{wire_name: input}` when the provider calls
/// it otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Value")]
pub struct Param {
    /// The name on the wire.
    pub wire: String,
    /// The input it is read from.
    pub input: String,
}

impl TryFrom<Value> for Param {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        match value {
            Value::String(name) => Ok(Self {
                wire: name.clone(),
                input: name,
            }),
            Value::Object(entry) if entry.len() == 1 => {
                let (wire, input) = entry.into_iter().next().unwrap_or_default();
                match input {
                    Value::String(input) => Ok(Self { wire, input }),
                    other => Err(format!("`{wire}`: an input name, not {other}")),
                }
            }
            other => Err(format!(
                "a parameter is an input name or {{wire_name: input}}, not {other}"
            )),
        }
    }
}

/// The request body: the inputs it holds, in order, and their encoding.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Body {
    /// `application/json`: an object of the inputs.
    Json(Vec<Param>),
    /// `application/x-www-form-urlencoded`: objects as `key[sub]=v`, lists as `key[0]=v`.
    Form(Vec<Param>),
    /// `multipart/form-data`: one text part per input (objects and lists as JSON text).
    Multipart(Vec<Param>),
}

impl Body {
    pub fn params(&self) -> &[Param] {
        match self {
            Self::Json(params) | Self::Form(params) | Self::Multipart(params) => params,
        }
    }
}

/// What the action outputs.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Output {
    /// The JSON Schema of the output (an object); an answer whose projection does not fit it
    /// fails the step as answered oddly.
    pub schema: Value,
    /// Output field -> its projection of the answer (of every page together, for a listing).
    pub fields: BTreeMap<String, Projection>,
}

/// How a listing continues across pages, within one attempt, up to `max_pages`. A step
/// parked between pages starts again from the first page when it wakes.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pagination {
    pub style: PageStyle,
    /// Where a page's items are in the answer (`.` when the answer is the list). The fields
    /// are projected from the last answer with every page's items there.
    pub items: String,
    /// `cursor`: where the answer states the next cursor or page token (absent or empty on
    /// the last page).
    #[serde(default)]
    pub next: Option<String>,
    /// `cursor`, `page`, `offset`: the request parameter that carries the position.
    #[serde(default)]
    pub param: Option<String>,
    /// Where `param` goes.
    #[serde(default)]
    pub param_in: ParamIn,
    /// A boolean in the answer that is `false` on the last page (`has_more`).
    #[serde(default)]
    pub has_more: Option<String>,
    /// `page`, `offset`: the first position when the input sets none (1 and 0).
    #[serde(default)]
    pub start: Option<u64>,
    /// The input bounding the pages fetched (declare its default and maximum in `input`).
    pub max_pages: String,
    /// The output field holding where to resume when `max_pages` stopped the listing early
    /// (the cursor, page or offset; `null` after the last page).
    #[serde(default)]
    pub resume: Option<String>,
    /// The output field that is `true` when `max_pages` stopped the listing early.
    #[serde(default)]
    pub more: Option<String>,
}

/// The declared pagination styles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PageStyle {
    /// A cursor or next-page token in the answer, sent back as `param` (Slack's
    /// `response_metadata.next_cursor`, Google's `nextPageToken`, Notion's `next_cursor`).
    Cursor,
    /// The `Link` header's `rel="next"` (RFC 8288), never to another origin than the
    /// connection's base URL (GitHub).
    Link,
    /// A page number in `param`, from `start` (default 1).
    Page,
    /// An item offset in `param`, from `start` (default 0).
    Offset,
}

/// Where a pagination parameter goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ParamIn {
    #[default]
    Query,
    /// A field of the JSON body (Notion's `start_cursor`).
    Body,
}

/// A provider's `actions.yaml`: action name -> its declaration.
pub type ActionsFile = BTreeMap<String, ActionSpec>;
