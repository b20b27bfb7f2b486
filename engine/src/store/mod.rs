//! All database code, one module per aggregate.

pub mod entities;
pub mod outbox;
pub mod runs;
pub mod schedules;
pub mod secrets;
pub mod steps;
pub mod tenants;
pub mod webhooks;
pub mod workflows;

/// Milliseconds since the Unix epoch: the unit of every stored timestamp.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
