//! `http.*`: plain HTTP calls to any public endpoint.

mod request;
mod response;

pub use request::{HttpMethod, HttpRequest, HttpRequestInput, HttpResponseOutput, QueryValue};

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    registry.register(HttpRequest);
}
