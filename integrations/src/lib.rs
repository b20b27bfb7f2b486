//! Integration actions and the runtime they share. Actions reach the network only through
//! [`ActionContext`].

pub mod action;
pub mod catalog;
pub mod context;
pub mod error;
pub mod http;
pub mod registry;
pub mod webhooks;

pub use action::{Action, ActionOutcome, DynAction};
pub use context::{ActionContext, ActionServices, LogLevel, LogLine, StepInvocation};
pub use error::ActionError;
pub use registry::Registry;
