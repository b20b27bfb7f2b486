//! OAuth apps, connections and pending authorizations (issue 5).
//!
//! Only secret fields are sealed: an OAuth app's client secret, and a connection's credentials
//! (access token, refresh token, API key, password) as one envelope per connection, so one data
//! key covers one record. Everything else stays queryable. A pending authorization stores only
//! the SHA-256 of its `state`; the PKCE verifier is sealed.
//!
//! `refresh_lease_owner` / `refresh_lease_until` make a token refresh single-flight across
//! processes: a process takes the lease with a conditional update, refreshes without holding a
//! transaction open during the network call, and clears it when it writes the new tokens.

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
enum OauthApps {
    Table,
    Id,
    TenantId,
    Name,
    Integration,
    ClientId,
    AuthMethod,
    Scopes,
    AuthorizeUrl,
    TokenUrl,
    RevokeUrl,
    BaseUrl,
    EnvelopeVersion,
    KeyId,
    WrappedKey,
    Nonce,
    Ciphertext,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Connections {
    Table,
    Id,
    TenantId,
    Name,
    Integration,
    Kind,
    OauthApp,
    Status,
    StatusReason,
    Scopes,
    ExpiresAt,
    Username,
    ApiKeyHeader,
    EnvelopeVersion,
    KeyId,
    WrappedKey,
    Nonce,
    Ciphertext,
    RefreshLeaseOwner,
    RefreshLeaseUntil,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OauthStates {
    Table,
    StateHash,
    TenantId,
    ConnectionId,
    EnvelopeVersion,
    KeyId,
    WrappedKey,
    Nonce,
    Ciphertext,
    ExpiresAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(OauthApps::Table)
                    .col(string(OauthApps::Id).primary_key())
                    .col(string(OauthApps::TenantId))
                    .col(string(OauthApps::Name))
                    .col(string(OauthApps::Integration))
                    .col(string(OauthApps::ClientId))
                    .col(string(OauthApps::AuthMethod))
                    .col(json_binary(OauthApps::Scopes))
                    .col(string_null(OauthApps::AuthorizeUrl))
                    .col(string_null(OauthApps::TokenUrl))
                    .col(string_null(OauthApps::RevokeUrl))
                    .col(string_null(OauthApps::BaseUrl))
                    .col(small_integer_null(OauthApps::EnvelopeVersion))
                    .col(string_null(OauthApps::KeyId))
                    .col(blob_null(OauthApps::WrappedKey))
                    .col(blob_null(OauthApps::Nonce))
                    .col(blob_null(OauthApps::Ciphertext))
                    .col(big_integer(OauthApps::CreatedAt))
                    .col(big_integer(OauthApps::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OauthApps::Table, OauthApps::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_oauth_apps_tenant_name")
                    .table(OauthApps::Table)
                    .col(OauthApps::TenantId)
                    .col(OauthApps::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Connections::Table)
                    .col(string(Connections::Id).primary_key())
                    .col(string(Connections::TenantId))
                    .col(string(Connections::Name))
                    .col(string(Connections::Integration))
                    .col(string(Connections::Kind))
                    .col(string_null(Connections::OauthApp))
                    .col(string(Connections::Status))
                    .col(text_null(Connections::StatusReason))
                    .col(json_binary(Connections::Scopes))
                    .col(big_integer_null(Connections::ExpiresAt))
                    .col(string_null(Connections::Username))
                    .col(string_null(Connections::ApiKeyHeader))
                    .col(small_integer_null(Connections::EnvelopeVersion))
                    .col(string_null(Connections::KeyId))
                    .col(blob_null(Connections::WrappedKey))
                    .col(blob_null(Connections::Nonce))
                    .col(blob_null(Connections::Ciphertext))
                    .col(string_null(Connections::RefreshLeaseOwner))
                    .col(big_integer_null(Connections::RefreshLeaseUntil))
                    .col(big_integer(Connections::CreatedAt))
                    .col(big_integer(Connections::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Connections::Table, Connections::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_connections_tenant_name")
                    .table(Connections::Table)
                    .col(Connections::TenantId)
                    .col(Connections::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OauthStates::Table)
                    .col(string(OauthStates::StateHash).primary_key())
                    .col(string(OauthStates::TenantId))
                    .col(string(OauthStates::ConnectionId))
                    .col(small_integer(OauthStates::EnvelopeVersion))
                    .col(string(OauthStates::KeyId))
                    .col(blob(OauthStates::WrappedKey))
                    .col(blob(OauthStates::Nonce))
                    .col(blob(OauthStates::Ciphertext))
                    .col(big_integer(OauthStates::ExpiresAt))
                    .col(big_integer(OauthStates::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(OauthStates::Table, OauthStates::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        // Expired states are pruned by expiry.
        manager
            .create_index(
                Index::create()
                    .name("ix_oauth_states_expires_at")
                    .table(OauthStates::Table)
                    .col(OauthStates::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(OauthStates::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Connections::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(OauthApps::Table).to_owned())
            .await?;
        Ok(())
    }
}
