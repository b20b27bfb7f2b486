//! `core.sleep` is a durable timer: it suspends instead of sleeping, then completes when the
//! engine invokes it again at the wake-up time.

mod support;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::{Value, json};
use stepwise_integrations::{ActionError, ActionOutcome, Registry};
use support::context_waking_at;

async fn sleep(
    input: Value,
    wake_at: Option<DateTime<Utc>>,
) -> Result<ActionOutcome<Value>, ActionError> {
    let registry = Registry::builtin();
    let action = registry
        .get("core.sleep")
        .expect("core.sleep is registered");
    action
        .execute_json(&context_waking_at(wake_at), input)
        .await
}

fn slept_until(outcome: ActionOutcome<Value>) -> DateTime<Utc> {
    let ActionOutcome::Done(output) = outcome else {
        panic!("expected Done, got {outcome:?}");
    };
    let text = output["slept_until"]
        .as_str()
        .expect("slept_until is a string");
    DateTime::parse_from_rfc3339(text)
        .expect("RFC 3339")
        .with_timezone(&Utc)
}

#[tokio::test]
async fn a_duration_suspends_then_completes_at_the_wake_up_time() {
    let before = Utc::now();
    let first = sleep(json!({"duration": "1h"}), None)
        .await
        .expect("first invocation");
    let ActionOutcome::Suspend { until } = first else {
        panic!("expected Suspend, got {first:?}");
    };
    let hour = TimeDelta::hours(1);
    assert!(
        until >= before + hour && until <= Utc::now() + hour,
        "{until}"
    );

    // Woken early (clock skew between workers): park again until the same time.
    let early = sleep(json!({"duration": "1h"}), Some(until))
        .await
        .expect("early");
    assert_eq!(early, ActionOutcome::Suspend { until });

    // Woken on time: done, reporting the original target rather than a recomputed one.
    let due = Utc::now() - TimeDelta::seconds(1);
    let done = sleep(json!({"duration": "1h"}), Some(due))
        .await
        .expect("on time");
    assert_eq!(slept_until(done).timestamp(), due.timestamp());
}

#[tokio::test]
async fn until_suspends_until_that_time() {
    let outcome = sleep(json!({"until": "2999-01-01T00:00:00Z"}), None).await;
    let expected: DateTime<Utc> = "2999-01-01T00:00:00Z".parse().expect("timestamp");
    assert_eq!(outcome, Ok(ActionOutcome::Suspend { until: expected }));
}

#[tokio::test]
async fn zero_duration_and_past_until_complete_immediately() {
    let before = Utc::now();
    let zero = sleep(json!({"duration": "0s"}), None).await.expect("0s");
    assert!(slept_until(zero) >= before - TimeDelta::seconds(1));

    let past = sleep(json!({"until": "2020-01-01T00:00:00+02:00"}), None)
        .await
        .expect("past");
    assert_eq!(slept_until(past).to_rfc3339(), "2019-12-31T22:00:00+00:00");
}

#[tokio::test]
async fn exactly_one_of_duration_and_until_is_required() {
    for input in [
        json!({}),
        json!({"duration": "1m", "until": "2999-01-01T00:00:00Z"}),
        json!({"duration": "soon"}),
        json!({"until": "tomorrow"}),
        json!({"seconds": 5}),
    ] {
        let result = sleep(input.clone(), None).await;
        assert!(
            matches!(result, Err(ActionError::InvalidInput(_))),
            "{input}: {result:?}"
        );
    }
}
