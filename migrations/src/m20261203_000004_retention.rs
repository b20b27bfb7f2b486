//! Indexes for the retention pass, which deletes accepted webhook deliveries and cron fire
//! rows older than their retention by age, in batches.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum ScheduleFires {
    Table,
    SlotAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_deliveries_received_at")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::ReceivedAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_schedule_fires_slot_at")
                    .table(ScheduleFires::Table)
                    .col(ScheduleFires::SlotAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_schedule_fires_slot_at")
                    .table(ScheduleFires::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("ix_webhook_deliveries_received_at")
                    .table(WebhookDeliveries::Table)
                    .to_owned(),
            )
            .await
    }
}
