//! Dashboard sessions: a browser logs in with an API key and gets a random session token in an
//! HttpOnly cookie; only the token's SHA-256 is stored, with its tenant and expiry, so logging
//! out (or expiry) ends the session server-side.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum DashboardSessions {
    Table,
    TokenHash,
    TenantId,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DashboardSessions::Table)
                    .col(string(DashboardSessions::TokenHash).primary_key())
                    .col(string(DashboardSessions::TenantId))
                    .col(big_integer(DashboardSessions::CreatedAt))
                    .col(big_integer(DashboardSessions::ExpiresAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_dashboard_sessions_expires_at")
                    .table(DashboardSessions::Table)
                    .col(DashboardSessions::ExpiresAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DashboardSessions::Table).to_owned())
            .await
    }
}
