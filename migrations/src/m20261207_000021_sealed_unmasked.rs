//! The true values behind masked run data: when masking a secret changed what a step or run
//! stores (its output, a `for_each` step's rendered list), the unmasked values are kept
//! sealed by the vault next to the masked copy, for the later steps (and parent runs) that
//! read them. Null when masking changed nothing.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Steps {
    Table,
    SealedUnmasked,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    SealedUnmasked,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One statement per table: SQLite alters one column at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(Steps::Table)
                    .add_column(ColumnDef::new(Steps::SealedUnmasked).blob().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .add_column(ColumnDef::new(Runs::SealedUnmasked).blob().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Steps::Table)
                    .drop_column(Steps::SealedUnmasked)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Runs::Table)
                    .drop_column(Runs::SealedUnmasked)
                    .to_owned(),
            )
            .await
    }
}
