//! `gmail.*`: the Gmail API through a connection (a Google account through the tenant's
//! OAuth client, asked for offline access so its token refreshes). Listing and reading are
//! declared in `actions.yaml`; sending builds a MIME message, so it is Rust
//! (`send_message.rs` over `mime.rs`).

mod mime;
mod send_message;

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
    registry.register(send_message::SendMessage);
}

#[cfg(test)]
mod tests;
