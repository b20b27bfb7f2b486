//! `slack.list_channels`: `conversations.list`, following `response_metadata.next_cursor`.
//! A step parked by the rate-limit scheduler between pages starts again from the first page
//! when it wakes: reads are safe to repeat, and the listing stays one consistent pass.

use async_trait::async_trait;
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::check;
use crate::action::{Action, ActionOutcome};
use crate::catalog::bounded;
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::IntegrationCall;

pub struct ListChannels;

/// Slack's default page size; it recommends no more than 200.
const DEFAULT_LIMIT: u32 = 200;
const MAX_LIMIT: u32 = 1000;
const DEFAULT_MAX_PAGES: u32 = 10;
const MAX_PAGES: u32 = 100;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListChannelsInput {
    /// Conversation types to list: `public_channel`, `private_channel`, `mpim`, `im`; Slack's
    /// default is `public_channel`.
    #[serde(default)]
    pub types: Vec<String>,
    /// Leave archived channels out.
    #[serde(default)]
    pub exclude_archived: bool,
    /// Channels per page, 1 to 1000 (default 200).
    #[serde(default)]
    pub limit: Option<u32>,
    /// Pages fetched at most, 1 to 100 (default 10); `next_cursor` continues from there.
    #[serde(default)]
    pub max_pages: Option<u32>,
    /// Start from this cursor (a previous output's `next_cursor`).
    #[serde(default)]
    pub cursor: Option<String>,
    /// The Slack connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct ListChannelsOutput {
    /// The channels of every page fetched, in Slack's order.
    pub channels: Vec<Channel>,
    /// Set when `max_pages` stopped the listing before the last page: pass it as `cursor`.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct Channel {
    /// The channel ID (`C0123456789`).
    pub id: String,
    /// The channel name without `#` (absent for direct messages).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub is_private: bool,
    #[serde(default)]
    pub is_archived: bool,
    /// Whether the connection's user or bot is a member.
    #[serde(default)]
    pub is_member: bool,
    /// Member count, when Slack states it.
    #[serde(default)]
    pub num_members: Option<u64>,
    /// Creation time, Unix seconds.
    #[serde(default)]
    pub created: Option<i64>,
}

#[derive(Debug, Deserialize)]
struct Page {
    channels: Vec<Channel>,
    #[serde(default)]
    response_metadata: Option<ResponseMetadata>,
}

#[derive(Debug, Deserialize)]
struct ResponseMetadata {
    #[serde(default)]
    next_cursor: Option<String>,
}

#[async_trait]
impl Action for ListChannels {
    type Input = ListChannelsInput;
    type Output = ListChannelsOutput;

    const NAME: &'static str = "slack.list_channels";
    const DESCRIPTION: &'static str =
        "List the workspace's Slack channels, following Slack's cursor across pages.";

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: ListChannelsInput,
    ) -> Result<ActionOutcome<ListChannelsOutput>, ActionError> {
        let limit = bounded("limit", input.limit, DEFAULT_LIMIT, MAX_LIMIT)?;
        let max_pages = bounded("max_pages", input.max_pages, DEFAULT_MAX_PAGES, MAX_PAGES)?;
        let connection = ctx.connection_name(input.connection)?;
        let base = ctx.base_url(provider!(), &connection).await?;
        let mut query = vec![("limit", limit.to_string())];
        if !input.types.is_empty() {
            query.push(("types", input.types.join(",")));
        }
        if input.exclude_archived {
            query.push(("exclude_archived", "true".to_owned()));
        }
        let mut channels = Vec::new();
        let mut cursor = input.cursor.filter(|cursor| !cursor.is_empty());
        for _ in 0..max_pages {
            let mut request = ctx
                .http()
                .request(Method::GET, &format!("{base}/conversations.list"))?
                .query(&query);
            if let Some(cursor) = &cursor {
                request = request.query(&[("cursor", cursor)]);
            }
            let call = IntegrationCall::new(provider!(), Self::NAME, request)
                .connection(Some(connection.clone()));
            let response = match ctx.send(call).await?.done_or_wait() {
                Ok(response) => response,
                Err(wait) => return Ok(wait),
            };
            check("conversations.list", &response)?;
            let page: Page = serde_json::from_slice(&response.body).map_err(|error| {
                ActionError::Permanent(format!("Slack conversations.list answered oddly: {error}"))
            })?;
            channels.extend(page.channels);
            // Slack ends the listing with an empty (or missing) cursor.
            cursor = page
                .response_metadata
                .and_then(|metadata| metadata.next_cursor)
                .filter(|next| !next.is_empty());
            if cursor.is_none() {
                break;
            }
        }
        Ok(ActionOutcome::Done(ListChannelsOutput {
            channels,
            next_cursor: cursor,
        }))
    }
}
