//! `stripe.create_refund`: `POST /v1/refunds`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check, url};
use crate::action::{Action, ActionOutcome};
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::IntegrationCall;

pub struct CreateRefund;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRefundInput {
    /// The PaymentIntent to refund (`pi_...`); set this or `charge`.
    #[serde(default)]
    pub payment_intent: Option<String>,
    /// The charge to refund (`ch_...`); set this or `payment_intent`.
    #[serde(default)]
    pub charge: Option<String>,
    /// The amount to refund in the smallest currency unit (cents); the whole remaining amount
    /// when absent.
    #[serde(default)]
    pub amount: Option<u64>,
    /// Why: `duplicate`, `fraudulent` or `requested_by_customer`.
    #[serde(default)]
    pub reason: Option<RefundReason>,
    /// Key-value pairs stored with the refund.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The Stripe connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RefundReason {
    Duplicate,
    Fraudulent,
    RequestedByCustomer,
}

impl RefundReason {
    fn as_str(self) -> &'static str {
        match self {
            Self::Duplicate => "duplicate",
            Self::Fraudulent => "fraudulent",
            Self::RequestedByCustomer => "requested_by_customer",
        }
    }
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct CreateRefundOutput {
    /// The refund ID (`re_...`).
    pub id: String,
    /// `pending`, `requires_action`, `succeeded`, `failed` or `canceled`.
    pub status: Option<String>,
    /// The refunded amount in the smallest currency unit.
    pub amount: u64,
    /// Three-letter ISO currency code, lower case.
    pub currency: String,
    #[serde(default)]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub charge: Option<String>,
}

#[async_trait]
impl Action for CreateRefund {
    type Input = CreateRefundInput;
    type Output = CreateRefundOutput;

    const NAME: &'static str = "stripe.create_refund";
    const DESCRIPTION: &'static str =
        "Refund a Stripe payment, wholly or in part (once per step, by idempotency key).";

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: CreateRefundInput,
    ) -> Result<ActionOutcome<CreateRefundOutput>, ActionError> {
        let form = form_body(&input)?;
        let connection = ctx.connection_name(input.connection)?;
        let url = url(ctx, &connection, &["v1", "refunds"]).await?;
        // The step's key, so an in-request retry and a re-run after a crash refund once.
        let request = ctx
            .http()
            .request(Method::POST, url.as_str())?
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("idempotency-key", ctx.idempotency_key())
            .body(form);
        let call = IntegrationCall::new(provider!(), Self::NAME, request).connection(Some(connection));
        let response = match ctx.send(call).await?.done_or_wait() {
            Ok(response) => response,
            Err(wait) => return Ok(wait),
        };
        check("create refund", &response)?;
        serde_json::from_slice(&response.body)
            .map(ActionOutcome::Done)
            .map_err(|error| {
                ActionError::Permanent(format!("Stripe create refund answered oddly: {error}"))
            })
    }
}

/// The form-encoded body; exactly one of `payment_intent` and `charge`.
fn form_body(input: &CreateRefundInput) -> Result<String, ActionError> {
    let mut form = form_urlencoded::Serializer::new(String::new());
    match (&input.payment_intent, &input.charge) {
        (Some(payment_intent), None) => form.append_pair("payment_intent", payment_intent),
        (None, Some(charge)) => form.append_pair("charge", charge),
        _ => {
            return Err(ActionError::InvalidInput(
                "set exactly one of `payment_intent` and `charge`".to_owned(),
            ));
        }
    };
    if let Some(amount) = input.amount {
        form.append_pair("amount", &amount.to_string());
    }
    if let Some(reason) = input.reason {
        form.append_pair("reason", reason.as_str());
    }
    for (key, value) in &input.metadata {
        form.append_pair(&format!("metadata[{key}]"), value);
    }
    Ok(form.finish())
}
