//! Durable execution for Stepwise: the run/step state machine, apalis step workers, the outbox
//! relay and the store.
//!
//! Architecture invariant: this is the only crate that talks to the database or the queue.

pub mod db;
mod engine;
pub mod error;
mod executor;
pub mod machine;
mod runtime;
pub mod status;
pub mod store;

pub use db::{Backend, Database};
pub use engine::{Engine, RunEvent};
pub use error::EngineError;
pub use runtime::{Runtime, RuntimeOptions};
pub use status::{RunStatus, StepStatus};
pub use store::runs::{AttemptView, Page, RunDetail, RunFilter, RunSummary, StepView};
pub use store::tenants::Tenant;
pub use store::workflows::{Deployed, VersionInfo, WorkflowSummary};
