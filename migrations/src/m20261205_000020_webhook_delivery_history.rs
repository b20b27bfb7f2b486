//! The dashboard's recent deliveries of a source: an index to read them newest first in
//! keyset pages, and a count of the redelivered copies each one answered as duplicates.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    SourceId,
    Id,
    Duplicates,
    LastDuplicateAt,
}

const INDEX: &str = "ix_webhook_deliveries_source_id";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(INDEX)
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::SourceId)
                    .col(WebhookDeliveries::Id)
                    .to_owned(),
            )
            .await?;
        // SQLite alters one column per statement.
        let columns = [
            integer(WebhookDeliveries::Duplicates).default(0).to_owned(),
            big_integer_null(WebhookDeliveries::LastDuplicateAt).to_owned(),
        ];
        for column in columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(WebhookDeliveries::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            WebhookDeliveries::LastDuplicateAt,
            WebhookDeliveries::Duplicates,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(WebhookDeliveries::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name(INDEX)
                    .table(WebhookDeliveries::Table)
                    .to_owned(),
            )
            .await
    }
}
