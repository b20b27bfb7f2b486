//! `generic`: any OAuth 2.0 or HTTP API. It has no actions of its own; its connections
//! authenticate `http.request`.

use crate::registry::Registry;

pub(crate) fn register(_registry: &mut Registry) {}
