//! Engine scenarios: a throughput test (many short runs submitted concurrently) and a latency
//! test (long sequential chains, one run at a time).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde_json::{Value, json};
use stepwise_engine::{Engine, RunDetail, RunFilter, RunStatus};

use crate::stats::{Summary, summarize};

/// A workflow of `steps` sequential `uses` steps, each reading its predecessor's output. With
/// `url`, the steps are `http.request` GETs of it, each sending its predecessor's status.
pub fn chain_yaml(name: &str, steps: usize, uses: &str, url: Option<&str>) -> String {
    let mut yaml = format!("name: {name}\nsteps:\n");
    for i in 1..=steps {
        yaml.push_str(&format!("  - id: s{i}\n    uses: {uses}\n"));
        let prev = i - 1;
        match (i, url) {
            (1, None) => yaml.push_str("    with: { n: 1 }\n"),
            (1, Some(url)) => yaml.push_str(&format!("    with: {{ url: \"{url}?n=1\" }}\n")),
            (_, None) => yaml.push_str(&format!(
                "    needs: [s{prev}]\n    with:\n      n: ${{{{ steps.s{prev}.output.n + 1 }}}}\n"
            )),
            (_, Some(url)) => yaml.push_str(&format!(
                "    needs: [s{prev}]\n    with:\n      url: \"{url}?n=${{{{ steps.s{prev}.output.status }}}}\"\n"
            )),
        }
    }
    let output = if url.is_some() { "status" } else { "n" };
    yaml.push_str(&format!(
        "outputs:\n  n: ${{{{ steps.s{steps}.output.{output} }}}}\n"
    ));
    yaml
}

/// One `for_each` step over `items` items, at most `max_parallel` at once; with `url`, each
/// item is an `http.request` GET of it.
pub fn fan_out_yaml(
    name: &str,
    items: usize,
    max_parallel: usize,
    uses: &str,
    url: Option<&str>,
) -> String {
    let with = match url {
        None => "{ n: \"${{ item }}\" }".to_owned(),
        Some(url) => format!("{{ url: \"{url}?n=${{{{ item }}}}\" }}"),
    };
    format!(
        "name: {name}\nsteps:\n  - id: each\n    uses: {uses}\n    for_each: ${{{{ range({items}) | list }}}}\n    max_parallel: {max_parallel}\n    with: {with}\noutputs:\n  count: ${{{{ steps.each.output | length }}}}\n"
    )
}

pub fn epoch_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// What the runs of one scenario looked like, from their stored timestamps.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    pub submitted: usize,
    pub succeeded: usize,
    /// Runs that ended in another status or did not end in time, with a reason.
    pub problems: Vec<String>,
    /// Remarks that do not make the benchmark fail (e.g. fewer runs than asked, time limit).
    pub notes: Vec<String>,
    /// First submit to last run finish, seconds.
    pub wall_s: f64,
    pub runs_per_s: f64,
    pub steps_per_s: f64,
    /// Per step: queued_at → started_at (enqueue to claim), ms.
    pub overhead: Summary,
    /// Per step: started_at → finished_at (claim, action, completion commit), ms.
    pub execution: Summary,
    /// Per run: created_at → finished_at, ms.
    pub end_to_end: Summary,
    /// Per run: created_at → first step started, ms.
    pub first_start: Summary,
}

impl Outcome {
    pub fn ok(&self) -> bool {
        self.problems.is_empty() && self.succeeded == self.submitted
    }
}

fn analyse(details: &[RunDetail], start_ms: i64) -> Outcome {
    let mut outcome = Outcome {
        submitted: details.len(),
        ..Outcome::default()
    };
    let mut overhead = Vec::new();
    let mut execution = Vec::new();
    let mut end_to_end = Vec::new();
    let mut first_start = Vec::new();
    let mut last_finish = start_ms;
    for run in details {
        if run.summary.status == RunStatus::Succeeded {
            outcome.succeeded += 1;
        } else if outcome.problems.len() < 5 {
            outcome.problems.push(format!(
                "run {} ended {:?}: {}",
                run.summary.id,
                run.summary.status,
                run.summary.error.as_deref().unwrap_or("no error recorded")
            ));
        }
        if let Some(finished) = run.summary.finished_at {
            last_finish = last_finish.max(finished);
            end_to_end.push((finished - run.summary.created_at) as f64);
        }
        let mut first: Option<i64> = None;
        for step in &run.steps {
            if let (Some(queued), Some(started)) = (step.queued_at, step.started_at) {
                overhead.push((started - queued) as f64);
                first = Some(first.map_or(started, |f| f.min(started)));
            }
            if let (Some(started), Some(finished)) = (step.started_at, step.finished_at) {
                execution.push((finished - started) as f64);
            }
        }
        if let Some(first) = first {
            first_start.push((first - run.summary.created_at) as f64);
        }
    }
    outcome.wall_s = ((last_finish - start_ms).max(1)) as f64 / 1000.0;
    outcome.runs_per_s = outcome.succeeded as f64 / outcome.wall_s;
    outcome.steps_per_s = execution.len() as f64 / outcome.wall_s;
    outcome.overhead = summarize(&overhead);
    outcome.execution = summarize(&execution);
    outcome.end_to_end = summarize(&end_to_end);
    outcome.first_start = summarize(&first_start);
    outcome
}

async fn details(engine: &Engine, tenant: &str, ids: &[String]) -> Result<Vec<RunDetail>> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(
            engine
                .get_run(tenant, id)
                .await?
                .with_context(|| format!("run {id} vanished"))?,
        );
    }
    Ok(out)
}

/// Submits up to `runs` runs of `workflow` from `submitters` concurrent tasks and waits until
/// none is running; everything stops at `limit`.
pub async fn throughput(
    engine: &Engine,
    tenant: &str,
    workflow: &str,
    runs: usize,
    submitters: usize,
    limit: Duration,
) -> Result<Outcome> {
    let deadline = Instant::now() + limit;
    let next = Arc::new(AtomicUsize::new(0));
    let start_ms = epoch_ms();
    let mut tasks = Vec::new();
    for _ in 0..submitters.max(1) {
        let engine = engine.clone();
        let tenant = tenant.to_owned();
        let workflow = workflow.to_owned();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= runs || Instant::now() >= deadline {
                    break;
                }
                ids.push(
                    engine
                        .start_run(&tenant, &workflow, json!({}), "manual", Value::Null)
                        .await?,
                );
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::new();
    for task in tasks {
        ids.extend(task.await??);
    }
    // Every run is committed as `running` before start_run returns, so "none running" means
    // all of them ended. The poll only detects the end; timings come from the stored rows.
    let filter = RunFilter {
        workflow: Some(workflow.to_owned()),
        status: Some(RunStatus::Running),
        ..RunFilter::default()
    };
    let mut timed_out = false;
    loop {
        if engine
            .list_runs(tenant, &filter, None, 1)
            .await?
            .items
            .is_empty()
        {
            break;
        }
        if Instant::now() >= deadline {
            timed_out = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let details = details(engine, tenant, &ids).await?;
    let mut outcome = analyse(&details, start_ms);
    if timed_out {
        outcome.problems.insert(
            0,
            format!("time limit of {limit:?} reached before all runs ended"),
        );
    }
    if ids.len() < runs {
        outcome.notes.push(format!(
            "only {} of {runs} runs submitted within {limit:?}",
            ids.len()
        ));
    }
    Ok(outcome)
}

/// Runs up to `runs` runs of `workflow` one after the other (an unloaded engine: latency, not
/// throughput), stopping at `limit`.
pub async fn latency(
    engine: &Engine,
    tenant: &str,
    workflow: &str,
    runs: usize,
    limit: Duration,
) -> Result<Outcome> {
    let deadline = Instant::now() + limit;
    let start_ms = epoch_ms();
    let mut ids = Vec::new();
    let mut problems = Vec::new();
    for _ in 0..runs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        let id = engine
            .start_run(tenant, workflow, json!({}), "manual", Value::Null)
            .await?;
        let waited = tokio::time::timeout(left, engine.wait_for_run(tenant, &id)).await;
        ids.push(id);
        match waited {
            Ok(result) => {
                result?;
            }
            Err(_) => {
                problems.push(format!(
                    "time limit of {limit:?} reached while a run was running"
                ));
                break;
            }
        }
    }
    let details = details(engine, tenant, &ids).await?;
    let mut outcome = analyse(&details, start_ms);
    if ids.len() < runs && problems.is_empty() {
        outcome.notes.push(format!(
            "only {} of {runs} runs done within {limit:?}",
            ids.len()
        ));
    }
    problems.append(&mut outcome.problems);
    outcome.problems = problems;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stepwise_integrations::Registry;

    #[test]
    fn chain_yaml_parses_and_validates() {
        let mut registry = Registry::builtin();
        registry.register(crate::touch::Touch);
        let url = Some("http://127.0.0.1:9/ping");
        for (steps, uses, url) in [
            (3, "core.set", None),
            (40, "bench.touch", None),
            (3, "http.request", url),
        ] {
            let yaml = chain_yaml("bench-chain", steps, uses, url);
            let parsed = stepwise_workflows::parse_workflow("bench.yaml", &yaml, &registry);
            assert!(!parsed.has_errors(), "{yaml}\n{:?}", parsed.diagnostics);
            assert_eq!(parsed.workflow.expect("workflow").steps.len(), steps);
        }
        let yaml = fan_out_yaml("bench-each", 10, 2, "http.request", url);
        let parsed = stepwise_workflows::parse_workflow("bench.yaml", &yaml, &registry);
        assert!(!parsed.has_errors(), "{yaml}\n{:?}", parsed.diagnostics);
    }
}
