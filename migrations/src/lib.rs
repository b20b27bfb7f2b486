//! Schema migrations, append-only and backend-agnostic: the same statements run on SQLite and
//! Postgres. Never edit a migration that has shipped; add a new one.
//!
//! Conventions: ids are text (UUIDv7 for runs, so ordering by id is ordering by creation);
//! timestamps are integer milliseconds since the Unix epoch (portable, cheap to compare);
//! JSON columns are `json_binary` (jsonb on Postgres, text on SQLite).

pub use sea_orm_migration::prelude::*;

mod m20261128_000001_foundation;
mod m20261128_000003_run_lineage;
mod m20261130_000001_schedules;
mod m20261130_000002_connections;
mod m20261201_000001_secrets;
mod m20261202_000001_webhooks;
mod m20261203_000001_run_coordination;
mod m20261203_000002_dashboard_sessions;
mod m20261203_000003_runs_by_trigger;
mod m20261203_000004_retention;
mod m20261204_000001_workflow_enabled;
mod m20261204_000002_connection_settings;
mod m20261204_000003_rate_limit_buckets;
mod m20261205_000020_webhook_delivery_history;
mod m20261205_000030_integration_health;
mod m20261207_000021_sealed_unmasked;
mod m20261207_000022_token_refresh_margin;
mod m20261207_000040_run_stored_bytes;
mod m20261208_000001_connection_params;
mod m20261208_000010_outbox_held_by;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261128_000001_foundation::Migration),
            Box::new(m20261128_000003_run_lineage::Migration),
            Box::new(m20261201_000001_secrets::Migration),
            Box::new(m20261202_000001_webhooks::Migration),
            Box::new(m20261130_000001_schedules::Migration),
            Box::new(m20261130_000002_connections::Migration),
            Box::new(m20261203_000001_run_coordination::Migration),
            Box::new(m20261203_000002_dashboard_sessions::Migration),
            Box::new(m20261203_000003_runs_by_trigger::Migration),
            Box::new(m20261203_000004_retention::Migration),
            Box::new(m20261204_000001_workflow_enabled::Migration),
            Box::new(m20261204_000002_connection_settings::Migration),
            Box::new(m20261204_000003_rate_limit_buckets::Migration),
            Box::new(m20261205_000020_webhook_delivery_history::Migration),
            Box::new(m20261205_000030_integration_health::Migration),
            Box::new(m20261207_000021_sealed_unmasked::Migration),
            Box::new(m20261207_000022_token_refresh_margin::Migration),
            Box::new(m20261207_000040_run_stored_bytes::Migration),
            Box::new(m20261208_000001_connection_params::Migration),
            Box::new(m20261208_000010_outbox_held_by::Migration),
        ]
    }
}
