//! Per-connection parameters (issue 15): `connections.params`, the values a connection gives
//! for its provider's declared parameters (Shopify's `shop`, Microsoft's `tenant`), a JSON
//! object of strings, read by the provider's URL templates. Not secret: they name where the
//! provider is, like a base URL. Values kept from a token answer are sealed with the tokens
//! instead.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Connections {
    Table,
    Params,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .add_column(ColumnDef::new(Connections::Params).json_binary().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Connections::Table)
                    .drop_column(Connections::Params)
                    .to_owned(),
            )
            .await
    }
}
