//! Webhook sources, their accepted deliveries and a short log of rejected ones.
//!
//! - `webhook_sources`: one per (tenant, name); the signing scheme as JSON and the signing
//!   secret as a vault envelope (the same five columns as `secrets`), plus an optional previous
//!   secret that keeps verifying until `previous_valid_until` (rotation).
//! - `webhook_deliveries`: one row per accepted delivery, with the runs it started. The unique
//!   (source_id, delivery_id) index is what makes a redelivery a duplicate, also when copies
//!   race; deliveries without an id (NULL) are never duplicates.
//! - `webhook_rejections`: the most recent refused deliveries of a source (pruned on insert),
//!   with their headers minus anything secret-bearing.

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
enum WebhookSources {
    Table,
    Id,
    TenantId,
    Name,
    Provider,
    Scheme,
    EnvelopeVersion,
    KeyId,
    WrappedKey,
    Nonce,
    Ciphertext,
    PreviousEnvelopeVersion,
    PreviousKeyId,
    PreviousWrappedKey,
    PreviousNonce,
    PreviousCiphertext,
    PreviousValidUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WebhookDeliveries {
    Table,
    Id,
    TenantId,
    SourceId,
    DeliveryId,
    EventType,
    ReceivedAt,
    RunIds,
}

#[derive(DeriveIden)]
enum WebhookRejections {
    Table,
    Id,
    TenantId,
    SourceId,
    ReceivedAt,
    Code,
    Message,
    Headers,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(WebhookSources::Table)
                    .col(string(WebhookSources::Id).primary_key())
                    .col(string(WebhookSources::TenantId))
                    .col(string(WebhookSources::Name))
                    .col(string(WebhookSources::Provider))
                    .col(json_binary(WebhookSources::Scheme))
                    .col(small_integer(WebhookSources::EnvelopeVersion))
                    .col(string(WebhookSources::KeyId))
                    .col(blob(WebhookSources::WrappedKey))
                    .col(blob(WebhookSources::Nonce))
                    .col(blob(WebhookSources::Ciphertext))
                    .col(small_integer_null(WebhookSources::PreviousEnvelopeVersion))
                    .col(string_null(WebhookSources::PreviousKeyId))
                    .col(blob_null(WebhookSources::PreviousWrappedKey))
                    .col(blob_null(WebhookSources::PreviousNonce))
                    .col(blob_null(WebhookSources::PreviousCiphertext))
                    .col(big_integer_null(WebhookSources::PreviousValidUntil))
                    .col(big_integer(WebhookSources::CreatedAt))
                    .col(big_integer(WebhookSources::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookSources::Table, WebhookSources::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_sources_tenant_name")
                    .table(WebhookSources::Table)
                    .col(WebhookSources::TenantId)
                    .col(WebhookSources::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookDeliveries::Table)
                    .col(string(WebhookDeliveries::Id).primary_key())
                    .col(string(WebhookDeliveries::TenantId))
                    .col(string(WebhookDeliveries::SourceId))
                    .col(string_null(WebhookDeliveries::DeliveryId))
                    .col(string_null(WebhookDeliveries::EventType))
                    .col(big_integer(WebhookDeliveries::ReceivedAt))
                    .col(json_binary(WebhookDeliveries::RunIds))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookDeliveries::Table, WebhookDeliveries::SourceId)
                            .to(WebhookSources::Table, WebhookSources::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // NULLs are distinct in a unique index on both backends: deliveries without an id are
        // never duplicates of one another.
        manager
            .create_index(
                Index::create()
                    .name("ux_webhook_deliveries_source_delivery")
                    .table(WebhookDeliveries::Table)
                    .col(WebhookDeliveries::SourceId)
                    .col(WebhookDeliveries::DeliveryId)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(WebhookRejections::Table)
                    .col(string(WebhookRejections::Id).primary_key())
                    .col(string(WebhookRejections::TenantId))
                    .col(string(WebhookRejections::SourceId))
                    .col(big_integer(WebhookRejections::ReceivedAt))
                    .col(string(WebhookRejections::Code))
                    .col(text(WebhookRejections::Message))
                    .col(json_binary(WebhookRejections::Headers))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WebhookRejections::Table, WebhookRejections::SourceId)
                            .to(WebhookSources::Table, WebhookSources::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Listing and pruning walk a source's rejections newest first (ids are UUIDv7).
        manager
            .create_index(
                Index::create()
                    .name("ix_webhook_rejections_source_id")
                    .table(WebhookRejections::Table)
                    .col(WebhookRejections::SourceId)
                    .col(WebhookRejections::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            WebhookRejections::Table.into_iden(),
            WebhookDeliveries::Table.into_iden(),
            WebhookSources::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
