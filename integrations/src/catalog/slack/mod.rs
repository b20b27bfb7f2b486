//! `slack.*`: the Slack Web API through a connection (bot or user token).

mod list_channels;
mod update_message;

pub use list_channels::{Channel, ListChannels, ListChannelsInput, ListChannelsOutput};
pub use update_message::{UpdateMessage, UpdateMessageInput, UpdateMessageOutput};

use crate::error::ActionError;
use crate::registry::Registry;
use crate::runtime::IntegrationResponse;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
    registry.register(UpdateMessage);
    registry.register(ListChannels);
}

/// The HTTP status, then Slack's `ok: false`, read with the declared error envelope.
fn check(method: &str, response: &IntegrationResponse) -> Result<(), ActionError> {
    crate::declarative::check(provider!(), method, response)
}
