//! Per-tenant secrets for `${{ secrets.NAME }}`, sealed by the engine's vault. Each row is one
//! envelope: the master key id, the wrapped data key, the value's nonce and ciphertext, and the
//! envelope version. No column ever holds a plaintext value.

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
enum Secrets {
    Table,
    Id,
    TenantId,
    Name,
    EnvelopeVersion,
    KeyId,
    WrappedKey,
    Nonce,
    Ciphertext,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Secrets::Table)
                    .col(string(Secrets::Id).primary_key())
                    .col(string(Secrets::TenantId))
                    .col(string(Secrets::Name))
                    .col(small_integer(Secrets::EnvelopeVersion))
                    .col(string(Secrets::KeyId))
                    .col(blob(Secrets::WrappedKey))
                    .col(blob(Secrets::Nonce))
                    .col(blob(Secrets::Ciphertext))
                    .col(big_integer(Secrets::CreatedAt))
                    .col(big_integer(Secrets::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Secrets::Table, Secrets::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_secrets_tenant_name")
                    .table(Secrets::Table)
                    .col(Secrets::TenantId)
                    .col(Secrets::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Key rotation looks for envelopes that are not under the current key yet.
        manager
            .create_index(
                Index::create()
                    .name("ix_secrets_key_id")
                    .table(Secrets::Table)
                    .col(Secrets::KeyId)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Secrets::Table).to_owned())
            .await
    }
}
