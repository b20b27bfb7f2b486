//! Durable execution for Stepwise: the run/step state machine, apalis step workers, the outbox
//! relay and the store.
//!
//! Architecture invariant: this is the only crate that talks to the database or the queue.

mod awaits;
mod concurrency;
mod connections;
pub mod cron;
pub mod db;
mod engine;
pub mod error;
mod executor;
pub mod health;
mod ingest_cache;
pub mod limits;
pub mod machine;
pub mod oauth;
pub mod retention;
mod runtime;
mod schedules;
mod starts;
pub mod status;
pub mod store;
pub mod vault;
mod webhooks;

pub use db::{Backend, Database};

/// A named crash point for the crash tests. Built with the `failpoints` feature and run with
/// `FAILPOINTS=<name>=return`, the process aborts right here: no destructor runs and nothing
/// more is written, exactly as if it were killed with SIGKILL at this instant. Without the
/// feature this compiles to nothing.
#[cfg_attr(not(feature = "failpoints"), allow(unused_variables))]
pub(crate) fn crash_point(name: &str) {
    fail::fail_point!(name, |_| std::process::abort());
}
pub use connections::{ConnectionDeleted, ConnectionTest};
pub use engine::{Engine, RunEvent, RunObserver};
pub use error::EngineError;
pub use limits::DataLimits;
pub use runtime::{
    DEFAULT_SHUTDOWN_GRACE, MISSED_HEARTBEATS, Runtime, RuntimeOptions, WorkerState, WorkerStatus,
};
pub use schedules::SchedulerPass;
pub use status::{RunStatus, StepStatus};
pub use store::outbox::QueueStats;
pub use store::runs::{AttemptView, Page, RunDetail, RunFilter, RunSummary, StepView};
pub use store::schedules::{FireInfo, FireOutcome, ScheduleInfo};
pub use store::secrets::{RewrapReport, SecretInfo, SecretWritten};
pub use store::tenants::Tenant;
pub use store::webhooks::{DeliveryInfo, RejectionInfo, SourceInfo};
pub use store::workflows::{Deployed, VersionInfo, WorkflowSummary};
pub use vault::{KeyProvider, MasterKeySettings, Vault, VaultError};
pub use webhooks::{IngestError, Ingested};
