//! Connection and OAuth app settings beyond credentials (issue 5):
//! - `connections.probe_url`: what a connection test (`POST /api/v1/connections/{name}/test`)
//!   requests when the integration has no built-in probe;
//! - `connections.client_cert` (PEM, public; its key is sealed with the other credentials) and
//!   `connections.tls_min` (`1.2` or `1.3`): the connection's TLS settings;
//! - `oauth_apps.issuer`: the authorization server whose RFC 8414 / OpenID metadata gave the
//!   app's endpoints.
//!
//! SQLite adds one column per `ALTER TABLE`, so each column is its own statement.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Connections {
    Table,
    ProbeUrl,
    ClientCert,
    TlsMin,
}

#[derive(DeriveIden)]
enum OauthApps {
    Table,
    Issuer,
}

fn columns() -> Vec<(DynIden, DynIden)> {
    vec![
        (
            Connections::Table.into_iden(),
            Connections::ProbeUrl.into_iden(),
        ),
        (
            Connections::Table.into_iden(),
            Connections::ClientCert.into_iden(),
        ),
        (
            Connections::Table.into_iden(),
            Connections::TlsMin.into_iden(),
        ),
        (OauthApps::Table.into_iden(), OauthApps::Issuer.into_iden()),
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
                        .add_column(ColumnDef::new(column).text().null())
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
