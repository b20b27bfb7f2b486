//! `slack.*`: the Slack Web API through a connection (bot or user token).

mod list_channels;
mod post_message;
mod update_message;

pub use list_channels::{Channel, ListChannels, ListChannelsInput, ListChannelsOutput};
pub use post_message::{PostMessage, PostMessageInput, PostMessageOutput};
pub use update_message::{UpdateMessage, UpdateMessageInput, UpdateMessageOutput};

use serde::Deserialize;

use crate::error::ActionError;
use crate::registry::Registry;
use crate::runtime::IntegrationResponse;

pub(crate) fn register(registry: &mut Registry) {
    registry.register(PostMessage);
    registry.register(UpdateMessage);
    registry.register(ListChannels);
}

/// The envelope of every Web API answer: HTTP 200 with `ok: false` and an error code when the
/// call failed.
#[derive(Debug, Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
}

/// The HTTP status class, then Slack's `ok: false`, as an [`ActionError`].
fn check(method: &str, response: &IntegrationResponse) -> Result<(), ActionError> {
    if let Some(error) =
        response.error_for_status(format!("Slack {method} answered HTTP {}", response.status))
    {
        return Err(error);
    }
    let envelope: Envelope = serde_json::from_slice(&response.body).map_err(|error| {
        ActionError::Permanent(format!(
            "Slack {method} answered with invalid JSON: {error}"
        ))
    })?;
    if envelope.ok {
        return Ok(());
    }
    let code = envelope.error.unwrap_or_else(|| "unknown_error".into());
    let message = format!("Slack {method} failed: {code}");
    // The declaration's `errors.transient_codes` mean "try again later", every other code is
    // permanent.
    let transient = crate::providers::provider(provider!())
        .and_then(|spec| spec.errors.as_ref())
        .is_some_and(|errors| errors.transient_codes.contains(&code));
    Err(if transient {
        ActionError::Retryable {
            message,
            retry_after: crate::http::retry_after(&response.headers, chrono::Utc::now()),
        }
    } else {
        ActionError::Permanent(message)
    })
}
