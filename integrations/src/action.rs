//! The `Action` trait: one typed operation of an integration (`provider.action`).

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::Serialize;
use serde::de::{Deserialize, DeserializeOwned};
use serde_json::{Map, Value};

use crate::context::ActionContext;
use crate::error::ActionError;

/// What an action invocation produced.
#[derive(Debug, Clone, PartialEq)]
pub enum ActionOutcome<T> {
    /// The action finished with this output.
    Done(T),
    /// The action must not finish before `until`; the engine parks the step without holding a
    /// worker and invokes the action again at that time with [`ActionContext::wake_at`] set.
    Suspend { until: DateTime<Utc> },
    /// The step waits for something only the engine can observe and resumes with it as its
    /// output, holding no worker meanwhile. If `until` passes first, the action is invoked
    /// again with [`ActionContext::wake_at`] set and decides what the timeout means.
    Await {
        target: AwaitTarget,
        until: Option<DateTime<Utc>>,
    },
}

/// What an [`ActionOutcome::Await`] waits for.
#[derive(Debug, Clone, PartialEq)]
pub enum AwaitTarget {
    /// A new run of the tenant's workflow `workflow` with `input`, linked to the step; the
    /// step's output is the run's result (`run_id`, `status`, `output`), and a run that does
    /// not succeed fails the step.
    Run { workflow: String, input: Value },
    /// The next delivery on the tenant's webhook source `source` whose event type is one of
    /// `events` (any when empty) and whose trigger object holds every `matches` entry (a dotted
    /// path such as `body.pull_request.number`, and the value expected there); the step's output
    /// is that trigger object.
    Webhook {
        source: String,
        events: Vec<String>,
        matches: Map<String, Value>,
    },
}

impl<T> ActionOutcome<T> {
    /// The finished value, or the same wait as an outcome of another output type (for an
    /// action passing on a wait from [`ActionContext::send`]).
    pub fn done_or_wait<U>(self) -> Result<T, ActionOutcome<U>> {
        match self {
            Self::Done(value) => Ok(value),
            Self::Suspend { until } => Err(ActionOutcome::Suspend { until }),
            Self::Await { target, until } => Err(ActionOutcome::Await { target, until }),
        }
    }

    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> ActionOutcome<U> {
        match self {
            Self::Done(value) => ActionOutcome::Done(f(value)),
            Self::Suspend { until } => ActionOutcome::Suspend { until },
            Self::Await { target, until } => ActionOutcome::Await { target, until },
        }
    }
}

/// A typed integration action. Implementations reach the network only through `ctx`.
#[async_trait]
pub trait Action: Send + Sync + 'static {
    type Input: DeserializeOwned + JsonSchema + Send;
    type Output: Serialize + JsonSchema + Send;

    /// Registry key, `provider.action`.
    const NAME: &'static str;
    /// One line for docs and `stepwise schema`.
    const DESCRIPTION: &'static str;
    /// True when executing the action has no effect outside the step's own result (no
    /// network, no waiting on the world), so running it twice is harmless. The engine claims
    /// and completes such steps in one transaction instead of two.
    const PURE: bool = false;

    /// One realistic `with:` for the conformance suite and the reference page; every built-in
    /// action has one (`tests/conformance.rs`).
    fn example() -> Option<Value> {
        None
    }

    async fn execute(
        &self,
        ctx: &ActionContext,
        input: Self::Input,
    ) -> Result<ActionOutcome<Self::Output>, ActionError>;
}

/// The type-erased form of an [`Action`] that the registry stores and the engine calls.
#[async_trait]
pub trait DynAction: Send + Sync {
    fn name(&self) -> &'static str;
    fn description(&self) -> &'static str;
    fn input_schema(&self) -> &Value;
    fn output_schema(&self) -> &Value;
    /// Checks that `input` fits the action's typed input without running anything: for
    /// validating a workflow's `with:` values and for the conformance suite.
    fn check_input(&self, input: &Value) -> Result<(), ActionError>;
    /// One realistic `with:` (see [`Action::example`]).
    fn example(&self) -> Option<&Value>;
    /// See [`Action::PURE`].
    fn is_pure(&self) -> bool;
    async fn execute_json(
        &self,
        ctx: &ActionContext,
        input: Value,
    ) -> Result<ActionOutcome<Value>, ActionError>;
}

/// Adapts a typed [`Action`] to [`DynAction`], computing its schemas once.
pub(crate) struct Erased<A: Action> {
    action: A,
    input_schema: Value,
    output_schema: Value,
    example: Option<Value>,
}

impl<A: Action> Erased<A> {
    pub(crate) fn erase(action: A) -> Arc<dyn DynAction> {
        Arc::new(Self {
            action,
            input_schema: schemars::schema_for!(A::Input).to_value(),
            output_schema: schemars::schema_for!(A::Output).to_value(),
            example: A::example(),
        })
    }
}

#[async_trait]
impl<A: Action> DynAction for Erased<A> {
    fn name(&self) -> &'static str {
        A::NAME
    }

    fn description(&self) -> &'static str {
        A::DESCRIPTION
    }

    fn is_pure(&self) -> bool {
        A::PURE
    }

    fn input_schema(&self) -> &Value {
        &self.input_schema
    }

    fn output_schema(&self) -> &Value {
        &self.output_schema
    }

    fn check_input(&self, input: &Value) -> Result<(), ActionError> {
        A::Input::deserialize(input)
            .map(drop)
            .map_err(|error| ActionError::InvalidInput(error.to_string()))
    }

    fn example(&self) -> Option<&Value> {
        self.example.as_ref()
    }

    async fn execute_json(
        &self,
        ctx: &ActionContext,
        input: Value,
    ) -> Result<ActionOutcome<Value>, ActionError> {
        let input: A::Input = serde_json::from_value(input)
            .map_err(|error| ActionError::InvalidInput(error.to_string()))?;
        let outcome = self.action.execute(ctx, input).await?;
        match outcome {
            ActionOutcome::Done(output) => serde_json::to_value(output)
                .map(ActionOutcome::Done)
                .map_err(|error| ActionError::Permanent(format!("output is not JSON: {error}"))),
            ActionOutcome::Suspend { until } => Ok(ActionOutcome::Suspend { until }),
            ActionOutcome::Await { target, until } => Ok(ActionOutcome::Await { target, until }),
        }
    }
}
