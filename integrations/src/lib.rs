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
pub mod webhooks;

pub use action::{Action, ActionOutcome, AwaitTarget, DynAction};
pub use connections::{ConnectionAuth, ConnectionProvider, ResolvedConnection};
pub use context::{ActionContext, ActionServices, LogLevel, LogLine, StepInvocation};
pub use error::ActionError;
pub use redact::{MIN_SECRET_LENGTH, Redactor};
pub use registry::Registry;
pub use runtime::{IntegrationCall, IntegrationResponse, IntegrationRuntime};
pub use secrets::{MASK, SecretValue, SecretValues};
