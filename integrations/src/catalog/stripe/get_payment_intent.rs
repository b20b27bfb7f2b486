//! `stripe.get_payment_intent`: `GET /v1/payment_intents/{intent}`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{check, url};
use crate::action::{Action, ActionOutcome};
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::IntegrationCall;

pub struct GetPaymentIntent;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GetPaymentIntentInput {
    /// The PaymentIntent ID (`pi_...`).
    pub id: String,
    /// The Stripe connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct GetPaymentIntentOutput {
    /// The PaymentIntent ID (`pi_...`).
    pub id: String,
    /// `requires_payment_method`, `requires_confirmation`, `requires_action`, `processing`,
    /// `requires_capture`, `canceled` or `succeeded`.
    pub status: String,
    /// The amount intended to be collected, in the smallest currency unit.
    pub amount: u64,
    /// The amount collected so far.
    #[serde(default)]
    pub amount_received: u64,
    /// Three-letter ISO currency code, lower case.
    pub currency: String,
    /// The customer ID (`cus_...`), when the intent has one.
    #[serde(default, deserialize_with = "expandable_id")]
    pub customer: Option<String>,
    /// The latest charge ID (`ch_...`).
    #[serde(default, deserialize_with = "expandable_id")]
    pub latest_charge: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// Creation time, Unix seconds.
    pub created: i64,
    /// Whether the intent lives in live mode (false in test mode).
    pub livemode: bool,
}

#[async_trait]
impl Action for GetPaymentIntent {
    type Input = GetPaymentIntentInput;
    type Output = GetPaymentIntentOutput;

    const NAME: &'static str = "stripe.get_payment_intent";
    const DESCRIPTION: &'static str = "Read a Stripe PaymentIntent: its status and amounts.";

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: GetPaymentIntentInput,
    ) -> Result<ActionOutcome<GetPaymentIntentOutput>, ActionError> {
        if input.id.is_empty() {
            return Err(ActionError::InvalidInput("`id` is empty".to_owned()));
        }
        let connection = ctx.connection_name(input.connection)?;
        let url = url(
            ctx,
            &connection,
            &["v1", "payment_intents", input.id.as_str()],
        )
        .await?;
        let request = ctx.http().request(Method::GET, url.as_str())?;
        let call = IntegrationCall::new(provider!(), Self::NAME, request).connection(Some(connection));
        let response = match ctx.send(call).await?.done_or_wait() {
            Ok(response) => response,
            Err(wait) => return Ok(wait),
        };
        check("get payment intent", &response)?;
        serde_json::from_slice(&response.body)
            .map(ActionOutcome::Done)
            .map_err(|error| {
                ActionError::Permanent(format!("Stripe get payment intent answered oddly: {error}"))
            })
    }
}

/// An expandable field: Stripe sends the ID, or the whole object when the request expanded it.
fn expandable_id<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Expandable {
        Id(String),
        Object { id: String },
    }
    Ok(
        Option::<Expandable>::deserialize(deserializer)?.map(|field| match field {
            Expandable::Id(id) => id,
            Expandable::Object { id } => id,
        }),
    )
}
