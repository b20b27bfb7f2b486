//! `outlook.*`: Outlook mail through Microsoft Graph, with a connection's OAuth token (the
//! tenant it signs in to is a connection parameter). Every action is declared in
//! `actions.yaml`; listings follow Graph's `@odata.nextLink`.

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
}

#[cfg(test)]
mod tests;
