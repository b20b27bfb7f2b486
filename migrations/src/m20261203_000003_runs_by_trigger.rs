//! Listing runs by trigger kind (`?trigger=cron`) walks an index in id order like the other
//! run filters, instead of scanning the tenant's runs for a rare kind.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    TenantId,
    TriggerKind,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name("ix_runs_tenant_trigger_id")
                    .table(Runs::Table)
                    .col(Runs::TenantId)
                    .col(Runs::TriggerKind)
                    .col(Runs::Id)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_runs_tenant_trigger_id")
                    .table(Runs::Table)
                    .to_owned(),
            )
            .await
    }
}
