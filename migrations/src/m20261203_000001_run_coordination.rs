//! Runs that wait on other things: workflow `concurrency` (a run records its rendered key and may
//! be `queued` until a slot frees) and `core.wait_for_webhook` (the subscription of a parked step to
//! a webhook source, deleted when a delivery resumes it or its run ends).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    WorkflowId,
    Status,
    /// The rendered `concurrency.key`; null when the workflow sets no `concurrency`.
    ConcurrencyKey,
}

#[derive(DeriveIden)]
enum WebhookWaits {
    Table,
    RunId,
    StepId,
    TenantId,
    /// The webhook source's name.
    Source,
    /// JSON list of event types (empty: any).
    Events,
    /// JSON object of dotted path -> expected value, matched against the delivery.
    Matches,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(string_null(Runs::ConcurrencyKey))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_runs_concurrency")
                    .table(Runs::Table)
                    .col(Runs::WorkflowId)
                    .col(Runs::ConcurrencyKey)
                    .col(Runs::Status)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WebhookWaits::Table)
                    .col(string(WebhookWaits::RunId))
                    .col(string(WebhookWaits::StepId))
                    .col(string(WebhookWaits::TenantId))
                    .col(string(WebhookWaits::Source))
                    .col(json_binary(WebhookWaits::Events))
                    .col(json_binary(WebhookWaits::Matches))
                    .col(big_integer(WebhookWaits::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(WebhookWaits::RunId)
                            .col(WebhookWaits::StepId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_waits_open")
                    .table(WebhookWaits::Table)
                    .col(WebhookWaits::TenantId)
                    .col(WebhookWaits::Source)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(WebhookWaits::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_runs_concurrency")
                    .table(Runs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .drop_column(Runs::ConcurrencyKey)
                    .to_owned(),
            )
            .await
    }
}
