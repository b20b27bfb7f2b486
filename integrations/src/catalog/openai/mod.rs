//! `openai.*`: the OpenAI API through a connection (an API key as a bearer token). Every
//! action is declared in `actions.yaml`; its `x-ratelimit-*-requests` and `-tokens` headers
//! pace the connection through the quotas `provider.yaml` declares.

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
}

#[cfg(test)]
mod tests;
