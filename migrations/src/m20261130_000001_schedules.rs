//! Cron schedules and their fires.
//!
//! - `schedules`: one row per `on.cron` entry of a workflow's latest version (identity:
//!   workflow and entry index), with its next fire time. Deploying a version rewrites them.
//! - `schedule_fires`: one row per slot a schedule fired, skipped, queued or failed to start.
//!   The unique (schedule_id, slot_at) index is what makes a slot fire once, whatever number
//!   of processes race for it.
//! - an index on runs (workflow_id, status), for "is a run of this schedule still active".

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
enum Workflows {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Runs {
    Table,
    WorkflowId,
    Status,
}

#[derive(DeriveIden)]
enum Schedules {
    Table,
    Id,
    TenantId,
    WorkflowId,
    WorkflowName,
    Entry,
    Expression,
    Timezone,
    CatchUp,
    MaxCatchUp,
    Overlap,
    NextFireAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ScheduleFires {
    Table,
    Id,
    ScheduleId,
    TenantId,
    SlotAt,
    Outcome,
    RunId,
    Error,
    CreatedAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Schedules::Table)
                    .col(string(Schedules::Id).primary_key())
                    .col(string(Schedules::TenantId))
                    .col(string(Schedules::WorkflowId))
                    .col(string(Schedules::WorkflowName))
                    .col(integer(Schedules::Entry))
                    .col(string(Schedules::Expression))
                    .col(string(Schedules::Timezone))
                    .col(string(Schedules::CatchUp))
                    .col(integer(Schedules::MaxCatchUp))
                    .col(string(Schedules::Overlap))
                    .col(big_integer_null(Schedules::NextFireAt))
                    .col(big_integer(Schedules::CreatedAt))
                    .col(big_integer(Schedules::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Schedules::Table, Schedules::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from(Schedules::Table, Schedules::WorkflowId)
                            .to(Workflows::Table, Workflows::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_schedules_workflow_entry")
                    .table(Schedules::Table)
                    .col(Schedules::WorkflowId)
                    .col(Schedules::Entry)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The scheduler's one hot query: which schedules are due.
        manager
            .create_index(
                Index::create()
                    .name("ix_schedules_next_fire_at")
                    .table(Schedules::Table)
                    .col(Schedules::NextFireAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ScheduleFires::Table)
                    .col(string(ScheduleFires::Id).primary_key())
                    .col(string(ScheduleFires::ScheduleId))
                    .col(string(ScheduleFires::TenantId))
                    .col(big_integer(ScheduleFires::SlotAt))
                    .col(string(ScheduleFires::Outcome))
                    .col(string_null(ScheduleFires::RunId))
                    .col(text_null(ScheduleFires::Error))
                    .col(big_integer(ScheduleFires::CreatedAt))
                    .col(big_integer(ScheduleFires::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ScheduleFires::Table, ScheduleFires::ScheduleId)
                            .to(Schedules::Table, Schedules::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_schedule_fires_schedule_slot")
                    .table(ScheduleFires::Table)
                    .col(ScheduleFires::ScheduleId)
                    .col(ScheduleFires::SlotAt)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Queued slots, oldest first per schedule (`overlap: queue`).
        manager
            .create_index(
                Index::create()
                    .name("ix_schedule_fires_outcome_schedule_slot")
                    .table(ScheduleFires::Table)
                    .col(ScheduleFires::Outcome)
                    .col(ScheduleFires::ScheduleId)
                    .col(ScheduleFires::SlotAt)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_schedule_fires_run_id")
                    .table(ScheduleFires::Table)
                    .col(ScheduleFires::RunId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_runs_workflow_id_status")
                    .table(Runs::Table)
                    .col(Runs::WorkflowId)
                    .col(Runs::Status)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_runs_workflow_id_status")
                    .table(Runs::Table)
                    .to_owned(),
            )
            .await?;
        for table in [
            ScheduleFires::Table.into_iden(),
            Schedules::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
