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

use crate::context::ActionContext;
use crate::error::ActionError;
use crate::registry::Registry;
use crate::runtime::IntegrationResponse;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
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

/// A 4xx/5xx answer as an [`ActionError`] whose message carries Stripe's error object (the
/// declared error envelope).
fn check(operation: &str, response: &IntegrationResponse) -> Result<(), ActionError> {
    crate::declarative::check(provider!(), operation, response)
}
