//! `gmail.send_message`: builds the MIME message (`mime.rs`) from the step's fields and sends
//! it with `users.messages.send` as base64url `raw`. Gmail takes no idempotency key: the
//! runtime repeats the POST only when it never reached Google, and a step retried after a
//! 5xx may send twice (ARCHITECTURE.md, `integrations/`, retry).

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE;
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::mime::{Body, Mailbox, Message};
use crate::action::{Action, ActionOutcome};
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::IntegrationCall;

pub struct SendMessage;

/// `messages.send`, as error messages name it.
const OPERATION: &str = "messages.send";

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessageInput {
    /// The recipients: one address or a list, each `ada@example.com` or `Ada Lovelace
    /// <ada@example.com>`.
    pub to: Addresses,
    /// Copy recipients, written like `to`.
    #[serde(default)]
    pub cc: Option<Addresses>,
    /// Hidden copy recipients, written like `to`; Gmail delivers to them and removes the
    /// header.
    #[serde(default)]
    pub bcc: Option<Addresses>,
    /// The subject line (any language; encoded as MIME requires).
    pub subject: String,
    /// The plain-text body. One of `text` and `html` is required; with both, mail clients
    /// show the HTML and fall back to the text.
    #[serde(default)]
    pub text: Option<String>,
    /// The HTML body.
    #[serde(default)]
    pub html: Option<String>,
    /// The sender, when not the connection's own address: one of its Gmail "send as"
    /// aliases (`Support <support@example.com>`).
    #[serde(default)]
    pub from: Option<String>,
    /// Where replies go, when not to the sender; written like `to`.
    #[serde(default)]
    pub reply_to: Option<Addresses>,
    /// Answer in this Gmail conversation (a `thread_id` output of this action or of
    /// `gmail.get_message`); set `in_reply_to` too, so other clients thread it.
    #[serde(default)]
    pub thread_id: Option<String>,
    /// The `Message-ID` header of the message answered (`<CAF...@mail.gmail.com>`).
    #[serde(default)]
    pub in_reply_to: Option<String>,
    /// The Gmail connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

/// One address or a list of them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Addresses {
    One(String),
    Many(Vec<String>),
}

impl Addresses {
    fn parse(field: &str, addresses: Option<&Self>) -> Result<Vec<Mailbox>, ActionError> {
        let texts = match addresses {
            None => &[][..],
            Some(Self::One(text)) => std::slice::from_ref(text),
            Some(Self::Many(texts)) => texts.as_slice(),
        };
        texts
            .iter()
            .map(|text| Mailbox::parse(field, text).map_err(ActionError::InvalidInput))
            .collect()
    }
}

/// The message Gmail stored and sent.
#[derive(Debug, Serialize, JsonSchema)]
pub struct SentMessage {
    /// The message ID (`gmail.get_message` reads it).
    pub id: String,
    /// The ID of its conversation.
    pub thread_id: String,
    /// Its labels (`SENT`).
    pub label_ids: Vec<String>,
}

/// Gmail's answer: the message resource, of which `id` and `threadId` are always stated.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sent {
    id: String,
    thread_id: String,
    #[serde(default)]
    label_ids: Vec<String>,
}

impl SendMessageInput {
    /// The MIME message, or which field is wrong.
    fn message(&self) -> Result<Message, ActionError> {
        let invalid = |message: &str| ActionError::InvalidInput(message.to_owned());
        let to = Addresses::parse("to", Some(&self.to))?;
        if to.is_empty() {
            return Err(invalid("`to` names no recipient"));
        }
        if self.subject.contains(['\r', '\n']) {
            return Err(invalid("`subject` is one line"));
        }
        let in_reply_to = match self.in_reply_to.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(id) if id.contains(|c: char| !c.is_ascii_graphic()) => {
                return Err(invalid(
                    "`in_reply_to` is a Message-ID: printable ASCII without spaces",
                ));
            }
            Some(id) if id.starts_with('<') && id.ends_with('>') => Some(id.to_owned()),
            Some(id) => Some(format!("<{}>", id.trim_matches(['<', '>']))),
        };
        let body = match (self.text.clone(), self.html.clone()) {
            (Some(text), Some(html)) => Body::Alternative { text, html },
            (Some(text), None) => Body::Text(text),
            (None, Some(html)) => Body::Html(html),
            (None, None) => return Err(invalid("set `text`, `html` or both")),
        };
        let from = self
            .from
            .as_deref()
            .map(|from| Mailbox::parse("from", from).map_err(ActionError::InvalidInput))
            .transpose()?;
        Ok(Message {
            from,
            to,
            cc: Addresses::parse("cc", self.cc.as_ref())?,
            bcc: Addresses::parse("bcc", self.bcc.as_ref())?,
            reply_to: Addresses::parse("reply_to", self.reply_to.as_ref())?,
            subject: self.subject.clone(),
            in_reply_to,
            body,
        })
    }
}

#[async_trait]
impl Action for SendMessage {
    type Input = SendMessageInput;
    type Output = SentMessage;

    const NAME: &'static str = "gmail.send_message";
    const DESCRIPTION: &'static str =
        "Send an email from the connection's Gmail account, in plain text, HTML or both.";

    fn example() -> Option<Value> {
        Some(json!({
            "to": "Ada Lovelace <ada@example.com>",
            "cc": ["billing@example.com"],
            "subject": "Order 42 refunded",
            "text": "Hi Ada,\nyour refund of 42.50 EUR for order 42 is on its way.",
            "html": "<p>Hi Ada,</p><p>your refund of <b>42.50 EUR</b> for order 42 is on its way.</p>",
        }))
    }

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: SendMessageInput,
    ) -> Result<ActionOutcome<SentMessage>, ActionError> {
        let message = input.message()?;
        let connection = ctx.connection_name(input.connection)?;
        let base = ctx.base_url(provider!(), &connection).await?;
        let mut body = json!({"raw": URL_SAFE.encode(message.render())});
        if let Some(thread_id) = input.thread_id.filter(|id| !id.is_empty()) {
            body["threadId"] = json!(thread_id);
        }
        let request = ctx
            .http()
            .request(
                Method::POST,
                &format!("{base}/gmail/v1/users/me/messages/send"),
            )?
            .json(&body);
        let call =
            IntegrationCall::new(provider!(), Self::NAME, request).connection(Some(connection));
        let response = match ctx.send(call).await?.done_or_wait() {
            Ok(response) => response,
            Err(wait) => return Ok(wait),
        };
        crate::declarative::check(provider!(), OPERATION, &response)?;
        let sent: Sent = serde_json::from_slice(&response.body).map_err(|error| {
            ActionError::Permanent(format!("Gmail {OPERATION} answered oddly: {error}"))
        })?;
        Ok(ActionOutcome::Done(SentMessage {
            id: sent.id,
            thread_id: sent.thread_id,
            label_ids: sent.label_ids,
        }))
    }
}
