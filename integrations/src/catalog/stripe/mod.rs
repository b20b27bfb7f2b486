//! `stripe.*`: the Stripe API through a connection (a secret or restricted key as a bearer
//! token, or Stripe Connect OAuth). Every action is declared in `actions.yaml`: writes are
//! form-encoded and carry the step's idempotency key, so Stripe performs a retried request once.

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    crate::declarative::register(registry, provider!());
}

#[cfg(test)]
mod tests;
