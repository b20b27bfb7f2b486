//! `stepwise-bench`: engine throughput and per-step overhead on SQLite and Postgres, measured
//! against a baseline of bare durable commits on the same database in the same process run.
//!
//! Progress goes to stderr; the Markdown report (for BENCHMARKS.md) goes to stdout. Exits
//! non-zero if any run did not succeed.

mod baseline;
mod db;
mod integration;
mod listing;
mod parked;
mod ratelimit;
mod scenario;
mod stats;
mod touch;
mod webhooks;

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use stepwise_engine::{Engine, RuntimeOptions};
use stepwise_integrations::http::{HttpClient, HttpConfig};
use stepwise_integrations::runtime::MetricsRegistry;
use stepwise_integrations::{ActionServices, IntegrationRuntime, Registry};

use crate::baseline::Baseline;
use crate::db::{BenchDatabase, Kind, RawPool};
use crate::scenario::Outcome;
use crate::stats::ms;

const SHORT_STEPS: usize = 3;
const LONG_STEPS: usize = 40;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ScenarioArg {
    /// Engine throughput and per-step overhead (3-step, 40-step, for_each).
    Engine,
    /// Webhook acknowledgements over loopback HTTP, beside a bare actix handler.
    Webhooks,
    /// Both.
    All,
    /// Rate-limit scheduler efficiency (used/allowed) against a local fixed-window provider:
    /// one engine on each backend, three engines on Postgres. Runs alone.
    RateLimit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendArg {
    Sqlite,
    Postgres,
    Both,
}

/// Benchmarks the Stepwise engine: runs/s and per-step overhead (step enqueue to step start)
/// of a 3-step and a 40-step sequential workflow of pure (`core.set`) and of side-effecting
/// (`bench.touch`) steps, against bare durable commits.
#[derive(Debug, Parser)]
#[command(name = "stepwise-bench", version)]
struct Cli {
    /// Which database(s) to benchmark.
    #[arg(long, value_enum, default_value_t = BackendArg::Both)]
    backend: BackendArg,
    /// Which measurements to run.
    #[arg(long, value_enum, default_value_t = ScenarioArg::Engine)]
    scenario: ScenarioArg,
    /// Signed deliveries per (target, concurrency) cell of the webhook scenario.
    #[arg(long, default_value_t = 5000)]
    webhook_deliveries: usize,
    /// Client connections of the webhook scenario, one cell each.
    #[arg(long, value_delimiter = ',', default_value = "16,64")]
    webhook_concurrency: Vec<usize>,
    /// Runs of the 3-step workflow (throughput scenario).
    #[arg(long, default_value_t = 1000)]
    runs: usize,
    /// Runs of the 40-step workflow, executed one at a time (latency scenario).
    #[arg(long, default_value_t = 50)]
    long_runs: usize,
    /// Steps the engine executes at once (RuntimeOptions::concurrency); also the number of
    /// concurrent writers of the concurrent baseline.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Time limit of every loop, in seconds (each loop stops at its count or this, whichever
    /// comes first).
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Bare commits per baseline measurement.
    #[arg(long, default_value_t = 2000)]
    baseline_commits: usize,
    /// Concurrent tasks submitting runs in the throughput scenario.
    #[arg(long, default_value_t = 4)]
    submitters: usize,
    /// 3-step runs executed (and discarded) before measuring.
    #[arg(long, default_value_t = 50)]
    warmup_runs: usize,
    /// Items of the `for_each` scenario (one step over this many items).
    #[arg(long, default_value_t = 1000)]
    for_each_items: usize,
    /// `max_parallel` of the `for_each` scenario.
    #[arg(long, default_value_t = 10)]
    for_each_parallel: usize,
    /// Runs of the `for_each` workflow, executed one at a time.
    #[arg(long, default_value_t = 3)]
    for_each_runs: usize,
    /// Runs parked in a 1-hour `core.sleep`, and as many in `core.wait_for_webhook`, to
    /// measure what a waiting run costs (memory, database rows).
    #[arg(long, default_value_t = 1000)]
    parked_runs: usize,
    /// Runs written into the database before timing the runs list (keyset pagination, filters).
    #[arg(long, default_value_t = 100_000)]
    list_runs: usize,
    /// Times each list query is timed.
    #[arg(long, default_value_t = 200)]
    list_repeats: usize,
    /// Queue fallback poll interval (RuntimeOptions::poll_interval), in ms; `stepwise serve`
    /// uses 100.
    #[arg(long, default_value_t = 100)]
    poll_interval_ms: u64,
    /// Admin URL of the Postgres server; a fresh database is created next to it and dropped
    /// afterwards.
    #[arg(
        long,
        env = "STEPWISE_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test",
        hide_env_values = true,
        hide_default_value = true
    )]
    postgres_url: String,
    /// Requests per path of the integration-chain overhead measurement (bare client vs chain).
    #[arg(long, default_value_t = 5000)]
    integration_requests: usize,
    /// Only measure the integration chain's overhead (no database scenarios).
    #[arg(long)]
    integration_only: bool,
    /// Requests per window the rate-limit scenario's provider allows.
    #[arg(long, default_value_t = 60)]
    rate_limit: u64,
    /// Window length of the rate-limit scenario, in whole seconds.
    #[arg(long, default_value_t = 2)]
    rate_window_secs: u64,
    /// Requests the scenario's buckets keep back per window (the profile's `min_reserve`).
    #[arg(long, default_value_t = 2)]
    rate_reserve: u64,
    /// Windows' worth of steps the rate-limit scenario runs per cell.
    #[arg(long, default_value_t = 10)]
    rate_windows: u64,
    /// The bucket's grace after a stated reset in the rate-limit scenario, in ms.
    #[arg(long, default_value_t = 100)]
    rate_grace_ms: u64,
}

/// The two paths a step can take through the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StepKind {
    /// `core.set`: pure, executed inside the transaction that makes it ready.
    Pure,
    /// `bench.touch`: has side effects, so it goes through the queue.
    Queued,
    /// `http.request`: a GET of the bench's local keep-alive server, through the queue.
    Http,
}

impl StepKind {
    const ALL: [StepKind; 3] = [StepKind::Pure, StepKind::Queued, StepKind::Http];

    fn uses(self) -> &'static str {
        match self {
            StepKind::Pure => "core.set",
            StepKind::Queued => "bench.touch",
            StepKind::Http => "http.request",
        }
    }

    /// The URL the steps request, for the kind that does.
    fn url(self, server: &str) -> Option<String> {
        (self == StepKind::Http).then(|| format!("http://{server}/ping"))
    }

    fn workflow(self, steps: usize) -> String {
        format!("bench-{}-{steps}", self.uses().replace('.', "-"))
    }

    fn fan_out_workflow(self) -> String {
        format!("bench-{}-each", self.uses().replace('.', "-"))
    }

    fn describe(self) -> &'static str {
        match self {
            StepKind::Pure => "pure steps, executed inline",
            StepKind::Queued => "steps with side effects, through the queue",
            StepKind::Http => "GETs of a local keep-alive server, through the queue",
        }
    }
}

/// The throughput and latency scenarios of one step kind.
struct Scenarios {
    kind: StepKind,
    fan_out: Outcome,
    short: Outcome,
    long: Outcome,
}

struct BackendResult {
    kind: Kind,
    settings: String,
    sequential: Baseline,
    concurrent: Baseline,
    scenarios: Vec<Scenarios>,
    parked: Vec<parked::Parked>,
    listing: listing::Listing,
}

impl BackendResult {
    fn scenarios(&self, kind: StepKind) -> Option<&Scenarios> {
        self.scenarios.iter().find(|s| s.kind == kind)
    }
}

fn registry() -> Registry {
    let mut registry = Registry::builtin();
    registry.register(touch::Touch);
    registry
}

async fn bench_backend(cli: &Cli, database: &BenchDatabase) -> Result<BackendResult> {
    let limit = Duration::from_secs(cli.seconds);
    let label = database.kind.label();
    eprintln!("[{label}] database: {}", database.description);

    // The `http.request` steps call a server on loopback.
    let http = HttpClient::new(HttpConfig {
        allow_private_networks: true,
        ..HttpConfig::default()
    })
    .context("building the HTTP client")?;
    let server = integration::serve().await?.to_string();
    let runtime = IntegrationRuntime::new(http, &MetricsRegistry::new())
        .context("building the integration runtime")?;
    let engine = Engine::open(
        &database.url,
        Arc::new(registry()),
        Arc::new(ActionServices::new(runtime)),
    )
    .await
    .context("opening the engine")?;

    // Baseline first, on the same (migrated) database, before the engine's workers start.
    let pool = RawPool::connect(database).await?;
    baseline::prepare(&pool).await?;
    let settings = baseline::settings(&pool).await?;
    eprintln!("[{label}] {settings}");
    let sequential = baseline::run(&pool, cli.baseline_commits, 1, limit).await?;
    eprintln!(
        "[{label}] baseline, 1 writer: {} commits, {:.0}/s, p50 {} ms",
        sequential.commits,
        sequential.per_second,
        ms(sequential.latency.p50)
    );
    let concurrent = baseline::run(&pool, cli.baseline_commits, cli.concurrency, limit).await?;
    eprintln!(
        "[{label}] baseline, {} writers: {} commits, {:.0}/s",
        concurrent.workers, concurrent.commits, concurrent.per_second
    );
    pool.close().await;

    let (tenant, _key) = engine.create_tenant("bench").await?;
    for kind in StepKind::ALL {
        for steps in [SHORT_STEPS, LONG_STEPS] {
            let name = kind.workflow(steps);
            engine
                .deploy(
                    &tenant.id,
                    &format!("{name}.yaml"),
                    &scenario::chain_yaml(&name, steps, kind.uses(), kind.url(&server).as_deref()),
                )
                .await
                .map_err(|error| anyhow::anyhow!("deploying {name}: {error:?}"))?;
        }
        let name = kind.fan_out_workflow();
        let yaml = scenario::fan_out_yaml(
            &name,
            cli.for_each_items,
            cli.for_each_parallel,
            kind.uses(),
            kind.url(&server).as_deref(),
        );
        engine
            .deploy(&tenant.id, &format!("{name}.yaml"), &yaml)
            .await
            .map_err(|error| anyhow::anyhow!("deploying {name}: {error:?}"))?;
    }
    for (name, yaml) in [
        (parked::SLEEP_WORKFLOW, parked::sleep_yaml()),
        (parked::WEBHOOK_WORKFLOW, parked::webhook_yaml()),
    ] {
        engine
            .deploy(&tenant.id, &format!("{name}.yaml"), &yaml)
            .await
            .map_err(|error| anyhow::anyhow!("deploying {name}: {error:?}"))?;
    }
    let runtime = engine.start(RuntimeOptions {
        concurrency: cli.concurrency,
        poll_interval: Duration::from_millis(cli.poll_interval_ms),
        ..RuntimeOptions::default()
    });

    let result = async {
        let mut scenarios = Vec::new();
        for kind in StepKind::ALL {
            let short_name = kind.workflow(SHORT_STEPS);
            let long_name = kind.workflow(LONG_STEPS);
            let uses = kind.uses();
            if cli.warmup_runs > 0 {
                let warmup = scenario::throughput(
                    &engine,
                    &tenant.id,
                    &short_name,
                    cli.warmup_runs,
                    cli.submitters,
                    limit,
                )
                .await?;
                eprintln!(
                    "[{label}] {uses} warm-up: {}/{} runs succeeded",
                    warmup.succeeded, warmup.submitted
                );
                anyhow::ensure!(warmup.ok(), "warm-up failed: {:?}", warmup.problems);
            }
            let short = scenario::throughput(
                &engine,
                &tenant.id,
                &short_name,
                cli.runs,
                cli.submitters,
                limit,
            )
            .await?;
            eprintln!(
                "[{label}] {uses} 3-step: {}/{} runs in {:.2} s, {:.0} runs/s, overhead p50 {} ms",
                short.succeeded,
                short.submitted,
                short.wall_s,
                short.runs_per_s,
                ms(short.overhead.p50)
            );
            let long =
                scenario::latency(&engine, &tenant.id, &long_name, cli.long_runs, limit).await?;
            eprintln!(
                "[{label}] {uses} 40-step: {}/{} runs, e2e p50 {} ms, overhead p50 {} ms",
                long.succeeded,
                long.submitted,
                ms(long.end_to_end.p50),
                ms(long.overhead.p50)
            );
            let fan_out = scenario::latency(
                &engine,
                &tenant.id,
                &kind.fan_out_workflow(),
                cli.for_each_runs,
                limit,
            )
            .await?;
            eprintln!(
                "[{label}] {uses} for_each over {} items: {}/{} runs, e2e p50 {} ms",
                cli.for_each_items,
                fan_out.succeeded,
                fan_out.submitted,
                ms(fan_out.end_to_end.p50)
            );
            scenarios.push(Scenarios {
                kind,
                fan_out,
                short,
                long,
            });
        }
        let pool = RawPool::connect(database).await?;
        let mut parked = Vec::new();
        for (workflow, input) in [
            (
                parked::SLEEP_WORKFLOW,
                (|_| serde_json::json!({})) as fn(usize) -> serde_json::Value,
            ),
            (parked::WEBHOOK_WORKFLOW, parked::webhook_input),
        ] {
            let outcome = parked::park(
                &engine,
                &pool,
                &tenant.id,
                workflow,
                cli.parked_runs,
                input,
                limit,
            )
            .await?;
            eprintln!(
                "[{label}] {workflow}: {}/{} runs parked in {:.2} s, {:.0} bytes RSS per run",
                outcome.parked, outcome.runs, outcome.park_seconds, outcome.rss_per_run
            );
            parked.push(outcome);
        }
        let mut seed_workflows = Vec::new();
        for workflow in engine.list_workflows(&tenant.id).await?.into_iter().take(3) {
            let (_, versions) = engine
                .get_workflow(&tenant.id, &workflow.name)
                .await?
                .context("a listed workflow is missing")?;
            let version = versions.first().context("a workflow without versions")?;
            seed_workflows.push((workflow.name, workflow.id, version.id.clone()));
        }
        let seed_seconds = listing::seed(&pool, &tenant.id, &seed_workflows, cli.list_runs).await?;
        eprintln!(
            "[{label}] wrote {} runs for the list benchmark in {seed_seconds:.1} s",
            cli.list_runs
        );
        let timings = listing::time_queries(
            &engine,
            &tenant.id,
            &seed_workflows[0].0,
            cli.list_repeats,
            limit,
        )
        .await?;
        pool.close().await;
        let listing = listing::Listing {
            runs: cli.list_runs,
            seed_seconds,
            timings,
        };
        anyhow::Ok((scenarios, parked, listing))
    }
    .await;
    runtime.shutdown().await;
    engine.database().close().await;
    let (scenarios, parked, listing) = result?;
    Ok(BackendResult {
        kind: database.kind,
        settings,
        sequential,
        concurrent,
        scenarios,
        parked,
        listing,
    })
}

fn report(cli: &Cli, results: &[BackendResult]) -> String {
    let mut out = String::new();
    let concurrency = cli.concurrency;
    out.push_str(&format!(
        "### Baseline: bare durable commits ({} single-row INSERT transactions per column, sqlx, engine pool settings)\n\n",
        cli.baseline_commits
    ));
    out.push_str(&format!(
        "| Backend | commits/s, 1 writer | commit latency p50 / p99 (ms), 1 writer | commits/s, {concurrency} writers |\n|---|---:|---:|---:|\n"
    ));
    for r in results {
        out.push_str(&format!(
            "| {} | {:.0} | {} / {} | {:.0} |\n",
            r.kind.label(),
            r.sequential.per_second,
            ms(r.sequential.latency.p50),
            ms(r.sequential.latency.p99),
            r.concurrent.per_second
        ));
    }
    out.push('\n');
    for r in results {
        out.push_str(&format!("- {}: {}\n", r.kind.label(), r.settings));
    }

    for kind in StepKind::ALL {
        out.push_str(&format!(
            "\n### 3-step `{}` chain ({}): throughput ({} runs, {} submitters, engine concurrency {concurrency})\n\n",
            kind.uses(),
            kind.describe(),
            cli.runs,
            cli.submitters
        ));
        out.push_str(
            "| Backend | runs ok | runs/s | steps/s | step overhead p50 / p99 / max (ms) | step execution p50 / p99 (ms) | run end-to-end p50 / p99 (ms) | 1 run costs ≈ bare commits |\n|---|---:|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in results {
            let Some(s) = r.scenarios(kind).map(|s| &s.short) else {
                continue;
            };
            out.push_str(&format!(
                "| {} | {}/{} | {:.0} | {:.0} | {} / {} / {} | {} / {} | {} / {} | {:.1} |\n",
                r.kind.label(),
                s.succeeded,
                s.submitted,
                s.runs_per_s,
                s.steps_per_s,
                ms(s.overhead.p50),
                ms(s.overhead.p99),
                ms(s.overhead.max),
                ms(s.execution.p50),
                ms(s.execution.p99),
                ms(s.end_to_end.p50),
                ms(s.end_to_end.p99),
                r.concurrent.per_second / s.runs_per_s
            ));
        }

        out.push_str(&format!(
            "\n### 40-step sequential `{}` chain ({}): latency ({} runs, one at a time)\n\n",
            kind.uses(),
            kind.describe(),
            cli.long_runs
        ));
        out.push_str(
            "| Backend | runs ok | run end-to-end p50 / p99 (ms) | per step (end-to-end / 40), p50 (ms) | step overhead p50 / p99 / max (ms) | step execution p50 / p99 (ms) | 1 step ≈ bare commit latencies |\n|---|---:|---:|---:|---:|---:|---:|\n",
        );
        for r in results {
            let Some(l) = r.scenarios(kind).map(|s| &s.long) else {
                continue;
            };
            let per_step = l.end_to_end.p50 / LONG_STEPS as f64;
            out.push_str(&format!(
                "| {} | {}/{} | {} / {} | {} | {} / {} / {} | {} / {} | {:.1} |\n",
                r.kind.label(),
                l.succeeded,
                l.submitted,
                ms(l.end_to_end.p50),
                ms(l.end_to_end.p99),
                ms(per_step),
                ms(l.overhead.p50),
                ms(l.overhead.p99),
                ms(l.overhead.max),
                ms(l.execution.p50),
                ms(l.execution.p99),
                per_step / r.sequential.latency.p50
            ));
        }
    }

    out.push_str(&format!(
        "\n### `for_each` over {items} items, `max_parallel: {parallel}` (runs one at a time)\n\n| Backend | Step kind | runs ok | run end-to-end p50 / max (ms) | items/s | per item, p50 (ms) | 1 item ≈ bare commit latencies |\n|---|---|---:|---:|---:|---:|---:|\n",
        items = cli.for_each_items,
        parallel = cli.for_each_parallel,
    ));
    for r in results {
        for scenarios in &r.scenarios {
            let f = &scenarios.fan_out;
            let per_item = f.end_to_end.p50 / cli.for_each_items.max(1) as f64;
            out.push_str(&format!(
                "| {} | `{}` | {}/{} | {} / {} | {:.0} | {} | {:.1} |\n",
                r.kind.label(),
                scenarios.kind.uses(),
                f.succeeded,
                f.submitted,
                ms(f.end_to_end.p50),
                ms(f.end_to_end.max),
                1000.0 / per_item,
                ms(per_item),
                per_item / r.sequential.latency.p50
            ));
        }
    }

    out.push_str("\n### Against the targets\n\nThe targets are set for `core.set` chains; the side-effecting path is shown beside them.\nOverhead targets are read on the 40-step scenario (one run at a time); in the throughput\nscenario the engine is saturated and the overhead there is mostly queueing.\n\n| Target | Step kind | Measured | Met |\n|---|---|---:|:---:|\n");
    let mark = |ok: bool| if ok { "yes" } else { "**no**" };
    for r in results {
        for scenarios in &r.scenarios {
            let uses = scenarios.kind.uses();
            let (short, long) = (&scenarios.short, &scenarios.long);
            match r.kind {
                Kind::Sqlite => {
                    out.push_str(&format!(
                        "| SQLite: per-step overhead p50 ≤ 2 ms (unloaded, 40-step chain) | `{uses}` | {} ms | {} |\n",
                        ms(long.overhead.p50),
                        mark(long.overhead.p50 <= 2.0)
                    ));
                    out.push_str(&format!(
                        "| SQLite: 40-step run end to end < 100 ms (p50) | `{uses}` | {} ms | {} |\n",
                        ms(long.end_to_end.p50),
                        mark(long.end_to_end.p50 < 100.0)
                    ));
                    out.push_str(&format!(
                        "| SQLite: ≥ 2,000 runs/s of the 3-step workflow | `{uses}` | {:.0} runs/s | {} |\n",
                        short.runs_per_s,
                        mark(short.runs_per_s >= 2000.0)
                    ));
                }
                Kind::Postgres => {
                    out.push_str(&format!(
                        "| Postgres: per-step overhead p50 ≤ 10 ms (unloaded, 40-step chain) | `{uses}` | {} ms | {} |\n",
                        ms(long.overhead.p50),
                        mark(long.overhead.p50 <= 10.0)
                    ));
                }
            }
        }
    }
    out.push_str(&parked_report(cli, results));
    out.push_str(&listing_report(cli, results));
    out
}

fn listing_report(cli: &Cli, results: &[BackendResult]) -> String {
    let mut out = format!(
        "\n### Runs list with {} stored runs (`Engine::list_runs`, 50 per page, {} times each)\n\n| Backend | Query | rows | p50 (ms) | p99 (ms) | max (ms) | p99 < 50 ms |\n|---|---|---:|---:|---:|---:|:---:|\n",
        cli.list_runs, cli.list_repeats
    );
    for r in results {
        for t in &r.listing.timings {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} |\n",
                r.kind.label(),
                t.query,
                t.rows,
                ms(t.latency.p50),
                ms(t.latency.p99),
                ms(t.latency.max),
                if t.latency.p99 < 50.0 { "yes" } else { "no" }
            ));
        }
    }
    for r in results {
        out.push_str(&format!(
            "\n{}: {} runs written in {:.1} s (bulk inserts of 500 rows).",
            r.kind.label(),
            r.listing.runs,
            r.listing.seed_seconds
        ));
    }
    out.push('\n');
    out
}

fn parked_report(cli: &Cli, results: &[BackendResult]) -> String {
    let tables: Vec<&str> = results
        .first()
        .and_then(|r| r.parked.first())
        .map(|p| p.rows_per_run.iter().map(|(label, _)| *label).collect())
        .unwrap_or_default();
    let mut out = format!(
        "\n### Parked runs: {} in a 1-hour `core.sleep`, then {} in `core.wait_for_webhook` (engine concurrency {})\n\n| Backend | Workflow | runs parked | parked in (s) | runs parked/s | RSS growth per parked run (bytes) | {} |\n|---|---|---:|---:|---:|---:|{}\n",
        cli.parked_runs,
        cli.parked_runs,
        cli.concurrency,
        tables
            .iter()
            .map(|table| format!("{table} rows/run"))
            .collect::<Vec<_>>()
            .join(" | "),
        "---:|".repeat(tables.len())
    );
    for r in results {
        for p in &r.parked {
            out.push_str(&format!(
                "| {} | `{}` | {}/{} | {:.2} | {:.0} | {:.0} | {} |\n",
                r.kind.label(),
                p.workflow,
                p.parked,
                p.runs,
                p.park_seconds,
                p.parked as f64 / p.park_seconds.max(f64::EPSILON),
                p.rss_per_run,
                p.rows_per_run
                    .iter()
                    .map(|(_, rows)| format!("{rows:.2}"))
                    .collect::<Vec<_>>()
                    .join(" | ")
            ));
        }
    }
    out
}

async fn fresh_database(cli: &Cli, kind: Kind) -> Result<BenchDatabase> {
    match kind {
        Kind::Sqlite => BenchDatabase::sqlite().await,
        Kind::Postgres => BenchDatabase::postgres(&cli.postgres_url).await,
    }
}

async fn run(cli: Cli) -> Result<bool> {
    if cli.scenario == ScenarioArg::RateLimit {
        return rate_limit(&cli).await;
    }
    eprintln!(
        "integration chain: {} requests per path",
        cli.integration_requests
    );
    let overhead = integration::measure(cli.integration_requests).await?;
    print!("{}", integration_report(&overhead));
    if cli.integration_only {
        return Ok(true);
    }
    let kinds: &[Kind] = match cli.backend {
        BackendArg::Sqlite => &[Kind::Sqlite],
        BackendArg::Postgres => &[Kind::Postgres],
        BackendArg::Both => &[Kind::Sqlite, Kind::Postgres],
    };
    let engine_scenarios = matches!(cli.scenario, ScenarioArg::Engine | ScenarioArg::All);
    let webhook_scenario = matches!(cli.scenario, ScenarioArg::Webhooks | ScenarioArg::All);
    let mut results = Vec::new();
    let mut acks = Vec::new();
    let mut all_ok = true;
    for &kind in kinds {
        if webhook_scenario {
            let database = fresh_database(&cli, kind).await?;
            let result = webhooks::bench(
                &database,
                cli.webhook_deliveries,
                &cli.webhook_concurrency,
                cli.concurrency,
                Duration::from_secs(cli.seconds),
            )
            .await;
            database.cleanup().await;
            let result = result.with_context(|| format!("webhooks on {}", kind.label()))?;
            all_ok &= result.iter().all(|cell| cell.ok == cell.sent);
            acks.push((kind, result));
        }
        if !engine_scenarios {
            continue;
        }
        let database = fresh_database(&cli, kind).await?;
        let result = bench_backend(&cli, &database).await;
        database.cleanup().await;
        let result = result.with_context(|| format!("benchmarking {}", kind.label()))?;
        let outcomes = result.scenarios.iter().flat_map(|s| {
            [
                (format!("{} 3-step", s.kind.uses()), &s.short),
                (format!("{} 40-step", s.kind.uses()), &s.long),
                (format!("{} for_each", s.kind.uses()), &s.fan_out),
            ]
        });
        for parked in &result.parked {
            if parked.parked < parked.runs || parked.runs < cli.parked_runs {
                all_ok = false;
                eprintln!(
                    "[{}] {}: only {} of {} runs parked",
                    kind.label(),
                    parked.workflow,
                    parked.parked,
                    cli.parked_runs
                );
            }
        }
        for (name, outcome) in outcomes {
            for note in &outcome.notes {
                eprintln!("[{}] {name}: note: {note}", kind.label());
            }
            if !outcome.ok() {
                all_ok = false;
                eprintln!(
                    "[{}] {name}: {} of {} runs succeeded",
                    kind.label(),
                    outcome.succeeded,
                    outcome.submitted
                );
                for problem in &outcome.problems {
                    eprintln!("[{}] {name}: {problem}", kind.label());
                }
            }
        }
        results.push(result);
    }
    if engine_scenarios {
        print!("{}", report(&cli, &results));
    }
    if webhook_scenario {
        print!("{}", webhook_report(&cli, &acks));
    }
    Ok(all_ok)
}

/// The rate-limit scenario: SQLite with one engine, Postgres with one and with three.
async fn rate_limit(cli: &Cli) -> Result<bool> {
    let settings = ratelimit::Settings {
        limit: cli.rate_limit,
        window: Duration::from_secs(cli.rate_window_secs),
        windows: cli.rate_windows,
        reset_grace: Duration::from_millis(cli.rate_grace_ms),
        reserve: cli.rate_reserve,
        concurrency: cli.concurrency,
    };
    let cells: Vec<(Kind, usize)> = match cli.backend {
        BackendArg::Sqlite => vec![(Kind::Sqlite, 1)],
        BackendArg::Postgres => vec![(Kind::Postgres, 1), (Kind::Postgres, 3)],
        BackendArg::Both => vec![(Kind::Sqlite, 1), (Kind::Postgres, 1), (Kind::Postgres, 3)],
    };
    let mut out = format!(
        "### Rate-limit scheduler efficiency: `http.request` steps on one connection against a local provider allowing {} requests per {} s window (429 beyond; `X-RateLimit-*` headers; reset grace {} ms, {} kept back per window; engine concurrency {})\n\n\
         | Backend | engines | runs ok | windows measured | used / allowed, mean | used / allowed, worst window | 429s while learning (first 2 windows) | 429s after | wall (s) |
|---|---:|---:|---:|---:|---:|---:|---:|---:|
",
        cli.rate_limit, cli.rate_window_secs, cli.rate_grace_ms, cli.rate_reserve, cli.concurrency
    );
    let mut all_ok = true;
    for (kind, engines) in cells {
        let database = fresh_database(cli, kind).await?;
        let result = ratelimit::bench(&database, engines, settings).await;
        database.cleanup().await;
        let e = result
            .with_context(|| format!("rate limit on {} with {engines} engines", kind.label()))?;
        let (first, later) = e.rejected();
        eprintln!(
            "[{}] {engines} engine(s): {}/{} runs, used {:.1}% (worst window {:.1}%), 429s {first} + {later}, windows {:?}",
            kind.label(),
            e.succeeded,
            e.runs,
            e.used(cli.rate_limit) * 100.0,
            e.min_used(cli.rate_limit) * 100.0,
            e.windows
                .iter()
                .map(|w| (w.accepted, w.rejected))
                .collect::<Vec<_>>()
        );
        all_ok &= e.succeeded == e.runs && later == 0;
        out.push_str(&format!(
            "| {} | {engines} | {}/{} | {} | {:.1}% | {:.1}% | {first} | {later} | {:.1} |\n",
            kind.label(),
            e.succeeded,
            e.runs,
            e.full().len(),
            e.used(cli.rate_limit) * 100.0,
            e.min_used(cli.rate_limit) * 100.0,
            e.wall_s,
        ));
    }
    print!("{out}");
    Ok(all_ok)
}

fn webhook_report(cli: &Cli, acks: &[(Kind, Vec<webhooks::AckResult>)]) -> String {
    let mut out = format!(
        "\n### Webhook acknowledgements over loopback HTTP ({} signed GitHub deliveries per row, distinct delivery ids, keep-alive connections)\n\n| Backend | Target | concurrency | ok | requests/s | latency p50 / p99 / max (ms) | ingest ÷ bare, requests/s |\n|---|---|---:|---:|---:|---:|---:|\n",
        cli.webhook_deliveries
    );
    for (kind, cells) in acks {
        for cell in cells {
            let bare = cells.iter().find(|other| {
                other.concurrency == cell.concurrency && other.target == webhooks::Target::Bare
            });
            let ratio = match (cell.target, bare) {
                (webhooks::Target::Stepwise, Some(bare)) => {
                    format!("{:.2}", cell.per_second / bare.per_second)
                }
                _ => String::from("–"),
            };
            out.push_str(&format!(
                "| {} | {} | {} | {}/{} | {:.0} | {} / {} / {} | {ratio} |\n",
                kind.label(),
                cell.target.label(),
                cell.concurrency,
                cell.ok,
                cell.sent,
                cell.per_second,
                ms(cell.latency.p50),
                ms(cell.latency.p99),
                ms(cell.latency.max),
            ));
        }
    }
    out
}

fn integration_report(o: &integration::ChainOverhead) -> String {
    let us = |ms: f64| format!("{:.1}", ms * 1000.0);
    format!(
        "### Integration runtime: middleware chain vs bare HTTP client ({} sequential GETs per path, local keep-alive server, alternating)\n\n\
         | Path | mean (µs) | p50 (µs) | p99 (µs) |\n|---|---:|---:|---:|\n\
         | bare `HttpClient::send` | {} | {} | {} |\n\
         | `ActionContext::send` (circuit, scheduler, retry, logging, metrics) | {} | {} | {} |\n\
         | overhead per request | {} | {} | |\n\n",
        o.requests,
        us(o.bare_mean),
        us(o.bare.p50),
        us(o.bare.p99),
        us(o.chain_mean),
        us(o.chain.p50),
        us(o.chain.p99),
        us(o.chain_mean - o.bare_mean),
        us(o.chain.p50 - o.bare.p50),
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("error: some runs did not succeed");
            ExitCode::FAILURE
        }
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
