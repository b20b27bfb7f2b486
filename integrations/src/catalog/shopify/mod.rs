//! `shopify.*`: the Shopify Admin REST API of one shop per connection (`{shop}` in the base
//! URL), the token in `X-Shopify-Access-Token`. Every action is declared in `actions.yaml`;
//! listings follow the `Link` header, and `X-Shopify-Shop-Api-Call-Limit` paces the bucket.

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
}

#[cfg(test)]
mod tests;
