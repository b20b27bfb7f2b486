//! Integration actions and the runtime they share. Actions reach the network only through
//! [`ActionContext`].

pub mod action;
pub mod catalog;
pub mod connections;
pub mod context;
pub mod declarative;
pub mod error;
pub mod http;
pub mod probe;
pub mod providers;
pub mod ratelimit;
pub mod redact;
pub mod reference;
pub mod registry;
pub mod runtime;
pub mod secrets;
/// What the provider folders' tests (`catalog/{name}/tests.rs`) share: a provider connection
/// pointed at a stand-in, and running an action in it.
#[cfg(test)]
pub(crate) mod testing;
pub mod webhooks;

// `testing` is also included by the integration tests, so it names this crate as they do.
#[cfg(test)]
extern crate self as stepwise_integrations;

pub use action::{Action, ActionOutcome, AwaitTarget, DynAction};
pub use connections::{ConnectionAuth, ConnectionProvider, ResolvedConnection};
pub use context::{ActionContext, ActionServices, LogLevel, LogLine, StepInvocation};
pub use error::ActionError;
pub use redact::{MIN_SECRET_LENGTH, Redactor};
pub use registry::Registry;
pub use runtime::{IntegrationCall, IntegrationResponse, IntegrationRuntime};
pub use secrets::{MASK, SecretValue, SecretValues};
