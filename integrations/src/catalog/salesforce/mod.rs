//! `salesforce.*`: the Salesforce REST API, with a connection's OAuth token against the org's
//! own host (the `instance_url` its token answer names). Every action is declared in
//! `actions.yaml`; queries follow `nextRecordsUrl` across batches.

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
}

#[cfg(test)]
mod tests;
