//! Retrying and re-running runs, and runs started by other runs: a step's retry budget starts
//! again after a retry (without renumbering its attempt history), and a run records which run
//! it re-runs and which run (and step) started it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Runs {
    Table,
    /// How many times the run was retried from its failed steps.
    Retries,
    /// The run this one re-runs with the same input.
    RerunOf,
    /// The run whose `workflow.run` step started this one, and that step.
    ParentRunId,
    ParentStepId,
}

#[derive(DeriveIden)]
enum Steps {
    Table,
    /// Attempts made before the latest retry of the run; the retry policy counts from here.
    AttemptOffset,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite alters one column per statement.
        let run_columns = [
            integer(Runs::Retries).default(0).to_owned(),
            string_null(Runs::RerunOf).to_owned(),
            string_null(Runs::ParentRunId).to_owned(),
            string_null(Runs::ParentStepId).to_owned(),
        ];
        for column in run_columns {
            manager
                .alter_table(
                    Table::alter()
                        .table(Runs::Table)
                        .add_column(column)
                        .to_owned(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Steps::Table)
                    .add_column(integer(Steps::AttemptOffset).default(0))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_runs_parent_run_id")
                    .table(Runs::Table)
                    .col(Runs::ParentRunId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("ix_runs_parent_run_id")
                    .table(Runs::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Steps::Table)
                    .drop_column(Steps::AttemptOffset)
                    .to_owned(),
            )
            .await?;
        for column in [
            Runs::ParentStepId,
            Runs::ParentRunId,
            Runs::RerunOf,
            Runs::Retries,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Runs::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
