use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Name,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ApiKeys {
    Table,
    Id,
    TenantId,
    KeyHash,
    Prefix,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Workflows {
    Table,
    Id,
    TenantId,
    Name,
    LatestVersion,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum WorkflowVersions {
    Table,
    Id,
    WorkflowId,
    TenantId,
    Version,
    Source,
    Definition,
    ContentHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    Id,
    TenantId,
    WorkflowId,
    WorkflowVersionId,
    WorkflowName,
    WorkflowVersion,
    Status,
    TriggerKind,
    Input,
    Trigger,
    Output,
    Error,
    CreatedAt,
    StartedAt,
    FinishedAt,
    DeadlineAt,
}

#[derive(DeriveIden)]
enum Steps {
    Table,
    RunId,
    StepId,
    Position,
    Status,
    Attempts,
    Dispatch,
    Input,
    Output,
    Error,
    WakeAt,
    QueuedAt,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum StepAttempts {
    Table,
    Id,
    RunId,
    StepId,
    Attempt,
    Status,
    Worker,
    Error,
    ErrorClass,
    Logs,
    StartedAt,
    FinishedAt,
}

#[derive(DeriveIden)]
enum StepOutbox {
    Table,
    Id,
    RunId,
    StepId,
    Dispatch,
    AvailableAt,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(string(Tenants::Id).primary_key())
                    .col(string_uniq(Tenants::Name))
                    .col(big_integer(Tenants::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ApiKeys::Table)
                    .col(string(ApiKeys::Id).primary_key())
                    .col(string(ApiKeys::TenantId))
                    .col(string_uniq(ApiKeys::KeyHash))
                    .col(string(ApiKeys::Prefix))
                    .col(big_integer(ApiKeys::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ApiKeys::Table, ApiKeys::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Workflows::Table)
                    .col(string(Workflows::Id).primary_key())
                    .col(string(Workflows::TenantId))
                    .col(string(Workflows::Name))
                    .col(integer(Workflows::LatestVersion))
                    .col(big_integer(Workflows::CreatedAt))
                    .col(big_integer(Workflows::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Workflows::Table, Workflows::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_workflows_tenant_name")
                    .table(Workflows::Table)
                    .col(Workflows::TenantId)
                    .col(Workflows::Name)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(WorkflowVersions::Table)
                    .col(string(WorkflowVersions::Id).primary_key())
                    .col(string(WorkflowVersions::WorkflowId))
                    .col(string(WorkflowVersions::TenantId))
                    .col(integer(WorkflowVersions::Version))
                    .col(text(WorkflowVersions::Source))
                    .col(json_binary(WorkflowVersions::Definition))
                    .col(string(WorkflowVersions::ContentHash))
                    .col(big_integer(WorkflowVersions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(WorkflowVersions::Table, WorkflowVersions::WorkflowId)
                            .to(Workflows::Table, Workflows::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_workflow_versions_workflow_version")
                    .table(WorkflowVersions::Table)
                    .col(WorkflowVersions::WorkflowId)
                    .col(WorkflowVersions::Version)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Runs::Table)
                    .col(string(Runs::Id).primary_key())
                    .col(string(Runs::TenantId))
                    .col(string(Runs::WorkflowId))
                    .col(string(Runs::WorkflowVersionId))
                    .col(string(Runs::WorkflowName))
                    .col(integer(Runs::WorkflowVersion))
                    .col(string(Runs::Status))
                    .col(string(Runs::TriggerKind))
                    .col(json_binary(Runs::Input))
                    .col(json_binary(Runs::Trigger))
                    .col(json_binary_null(Runs::Output))
                    .col(text_null(Runs::Error))
                    .col(big_integer(Runs::CreatedAt))
                    .col(big_integer_null(Runs::StartedAt))
                    .col(big_integer_null(Runs::FinishedAt))
                    .col(big_integer_null(Runs::DeadlineAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Runs::Table, Runs::WorkflowVersionId)
                            .to(WorkflowVersions::Table, WorkflowVersions::Id),
                    )
                    .to_owned(),
            )
            .await?;
        for (name, columns) in [
            ("ix_runs_tenant_id", vec![Runs::TenantId, Runs::Id]),
            (
                "ix_runs_tenant_workflow_id",
                vec![Runs::TenantId, Runs::WorkflowName, Runs::Id],
            ),
            (
                "ix_runs_tenant_status_id",
                vec![Runs::TenantId, Runs::Status, Runs::Id],
            ),
            (
                "ix_runs_status_deadline",
                vec![Runs::Status, Runs::DeadlineAt],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table(Runs::Table);
            for column in columns {
                index.col(column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(Steps::Table)
                    .col(string(Steps::RunId))
                    .col(string(Steps::StepId))
                    .col(integer(Steps::Position))
                    .col(string(Steps::Status))
                    .col(integer(Steps::Attempts))
                    .col(integer(Steps::Dispatch))
                    .col(json_binary_null(Steps::Input))
                    .col(json_binary_null(Steps::Output))
                    .col(json_binary_null(Steps::Error))
                    .col(big_integer_null(Steps::WakeAt))
                    .col(big_integer_null(Steps::QueuedAt))
                    .col(big_integer_null(Steps::StartedAt))
                    .col(big_integer_null(Steps::FinishedAt))
                    .primary_key(Index::create().col(Steps::RunId).col(Steps::StepId))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Steps::Table, Steps::RunId)
                            .to(Runs::Table, Runs::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StepAttempts::Table)
                    .col(big_pk_auto(StepAttempts::Id))
                    .col(string(StepAttempts::RunId))
                    .col(string(StepAttempts::StepId))
                    .col(integer(StepAttempts::Attempt))
                    .col(string(StepAttempts::Status))
                    .col(string_null(StepAttempts::Worker))
                    .col(text_null(StepAttempts::Error))
                    .col(string_null(StepAttempts::ErrorClass))
                    .col(json_binary_null(StepAttempts::Logs))
                    .col(big_integer(StepAttempts::StartedAt))
                    .col(big_integer_null(StepAttempts::FinishedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_step_attempts_step_attempt")
                    .table(StepAttempts::Table)
                    .col(StepAttempts::RunId)
                    .col(StepAttempts::StepId)
                    .col(StepAttempts::Attempt)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(StepOutbox::Table)
                    .col(big_pk_auto(StepOutbox::Id))
                    .col(string(StepOutbox::RunId))
                    .col(string(StepOutbox::StepId))
                    .col(integer(StepOutbox::Dispatch))
                    .col(big_integer(StepOutbox::AvailableAt))
                    .col(big_integer(StepOutbox::CreatedAt))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            StepOutbox::Table.into_iden(),
            StepAttempts::Table.into_iden(),
            Steps::Table.into_iden(),
            Runs::Table.into_iden(),
            WorkflowVersions::Table.into_iden(),
            Workflows::Table.into_iden(),
            ApiKeys::Table.into_iden(),
            Tenants::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
