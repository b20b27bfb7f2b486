//! The run/step state machine as a pure function: given the statuses of a run's steps and what
//! just happened to one step, decide every status change and what to enqueue. No I/O; the step
//! handler persists the returned [`Transition`] in one transaction.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use stepwise_workflows::{OnError, Step, Workflow};

use crate::status::{RunStatus, StepStatus};

/// What happened to the step that was executing.
#[derive(Debug, Clone, PartialEq)]
pub enum StepEvent {
    Succeeded,
    /// Its `if:` evaluated false.
    ConditionFalse,
    Failed {
        retryable: bool,
        retry_after: Option<Duration>,
    },
    /// The action asked to be invoked again after this delay (a durable timer).
    Suspended {
        after: Duration,
    },
}

/// The finished step's next state.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum StepOutcome {
    Succeeded,
    Skipped,
    Failed,
    /// Retry after the delay (backoff with jitter, or the provider's Retry-After if longer).
    RetryAfter(Duration),
    /// Park the step; invoke its action again after the delay.
    WakeAfter(Duration),
    /// The run ended while the step ran and the step did not succeed: it is cancelled and
    /// nothing follows from it.
    Discarded,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Transition {
    pub outcome: Option<StepOutcome>,
    /// Steps to hand to the queue now.
    pub enqueue: Vec<String>,
    /// Steps that will never run because a dependency was skipped.
    pub skip: Vec<String>,
    /// Steps that will never run because the run ended.
    pub cancel: Vec<String>,
    /// Set when the run reaches a terminal status.
    pub run: Option<RunStatus>,
}

/// Steps ready at the start of a run: those without dependencies.
pub fn initial(workflow: &Workflow) -> Vec<String> {
    workflow
        .steps
        .iter()
        .filter(|step| step.needs.is_empty())
        .map(|step| step.id.clone())
        .collect()
}

/// The pending steps that can start now: a new run's root steps, or the steps a retried run
/// goes on from (for a run that waited `queued` for a concurrency slot).
pub fn startable(workflow: &Workflow, statuses: &BTreeMap<String, StepStatus>) -> Vec<String> {
    let mut after = statuses.clone();
    let mut transition = Transition::default();
    propagate(workflow, &mut after, &mut transition);
    transition.enqueue
}

/// Applies `event` of `step_id` (currently running, attempt number `attempt`) to a run whose
/// steps have `statuses`. `jitter` is a uniform sample in `[0, 1)` for retry backoff.
pub fn on_step_event(
    workflow: &Workflow,
    run_status: RunStatus,
    statuses: &BTreeMap<String, StepStatus>,
    step_id: &str,
    attempt: u32,
    event: &StepEvent,
    jitter: f64,
) -> Transition {
    if run_status.is_terminal() {
        let outcome = match event {
            StepEvent::Succeeded => StepOutcome::Succeeded,
            StepEvent::ConditionFalse => StepOutcome::Skipped,
            // The run was cancelled or timed out under the step: its failure is a consequence.
            StepEvent::Failed { .. } | StepEvent::Suspended { .. } => StepOutcome::Discarded,
        };
        return Transition {
            outcome: Some(outcome),
            ..Transition::default()
        };
    }
    let Some(step) = workflow.step(step_id) else {
        return Transition::default();
    };
    let mut statuses = statuses.clone();
    let (outcome, new_status) = match event {
        StepEvent::Succeeded => (StepOutcome::Succeeded, StepStatus::Succeeded),
        StepEvent::ConditionFalse => (StepOutcome::Skipped, StepStatus::Skipped),
        StepEvent::Suspended { after } => {
            return Transition {
                outcome: Some(StepOutcome::WakeAfter(*after)),
                ..Transition::default()
            };
        }
        StepEvent::Failed {
            retryable,
            retry_after,
        } => {
            if *retryable && attempt < step.retry.max_attempts {
                let backoff = step.retry.delay_before(attempt + 1, jitter);
                let delay = retry_after.map_or(backoff, |after| after.max(backoff));
                return Transition {
                    outcome: Some(StepOutcome::RetryAfter(delay)),
                    ..Transition::default()
                };
            }
            (StepOutcome::Failed, StepStatus::Failed)
        }
    };
    statuses.insert(step.id.clone(), new_status);
    let mut transition = Transition {
        outcome: Some(outcome),
        ..Transition::default()
    };
    if fails_the_run(workflow, &step.id, new_status) {
        // Fail fast: nothing that waits for success will run. Steps whose `if` checks status
        // (`always()`, `failure()`) and the `on_failure` steps still get their turn.
        for other in &workflow.steps {
            let waiting = matches!(
                statuses.get(&other.id),
                Some(StepStatus::Pending | StepStatus::Queued | StepStatus::Waiting)
            );
            if waiting && !other.checks_status() {
                statuses.insert(other.id.clone(), StepStatus::Cancelled);
                transition.cancel.push(other.id.clone());
            }
        }
    }
    propagate(workflow, &mut statuses, &mut transition);
    let failed = is_failing(workflow, &statuses);
    let left = |wanted: fn(&StepStatus) -> bool| statuses.values().any(wanted);
    if failed
        && !left(|status| {
            matches!(
                status,
                StepStatus::Pending | StepStatus::Queued | StepStatus::Waiting
            )
        })
    {
        // A step still running when the run fails is discarded when it reports back.
        transition.run = Some(RunStatus::Failed);
    } else if !left(|status| !status.is_terminal()) {
        transition.run = Some(RunStatus::Succeeded);
    }
    transition
}

/// Whether `status` of step `step_id` makes the run fail: a failure of a main step without
/// `on_error: continue`.
fn fails_the_run(workflow: &Workflow, step_id: &str, status: StepStatus) -> bool {
    status == StepStatus::Failed
        && workflow
            .steps
            .iter()
            .any(|step| step.id == step_id && step.on_error == OnError::Fail)
}

/// Whether the run has failed (it may still be running its `on_failure` steps or steps whose
/// `if` checks status).
pub fn is_failing(workflow: &Workflow, statuses: &BTreeMap<String, StepStatus>) -> bool {
    workflow.steps.iter().any(|step| {
        statuses.get(&step.id) == Some(&StepStatus::Failed) && step.on_error == OnError::Fail
    })
}

/// The next state of one `for_each` item after `event` (its attempt number `attempt`). Items
/// retry one by one under their step's retry policy; the step's `if` was evaluated once, for
/// the whole step, so an item never reports `ConditionFalse`.
pub fn on_item_event(
    step: &Step,
    run_status: RunStatus,
    attempt: u32,
    event: &StepEvent,
    jitter: f64,
) -> StepOutcome {
    match event {
        StepEvent::Succeeded => StepOutcome::Succeeded,
        StepEvent::ConditionFalse => StepOutcome::Skipped,
        _ if run_status.is_terminal() => StepOutcome::Discarded,
        StepEvent::Suspended { after } => StepOutcome::WakeAfter(*after),
        StepEvent::Failed {
            retryable,
            retry_after,
        } => {
            if *retryable && attempt < step.retry.max_attempts {
                let backoff = step.retry.delay_before(attempt + 1, jitter);
                StepOutcome::RetryAfter(retry_after.map_or(backoff, |after| after.max(backoff)))
            } else {
                StepOutcome::Failed
            }
        }
    }
}

/// What a `for_each` step does next, given the statuses of its items in index order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FanOut {
    /// Pending items to queue now (within `max_parallel`).
    pub queue: Vec<usize>,
    /// Pending items that will not run because an item failed the step.
    pub cancel: Vec<usize>,
    /// Set once no item is left to run: `Err(index)` of the first failed item when that fails
    /// the step, `Ok` otherwise.
    pub finished: Option<Result<(), usize>>,
}

/// Decides the next items of a `for_each` step. A failed item fails the step unless the
/// step has `on_error: continue`; then no further item starts, and the step ends once the
/// items already running have reported.
pub fn fan_out(step: &Step, items: &[StepStatus]) -> FanOut {
    let first_failed = items
        .iter()
        .position(|status| *status == StepStatus::Failed)
        .filter(|_| step.on_error == OnError::Fail);
    let active = items
        .iter()
        .filter(|status| {
            matches!(
                status,
                StepStatus::Queued | StepStatus::Running | StepStatus::Waiting
            )
        })
        .count();
    let pending = items
        .iter()
        .enumerate()
        .filter(|(_, status)| **status == StepStatus::Pending)
        .map(|(index, _)| index);
    let mut fan_out = FanOut::default();
    if first_failed.is_some() {
        fan_out.cancel = pending.collect();
    } else {
        let room = step
            .max_parallel
            .map_or(usize::MAX, |limit| limit as usize)
            .saturating_sub(active);
        let pending: Vec<usize> = pending.collect();
        let left = pending.len();
        fan_out.queue = pending.into_iter().take(room).collect();
        if left > fan_out.queue.len() {
            return fan_out;
        }
    }
    if active == 0 && fan_out.queue.is_empty() {
        fan_out.finished = Some(first_failed.map_or(Ok(()), Err));
    }
    fan_out
}

/// A finished step's result as its dependents see it (`needs.<id>.result`): a failure with
/// `on_error: continue` counts as success.
pub fn conclusion(workflow: &Workflow, step_id: &str, status: StepStatus) -> StepStatus {
    let continues = workflow
        .step(step_id)
        .is_some_and(|step| step.on_error == OnError::Continue);
    if status == StepStatus::Failed && continues {
        StepStatus::Succeeded
    } else {
        status
    }
}

/// What retrying a finished run changes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RetryPlan {
    /// Steps that run again: every step that did not succeed or get skipped, every step
    /// depending on one of those, and steps the run has no status for (new in the version
    /// the retry uses). Everything else keeps its output.
    pub reset: Vec<String>,
    /// Reset steps that can start at once.
    pub enqueue: Vec<String>,
    /// Reset steps that will not run because a kept dependency was skipped.
    pub skip: Vec<String>,
}

/// Plans the retry of a finished run from its failed steps.
pub fn retry(workflow: &Workflow, statuses: &BTreeMap<String, StepStatus>) -> RetryPlan {
    // The `on_failure` steps always get another chance: the retried run may fail again.
    let mut reset: BTreeSet<&str> = workflow
        .steps
        .iter()
        .filter(|step| {
            !matches!(
                statuses.get(&step.id),
                Some(StepStatus::Succeeded | StepStatus::Skipped)
            )
        })
        .chain(&workflow.on_failure)
        .map(|step| step.id.as_str())
        .collect();
    // `needs` may point down the file, so repeat until no dependent is added.
    loop {
        let dependents: Vec<&str> = workflow
            .steps
            .iter()
            .filter(|step| !reset.contains(step.id.as_str()))
            .filter(|step| step.needs.iter().any(|need| reset.contains(need.as_str())))
            .map(|step| step.id.as_str())
            .collect();
        if dependents.is_empty() {
            break;
        }
        reset.extend(dependents);
    }
    let mut after: BTreeMap<String, StepStatus> = workflow
        .all_steps()
        .map(|step| {
            let status = if reset.contains(step.id.as_str()) {
                StepStatus::Pending
            } else {
                statuses[&step.id]
            };
            (step.id.clone(), status)
        })
        .collect();
    let mut transition = Transition::default();
    propagate(workflow, &mut after, &mut transition);
    RetryPlan {
        reset: workflow
            .all_steps()
            .filter(|step| reset.contains(step.id.as_str()))
            .map(|step| step.id.clone())
            .collect(),
        enqueue: transition.enqueue,
        skip: transition.skip,
    }
}

/// Decides pending steps whose dependencies have all finished, repeating until nothing
/// changes so decisions cascade:
/// - a step whose `if` checks status is queued (its condition decides);
/// - otherwise, once the run is failing it is cancelled; when every dependency concluded with
///   success it is queued; else (a dependency was skipped or cancelled) it is skipped.
///
/// Once every main step has finished, the `on_failure` steps are queued in their own order if
/// the run failed, and skipped if it did not.
fn propagate(
    workflow: &Workflow,
    statuses: &mut BTreeMap<String, StepStatus>,
    transition: &mut Transition,
) {
    loop {
        let failing = is_failing(workflow, statuses);
        let main_finished = workflow
            .steps
            .iter()
            .all(|step| statuses.get(&step.id).is_some_and(|s| s.is_terminal()));
        let mut decisions = Vec::new();
        for step in workflow.all_steps() {
            if statuses.get(&step.id) != Some(&StepStatus::Pending) {
                continue;
            }
            let is_on_failure = workflow.on_failure.iter().any(|s| s.id == step.id);
            if is_on_failure && !main_finished {
                continue;
            }
            let needs: Vec<StepStatus> = step
                .needs
                .iter()
                .map(|need| statuses.get(need).copied().unwrap_or(StepStatus::Pending))
                .collect();
            if !needs.iter().all(|status| status.is_terminal()) {
                continue;
            }
            let all_succeeded =
                step.needs.iter().zip(&needs).all(|(need, status)| {
                    conclusion(workflow, need, *status) == StepStatus::Succeeded
                });
            let decision = if is_on_failure {
                if failing {
                    StepStatus::Queued
                } else {
                    StepStatus::Skipped
                }
            } else if step.checks_status() {
                StepStatus::Queued
            } else if failing {
                StepStatus::Cancelled
            } else if all_succeeded {
                StepStatus::Queued
            } else {
                StepStatus::Skipped
            };
            decisions.push((step.id.clone(), decision));
        }
        if decisions.is_empty() {
            break;
        }
        for (id, decision) in decisions {
            statuses.insert(id.clone(), decision);
            match decision {
                StepStatus::Queued => transition.enqueue.push(id),
                StepStatus::Skipped => transition.skip.push(id),
                _ => transition.cancel.push(id),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_workflows::RetryPolicy;

    fn step(id: &str, needs: &[&str]) -> Step {
        Step {
            id: id.into(),
            uses: "core.log".into(),
            with: Default::default(),
            needs: needs.iter().map(|need| need.to_string()).collect(),
            for_each: None,
            max_parallel: None,
            condition: None,
            connection: None,
            retry: RetryPolicy::default(),
            http_retry: None,
            timeout: None,
            on_error: OnError::Fail,
        }
    }

    fn workflow(steps: Vec<Step>) -> Workflow {
        Workflow {
            name: "w".into(),
            description: None,
            on: Default::default(),
            inputs: None,
            concurrency: None,
            timeout: None,
            steps,
            on_failure: Vec::new(),
            outputs: Default::default(),
        }
    }

    fn statuses(pairs: &[(&str, StepStatus)]) -> BTreeMap<String, StepStatus> {
        pairs.iter().map(|(id, s)| (id.to_string(), *s)).collect()
    }

    /// A diamond: a -> (b, c) -> d.
    fn diamond() -> Workflow {
        workflow(vec![
            step("a", &[]),
            step("b", &["a"]),
            step("c", &["a"]),
            step("d", &["b", "c"]),
        ])
    }

    use StepStatus::*;

    #[test]
    fn roots_start_first() {
        assert_eq!(initial(&diamond()), vec!["a"]);
    }

    #[test]
    fn success_fans_out_then_joins_once() {
        let w = diamond();
        let t = on_step_event(
            &w,
            RunStatus::Running,
            &statuses(&[
                ("a", Running),
                ("b", Pending),
                ("c", Pending),
                ("d", Pending),
            ]),
            "a",
            1,
            &StepEvent::Succeeded,
            0.5,
        );
        assert_eq!(t.enqueue, vec!["b", "c"]);
        assert_eq!(t.run, None);

        let first = on_step_event(
            &w,
            RunStatus::Running,
            &statuses(&[
                ("a", Succeeded),
                ("b", Running),
                ("c", Running),
                ("d", Pending),
            ]),
            "b",
            1,
            &StepEvent::Succeeded,
            0.5,
        );
        assert!(first.enqueue.is_empty(), "d waits for c");

        let second = on_step_event(
            &w,
            RunStatus::Running,
            &statuses(&[
                ("a", Succeeded),
                ("b", Succeeded),
                ("c", Running),
                ("d", Pending),
            ]),
            "c",
            1,
            &StepEvent::Succeeded,
            0.5,
        );
        assert_eq!(second.enqueue, vec!["d"]);
    }

    #[test]
    fn last_step_finishes_the_run() {
        let w = diamond();
        let t = on_step_event(
            &w,
            RunStatus::Running,
            &statuses(&[
                ("a", Succeeded),
                ("b", Succeeded),
                ("c", Succeeded),
                ("d", Running),
            ]),
            "d",
            1,
            &StepEvent::Succeeded,
            0.5,
        );
        assert_eq!(t.run, Some(RunStatus::Succeeded));
        assert_eq!(t.outcome, Some(StepOutcome::Succeeded));
    }

    #[test]
    fn skip_cascades_to_dependents() {
        let w = diamond();
        let t = on_step_event(
            &w,
            RunStatus::Running,
            &statuses(&[
                ("a", Succeeded),
                ("b", Running),
                ("c", Succeeded),
                ("d", Pending),
            ]),
            "b",
            1,
            &StepEvent::ConditionFalse,
            0.5,
        );
        assert_eq!(t.outcome, Some(StepOutcome::Skipped));
        assert_eq!(t.skip, vec!["d"]);
        assert_eq!(t.run, Some(RunStatus::Succeeded));
    }

    #[test]
    fn retryable_failure_retries_until_attempts_run_out() {
        let w = diamond();
        let running = statuses(&[
            ("a", Running),
            ("b", Pending),
            ("c", Pending),
            ("d", Pending),
        ]);
        let failure = StepEvent::Failed {
            retryable: true,
            retry_after: None,
        };
        let t = on_step_event(&w, RunStatus::Running, &running, "a", 1, &failure, 0.5);
        assert_eq!(
            t.outcome,
            Some(StepOutcome::RetryAfter(Duration::from_millis(500)))
        );
        let t = on_step_event(&w, RunStatus::Running, &running, "a", 3, &failure, 0.5);
        assert_eq!(t.outcome, Some(StepOutcome::Failed));
        assert_eq!(t.run, Some(RunStatus::Failed));
        assert_eq!(t.cancel, vec!["b", "c", "d"]);
    }

    #[test]
    fn retry_after_longer_than_backoff_wins() {
        let w = diamond();
        let running = statuses(&[
            ("a", Running),
            ("b", Pending),
            ("c", Pending),
            ("d", Pending),
        ]);
        let failure = StepEvent::Failed {
            retryable: true,
            retry_after: Some(Duration::from_secs(30)),
        };
        let t = on_step_event(&w, RunStatus::Running, &running, "a", 1, &failure, 0.5);
        assert_eq!(
            t.outcome,
            Some(StepOutcome::RetryAfter(Duration::from_secs(30)))
        );
    }

    #[test]
    fn permanent_failure_is_not_retried() {
        let w = diamond();
        let running = statuses(&[
            ("a", Running),
            ("b", Pending),
            ("c", Pending),
            ("d", Pending),
        ]);
        let failure = StepEvent::Failed {
            retryable: false,
            retry_after: None,
        };
        let t = on_step_event(&w, RunStatus::Running, &running, "a", 1, &failure, 0.5);
        assert_eq!(t.outcome, Some(StepOutcome::Failed));
        assert_eq!(t.run, Some(RunStatus::Failed));
    }

    #[test]
    fn continue_on_error_lets_dependents_run() {
        let mut w = diamond();
        w.steps[1].on_error = OnError::Continue;
        let t = on_step_event(
            &w,
            RunStatus::Running,
            &statuses(&[
                ("a", Succeeded),
                ("b", Running),
                ("c", Succeeded),
                ("d", Pending),
            ]),
            "b",
            1,
            &StepEvent::Failed {
                retryable: false,
                retry_after: None,
            },
            0.5,
        );
        assert_eq!(t.outcome, Some(StepOutcome::Failed));
        assert_eq!(t.enqueue, vec!["d"]);
        assert_eq!(t.run, None);
    }

    #[test]
    fn suspension_parks_the_step() {
        let w = diamond();
        let t = on_step_event(
            &w,
            RunStatus::Running,
            &statuses(&[
                ("a", Running),
                ("b", Pending),
                ("c", Pending),
                ("d", Pending),
            ]),
            "a",
            1,
            &StepEvent::Suspended {
                after: Duration::from_secs(600),
            },
            0.5,
        );
        assert_eq!(
            t.outcome,
            Some(StepOutcome::WakeAfter(Duration::from_secs(600)))
        );
        assert!(t.enqueue.is_empty());
    }

    #[test]
    fn results_after_the_run_ended_change_nothing_else() {
        let w = diamond();
        let t = on_step_event(
            &w,
            RunStatus::Cancelled,
            &statuses(&[
                ("a", Running),
                ("b", Cancelled),
                ("c", Cancelled),
                ("d", Cancelled),
            ]),
            "a",
            1,
            &StepEvent::Succeeded,
            0.5,
        );
        assert_eq!(t.outcome, Some(StepOutcome::Succeeded));
        assert!(t.enqueue.is_empty() && t.run.is_none());

        let failed = on_step_event(
            &w,
            RunStatus::Cancelled,
            &statuses(&[
                ("a", Running),
                ("b", Cancelled),
                ("c", Cancelled),
                ("d", Cancelled),
            ]),
            "a",
            1,
            &StepEvent::Failed {
                retryable: true,
                retry_after: None,
            },
            0.5,
        );
        assert_eq!(failed.outcome, Some(StepOutcome::Discarded));
    }

    #[test]
    fn startable_steps_are_the_roots_of_a_new_run_and_the_next_of_a_retried_one() {
        // a -> b -> d, a -> c -> d.
        let workflow = diamond();
        let fresh = statuses(&[
            ("a", StepStatus::Pending),
            ("b", StepStatus::Pending),
            ("c", StepStatus::Pending),
            ("d", StepStatus::Pending),
        ]);
        assert_eq!(startable(&workflow, &fresh), vec!["a".to_owned()]);
        let retried = statuses(&[
            ("a", StepStatus::Succeeded),
            ("b", StepStatus::Pending),
            ("c", StepStatus::Succeeded),
            ("d", StepStatus::Pending),
        ]);
        assert_eq!(startable(&workflow, &retried), vec!["b".to_owned()]);
    }

    #[test]
    fn retry_resets_failed_steps_and_their_dependents_only() {
        // a -> b -> d, a -> c -> d; b failed (on_error: continue would not matter here).
        let workflow = diamond();
        let plan = retry(
            &workflow,
            &statuses(&[
                ("a", StepStatus::Succeeded),
                ("b", StepStatus::Failed),
                ("c", StepStatus::Succeeded),
                ("d", StepStatus::Cancelled),
            ]),
        );
        assert_eq!(plan.reset, vec!["b", "d"]);
        assert_eq!(plan.enqueue, vec!["b"]);
        assert!(plan.skip.is_empty());
    }

    #[test]
    fn retry_reruns_succeeded_dependents_of_a_failed_step() {
        let workflow = diamond();
        let plan = retry(
            &workflow,
            &statuses(&[
                ("a", StepStatus::Failed),
                ("b", StepStatus::Succeeded),
                ("c", StepStatus::Succeeded),
                ("d", StepStatus::Succeeded),
            ]),
        );
        assert_eq!(plan.reset, vec!["a", "b", "c", "d"]);
        assert_eq!(plan.enqueue, vec!["a"]);
    }

    #[test]
    fn retry_runs_steps_new_in_the_version() {
        let workflow = diamond();
        let plan = retry(
            &workflow,
            &statuses(&[
                ("a", StepStatus::Succeeded),
                ("b", StepStatus::Succeeded),
                ("c", StepStatus::Failed),
            ]),
        );
        assert_eq!(plan.reset, vec!["c", "d"]);
        assert_eq!(plan.enqueue, vec!["c"]);
    }

    fn items(step: &Step, statuses: &[StepStatus]) -> FanOut {
        fan_out(step, statuses)
    }

    #[test]
    fn fan_out_keeps_at_most_max_parallel_items_active() {
        use StepStatus::*;
        let mut each = step("each", &[]);
        each.max_parallel = Some(2);
        let start = items(&each, &[Pending, Pending, Pending, Pending]);
        assert_eq!(start.queue, vec![0, 1]);
        assert_eq!(start.finished, None);
        let one_done = items(&each, &[Succeeded, Running, Pending, Pending]);
        assert_eq!(one_done.queue, vec![2]);
        let all_busy = items(&each, &[Succeeded, Running, Queued, Pending]);
        assert!(all_busy.queue.is_empty());
        assert_eq!(all_busy.finished, None);
        let done = items(&each, &[Succeeded, Succeeded, Succeeded, Succeeded]);
        assert_eq!(done.finished, Some(Ok(())));
    }

    #[test]
    fn fan_out_without_limit_queues_every_item_and_an_empty_list_finishes_at_once() {
        use StepStatus::*;
        let each = step("each", &[]);
        assert_eq!(
            items(&each, &[Pending, Pending, Pending]).queue,
            vec![0, 1, 2]
        );
        assert_eq!(items(&each, &[]).finished, Some(Ok(())));
    }

    #[test]
    fn a_failed_item_stops_new_items_and_fails_the_step_once_the_running_ones_report() {
        use StepStatus::*;
        let mut each = step("each", &[]);
        each.max_parallel = Some(2);
        let failed = items(&each, &[Failed, Running, Pending, Pending]);
        assert!(failed.queue.is_empty());
        assert_eq!(failed.cancel, vec![2, 3]);
        assert_eq!(failed.finished, None);
        let settled = items(&each, &[Failed, Succeeded, Cancelled, Cancelled]);
        assert_eq!(settled.finished, Some(Err(0)));
    }

    #[test]
    fn with_continue_a_failed_item_does_not_stop_the_others() {
        use StepStatus::*;
        let mut each = step("each", &[]);
        each.on_error = OnError::Continue;
        each.max_parallel = Some(1);
        assert_eq!(items(&each, &[Failed, Pending]).queue, vec![1]);
        assert_eq!(items(&each, &[Failed, Succeeded]).finished, Some(Ok(())));
    }

    #[test]
    fn items_retry_under_the_step_policy_and_are_discarded_when_the_run_ended() {
        let mut each = step("each", &[]);
        each.retry.max_attempts = 2;
        let failed = StepEvent::Failed {
            retryable: true,
            retry_after: None,
        };
        let running = RunStatus::Running;
        assert!(matches!(
            on_item_event(&each, running, 1, &failed, 0.5),
            StepOutcome::RetryAfter(_)
        ));
        assert_eq!(
            on_item_event(&each, running, 2, &failed, 0.5),
            StepOutcome::Failed
        );
        assert_eq!(
            on_item_event(&each, RunStatus::Cancelled, 1, &failed, 0.5),
            StepOutcome::Discarded
        );
    }
}
