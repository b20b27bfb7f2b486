//! Integration health as a time series (issue 6): one row per (tenant, integration, minute)
//! holding counts and sums only, so every process adds its in-memory counts to the row with
//! one upsert and rows of any minutes can be summed into an hour or a day. Latency is a
//! histogram with fixed bounds (10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 ms and
//! above), from which a percentile of any range is estimated.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum IntegrationHealth {
    Table,
    TenantId,
    Integration,
    MinuteMs,
}

/// The count columns, every one a big integer defaulting to 0.
const COUNT_COLUMNS: [&str; 25] = [
    "ok",
    "client_error",
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "circuit_open",
    "latency_le_10ms",
    "latency_le_25ms",
    "latency_le_50ms",
    "latency_le_100ms",
    "latency_le_250ms",
    "latency_le_500ms",
    "latency_le_1000ms",
    "latency_le_2500ms",
    "latency_le_5000ms",
    "latency_le_10000ms",
    "latency_over_10000ms",
    "latency_total_ms",
    "refreshes_ok",
    "refreshes_failed",
    "rate_limit_waits",
    "rate_limit_wait_ms",
    "circuit_opened",
    "circuit_closed",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key to tenants: these are statistics, and one flush writes many tenants'
        // rows at once.
        let mut table = Table::create();
        table
            .table(IntegrationHealth::Table)
            .col(string(IntegrationHealth::TenantId))
            .col(string(IntegrationHealth::Integration))
            .col(big_integer(IntegrationHealth::MinuteMs));
        for column in COUNT_COLUMNS {
            table.col(big_integer(Alias::new(column)).default(0));
        }
        table.primary_key(
            Index::create()
                .col(IntegrationHealth::TenantId)
                .col(IntegrationHealth::Integration)
                .col(IntegrationHealth::MinuteMs),
        );
        manager.create_table(table.to_owned()).await?;
        // Retention deletes by age across tenants.
        manager
            .create_index(
                Index::create()
                    .name("integration_health_by_minute")
                    .table(IntegrationHealth::Table)
                    .col(IntegrationHealth::MinuteMs)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(IntegrationHealth::Table).to_owned())
            .await
    }
}
