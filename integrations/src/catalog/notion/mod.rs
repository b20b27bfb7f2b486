//! `notion.*`: the Notion API through a connection (an internal integration token as a
//! bearer token). Every action is declared in `actions.yaml`; requests pin the API version
//! (`Notion-Version`) and listings follow the cursor Notion returns in the JSON body.

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
}

#[cfg(test)]
mod tests;
