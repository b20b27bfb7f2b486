//! Token refresh ahead of expiry, relative to the token's lifetime (issue 14):
//! - `connections.token_lifetime_ms`: the lifetime the provider gave the stored access token
//!   (`expires_in`), so the refresh margin can be a fraction of it;
//! - `oauth_apps.refresh_margin_ms`: the app's own refresh margin, instead of the engine's.
//!
//! SQLite adds one column per `ALTER TABLE`, so each column is its own statement.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Connections {
    Table,
    TokenLifetimeMs,
}

#[derive(DeriveIden)]
enum OauthApps {
    Table,
    RefreshMarginMs,
}

fn columns() -> Vec<(DynIden, DynIden)> {
    vec![
        (
            Connections::Table.into_iden(),
            Connections::TokenLifetimeMs.into_iden(),
        ),
        (
            OauthApps::Table.into_iden(),
            OauthApps::RefreshMarginMs.into_iden(),
        ),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in columns() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(ColumnDef::new(column).big_integer().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column) in columns().into_iter().rev() {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}
