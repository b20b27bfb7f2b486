//! `stripe.create_customer`: `POST /v1/customers`.

use std::collections::BTreeMap;

use async_trait::async_trait;
use reqwest::Method;
use reqwest::header::CONTENT_TYPE;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::check;
use crate::action::{Action, ActionOutcome};
use crate::context::ActionContext;
use crate::error::ActionError;
use crate::runtime::IntegrationCall;

pub struct CreateCustomer;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCustomerInput {
    /// The customer's email address.
    #[serde(default)]
    pub email: Option<String>,
    /// The customer's full name or business name.
    #[serde(default)]
    pub name: Option<String>,
    /// An arbitrary description shown in the dashboard.
    #[serde(default)]
    pub description: Option<String>,
    /// The customer's phone number.
    #[serde(default)]
    pub phone: Option<String>,
    /// Key-value pairs stored with the customer.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
    /// The Stripe connection; defaults to the step's `connection:`.
    #[serde(default)]
    pub connection: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct CreateCustomerOutput {
    /// The customer ID (`cus_...`).
    pub id: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    /// Whether the customer lives in live mode (false in test mode).
    pub livemode: bool,
}

#[async_trait]
impl Action for CreateCustomer {
    type Input = CreateCustomerInput;
    type Output = CreateCustomerOutput;

    const NAME: &'static str = "stripe.create_customer";
    const DESCRIPTION: &'static str =
        "Create a Stripe customer (once per step, by idempotency key).";

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: CreateCustomerInput,
    ) -> Result<ActionOutcome<CreateCustomerOutput>, ActionError> {
        let form = form_body(&input);
        let connection = ctx.connection_name(input.connection)?;
        let base = ctx.base_url(provider!(), &connection).await?;
        let request = ctx
            .http()
            .request(Method::POST, &format!("{base}/v1/customers"))?
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("idempotency-key", ctx.idempotency_key())
            .body(form);
        let call = IntegrationCall::new(provider!(), Self::NAME, request).connection(Some(connection));
        let response = match ctx.send(call).await?.done_or_wait() {
            Ok(response) => response,
            Err(wait) => return Ok(wait),
        };
        check("create customer", &response)?;
        serde_json::from_slice(&response.body)
            .map(ActionOutcome::Done)
            .map_err(|error| {
                ActionError::Permanent(format!("Stripe create customer answered oddly: {error}"))
            })
    }
}

/// The form-encoded body Stripe expects; metadata as `metadata[key]=value`.
fn form_body(input: &CreateCustomerInput) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (field, value) in [
        ("email", &input.email),
        ("name", &input.name),
        ("description", &input.description),
        ("phone", &input.phone),
    ] {
        if let Some(value) = value {
            form.append_pair(field, value);
        }
    }
    for (key, value) in &input.metadata {
        form.append_pair(&format!("metadata[{key}]"), value);
    }
    form.finish()
}
