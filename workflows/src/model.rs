//! The validated workflow model. The parser builds it; the engine stores it (as JSON) with each
//! workflow version and executes it. Template strings (`${{ ... }}`) are kept as written and
//! rendered by [`crate::expr::Evaluator`] at run time.

use std::sync::OnceLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::expr::Evaluator;

/// A parsed, validated workflow definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Workflow {
    /// Unique per tenant, `[a-z0-9-]+`.
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub on: Triggers,
    /// JSON Schema (object properties) of the manual input, as written under `inputs:`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inputs: Option<Map<String, Value>>,
    /// Limits how many runs sharing a key may be active at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<Concurrency>,
    /// Whole-run timeout.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub timeout: Option<Duration>,
    /// Steps in file order. `needs` is always resolved: a step without `needs:` depends on the
    /// step written above it (none for the first).
    pub steps: Vec<Step>,
    /// Steps that run once the run has failed (alerting, clean-up), in their own graph: `needs`
    /// names only steps of this list (default: the one written above). Their expressions may read
    /// `steps.<id>` of any main step and `run.error`, the failure message. Ids are unique across
    /// `steps` and `on_failure`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub on_failure: Vec<Step>,
    /// Workflow outputs: templates rendered against the final context when the run succeeds.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub outputs: Map<String, Value>,
}

/// `concurrency: { key, limit, on_limit }`: at most `limit` active runs per rendered `key`.
impl Workflow {
    /// Every step: `steps`, then `on_failure`.
    pub fn all_steps(&self) -> impl Iterator<Item = &Step> {
        self.steps.iter().chain(&self.on_failure)
    }

    /// Whether a template the executor renders (a step's `with`, `if` or `for_each`, or the
    /// `outputs`) may read `secrets`: a conservative text check, where a false positive only
    /// costs loading the tenant's secrets. It walks the templates in place, since the executor
    /// asks on every step.
    pub fn references_secrets(&self) -> bool {
        fn mentions(value: &Value) -> bool {
            match value {
                Value::String(text) => text.contains("secrets"),
                Value::Array(items) => items.iter().any(mentions),
                Value::Object(map) => map.values().any(mentions),
                _ => false,
            }
        }
        self.outputs.values().any(mentions)
            || self.all_steps().any(|step| {
                step.with.values().any(mentions)
                    || step.for_each.as_ref().is_some_and(mentions)
                    || step
                        .condition
                        .as_deref()
                        .is_some_and(|condition| condition.contains("secrets"))
            })
    }

    /// The step with this id, in `steps` or `on_failure`.
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.all_steps().find(|step| step.id == id)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Concurrency {
    /// Template rendered against the trigger context (`steps` are not available yet).
    pub key: String,
    /// At least 1.
    pub limit: u32,
    #[serde(default)]
    pub on_limit: OnLimit,
}

/// What happens to a new run when `limit` runs with its key are already active.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnLimit {
    /// The new run waits until one of the active runs finishes.
    #[default]
    Queue,
    /// The new run is cancelled; the active runs continue.
    CancelNew,
    /// The oldest active run is cancelled to make room for the new one.
    CancelRunning,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Triggers {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manual: Option<ManualTrigger>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<WebhookTrigger>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cron: Vec<CronTrigger>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ManualTrigger {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WebhookTrigger {
    pub source: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
    /// A condition expression over the event (`trigger.*`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CronTrigger {
    /// 5 or 6 fields (seconds first when 6).
    pub schedule: String,
    /// IANA time zone name; UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
    #[serde(default)]
    pub catch_up: CatchUp,
    /// With `catch_up: all`, how many missed slots are fired at most (the most recent ones);
    /// [`DEFAULT_MAX_CATCH_UP`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_catch_up: Option<u32>,
    #[serde(default)]
    pub overlap: Overlap,
}

/// Missed slots fired at most after downtime with `catch_up: all` and no `max_catch_up`.
pub const DEFAULT_MAX_CATCH_UP: u32 = 100;
/// The largest `max_catch_up` accepted: catching up is bounded work.
pub const MAX_CATCH_UP_LIMIT: u32 = 1000;

impl CronTrigger {
    /// Parses [`Self::schedule`] exactly as the validator accepted it, so the scheduler and the
    /// validator can never disagree: 5 fields, or 6 with seconds first; no year field.
    pub fn cron(&self) -> Result<croner::Cron, croner::errors::CronError> {
        parse_cron(&self.schedule)
    }

    /// The entry's time zone: UTC when absent. The validator accepts only names that parse.
    pub fn time_zone(&self) -> Result<chrono_tz::Tz, chrono_tz::ParseError> {
        self.timezone.as_deref().unwrap_or("UTC").parse()
    }

    /// The bound on missed slots fired with `catch_up: all`.
    pub fn max_catch_up(&self) -> u32 {
        self.max_catch_up.unwrap_or(DEFAULT_MAX_CATCH_UP)
    }
}

/// The one cron dialect of the language (see [`CronTrigger::cron`]).
pub(crate) fn parse_cron(schedule: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .year(croner::parser::Year::Disallowed)
        .build()
        .parse(schedule)
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CatchUp {
    None,
    #[default]
    Latest,
    All,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Overlap {
    #[default]
    Skip,
    Allow,
    Queue,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// `[a-z_][a-z0-9_-]*`, unique in the workflow.
    pub id: String,
    /// `provider.action`, a key of the action registry.
    pub uses: String,
    /// Action input; strings may hold `${{ }}` templates.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub with: Map<String, Value>,
    /// Resolved dependencies (see [`Workflow::steps`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub needs: Vec<String>,
    /// Runs the step once per element: a single-expression template that must render to an
    /// array, or a literal array. Each iteration sees `item` and `index`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub for_each: Option<Value>,
    /// Upper bound on concurrently running iterations of `for_each`; `None` means unbounded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_parallel: Option<u32>,
    /// Condition expression source, without the `${{ }}` delimiters.
    #[serde(default, rename = "if", skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    /// Connection name for integration actions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    #[serde(default)]
    pub retry: RetryPolicy,
    /// Overrides the integration's in-request retry for this step's outbound calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_retry: Option<HttpRetry>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub timeout: Option<Duration>,
    #[serde(default)]
    pub on_error: OnError,
}

impl Step {
    /// Whether `if` calls a status function (`always()`, `success()`, `failure()`,
    /// `cancelled()`). The engine runs a step whose `if` does not only when `success()` holds;
    /// one whose `if` does is evaluated as soon as its needs have finished, whatever their result.
    pub fn checks_status(&self) -> bool {
        static EVALUATOR: OnceLock<Evaluator> = OnceLock::new();
        self.condition.as_deref().is_some_and(|condition| {
            EVALUATOR
                .get_or_init(Evaluator::new)
                .calls_status_function(condition)
        })
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Fail,
    Continue,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    None,
    Fixed,
    #[default]
    Exponential,
}

/// Step retry policy; serde data shared by the YAML language and the runtime. Only retryable
/// action errors are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Total attempts including the first.
    pub max_attempts: u32,
    pub backoff: Backoff,
    #[serde(with = "humantime_serde_compat")]
    pub initial_delay: Duration,
    #[serde(with = "humantime_serde_compat")]
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// Delay before attempt `next_attempt` (2 for the first retry). `jitter` is a uniform sample
    /// in `[0, 1)` supplied by the caller, which keeps this function pure; exponential backoff
    /// uses full jitter (`delay = jitter * min(max_delay, initial * 2^(n-2))`).
    pub fn delay_before(&self, next_attempt: u32, jitter: f64) -> Duration {
        let jitter = jitter.clamp(0.0, 1.0);
        match self.backoff {
            Backoff::None => Duration::ZERO,
            Backoff::Fixed => self.initial_delay.min(self.max_delay),
            Backoff::Exponential => {
                let exponent = next_attempt.saturating_sub(2).min(30);
                let ceiling = self
                    .initial_delay
                    .saturating_mul(1u32 << exponent)
                    .min(self.max_delay);
                ceiling.mul_f64(jitter)
            }
        }
    }
}

/// A step's `http_retry:`: the short retry of each outbound request inside one attempt (the
/// integration runtime's), as opposed to `retry:`, which runs the whole step again later. An
/// unset field keeps the integration's policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpRetry {
    /// Attempts per request, the first included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u32>,
    /// Upper bound of the first backoff, doubled per retry up to `max_delay`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub initial_delay: Option<Duration>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub max_delay: Option<Duration>,
    /// Total waiting between the attempts of one request.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "opt_duration"
    )]
    pub budget: Option<Duration>,
}

impl HttpRetry {
    /// The most attempts `http_retry.max_attempts` may ask for.
    pub const MAX_ATTEMPTS: u32 = 10;
    /// The longest `http_retry.budget`: a worker waits through it, so longer waits belong to
    /// the durable `retry:`.
    pub const MAX_BUDGET: Duration = Duration::from_secs(60);
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&humantime::format_duration(*value).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

mod opt_duration {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(
        value: &Option<Duration>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(duration) => super::humantime_serde_compat::serialize(duration, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|text| humantime::parse_duration(&text).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_delay_is_capped_and_jittered() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.delay_before(2, 0.999_999).as_millis(), 999);
        assert_eq!(policy.delay_before(3, 0.5), Duration::from_secs(1));
        assert_eq!(policy.delay_before(40, 1.0), Duration::from_secs(60));
        assert_eq!(policy.delay_before(5, 0.0), Duration::ZERO);
    }

    #[test]
    fn definition_round_trips_through_json() {
        let step = Step {
            id: "a".into(),
            uses: "core.log".into(),
            with: Map::new(),
            needs: vec![],
            for_each: None,
            max_parallel: None,
            condition: Some("inputs.x > 1".into()),
            connection: None,
            retry: RetryPolicy::default(),
            http_retry: Some(HttpRetry {
                max_attempts: Some(1),
                budget: Some(Duration::from_secs(2)),
                ..HttpRetry::default()
            }),
            timeout: Some(Duration::from_secs(30)),
            on_error: OnError::Continue,
        };
        let json = serde_json::to_value(&step).unwrap();
        assert_eq!(serde_json::from_value::<Step>(json).unwrap(), step);
    }
}
