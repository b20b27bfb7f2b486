//! `workflow.*`: composing workflows.

mod run;

pub use run::{RunWorkflow, RunWorkflowInput, RunWorkflowOutput};

use crate::registry::Registry;

pub(crate) fn register(registry: &mut Registry) {
    registry.register(RunWorkflow);
}
