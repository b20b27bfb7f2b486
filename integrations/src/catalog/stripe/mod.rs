//! `stripe.*`: the Stripe API through a connection (a secret or restricted key as a bearer
//! token, or Stripe Connect OAuth). Requests are form-encoded and carry the step's idempotency
//! key, so Stripe performs a retried request once.

mod create_customer;
mod create_refund;
mod get_payment_intent;

pub use create_customer::{CreateCustomer, CreateCustomerInput, CreateCustomerOutput};
pub use create_refund::{CreateRefund, CreateRefundInput, CreateRefundOutput, RefundReason};
pub use get_payment_intent::{GetPaymentIntent, GetPaymentIntentInput, GetPaymentIntentOutput};

use reqwest::Url;
use serde::Deserialize;

use crate::context::ActionContext;
use crate::error::ActionError;
use crate::registry::Registry;
use crate::runtime::IntegrationResponse;

pub(crate) fn register(registry: &mut Registry) {
    registry.register(CreateCustomer);
    registry.register(CreateRefund);
    registry.register(GetPaymentIntent);
}

/// The connection's base URL + the path `segments` (each percent-encoded).
async fn url(ctx: &ActionContext, connection: &str, segments: &[&str]) -> Result<Url, ActionError> {
    let base = ctx.base_url(provider!(), connection).await?;
    let mut url = Url::parse(&base)
        .map_err(|error| ActionError::Permanent(format!("invalid Stripe base URL: {error}")))?;
    url.path_segments_mut()
        .map_err(|()| ActionError::Permanent("invalid Stripe base URL".into()))?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Stripe's error object: `{"error": {"type", "code", "message", "param"}}`.
#[derive(Debug, Deserialize)]
struct ErrorEnvelope {
    error: StripeError,
}

#[derive(Debug, Deserialize)]
struct StripeError {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    param: Option<String>,
}

/// A 4xx/5xx answer as an [`ActionError`] whose message carries Stripe's error object.
fn check(operation: &str, response: &IntegrationResponse) -> Result<(), ActionError> {
    let status = response.status;
    let detail = serde_json::from_slice::<ErrorEnvelope>(&response.body)
        .map(|envelope| {
            let error = envelope.error;
            let mut parts: Vec<String> = [error.kind, error.code].into_iter().flatten().collect();
            if let Some(param) = error.param {
                parts.push(format!("param `{param}`"));
            }
            let message = error.message.unwrap_or_default();
            format!("{}: {message}", parts.join(" "))
        })
        .unwrap_or_default();
    match response.error_for_status(format!(
        "Stripe {operation} answered HTTP {status} {detail}"
    )) {
        Some(error) => Err(error),
        None => Ok(()),
    }
}
