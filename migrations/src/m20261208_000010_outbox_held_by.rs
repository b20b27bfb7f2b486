//! An outbox row can be held by the worker that claimed its step in the same commit (eager
//! dispatch): the relay leaves a held row alone while its holder's worker is alive, and hands
//! it to the queue once that worker has missed its heartbeats.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum StepOutbox {
    Table,
    HeldBy,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(StepOutbox::Table)
                    .add_column(ColumnDef::new(StepOutbox::HeldBy).string().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(StepOutbox::Table)
                    .drop_column(StepOutbox::HeldBy)
                    .to_owned(),
            )
            .await
    }
}
