//! Rate-limit buckets shared by every process (issue 5): one row per bucket key (tenant,
//! integration, scope) holding the scheduler's serde `Bucket`. A request's booking locks the
//! row, updates the bucket and commits, so processes on one Postgres spend one quota together.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum RateLimitBuckets {
    Table,
    TenantId,
    Integration,
    Scope,
    Bucket,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(RateLimitBuckets::Table)
                    .col(string(RateLimitBuckets::TenantId))
                    .col(string(RateLimitBuckets::Integration))
                    .col(string(RateLimitBuckets::Scope))
                    .col(json_binary(RateLimitBuckets::Bucket))
                    .col(big_integer(RateLimitBuckets::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(RateLimitBuckets::TenantId)
                            .col(RateLimitBuckets::Integration)
                            .col(RateLimitBuckets::Scope),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(RateLimitBuckets::Table, RateLimitBuckets::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RateLimitBuckets::Table).to_owned())
            .await
    }
}
