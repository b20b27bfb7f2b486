//! `slack.*`: the Slack Web API through a connection (bot or user token). Every action is
//! declared in `actions.yaml`; one that needs logic would be a Rust file of this folder,
//! registered here too.

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
}

#[cfg(test)]
mod tests;
