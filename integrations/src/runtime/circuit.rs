//! The circuit breaker of one (tenant, integration): a pure state machine fed the clock.
//!
//! Closed until `failure_threshold` transient failures fall within `window`; then open for
//! `cool_down`, failing calls fast; then half-open, admitting exactly one probe whose result
//! closes the circuit (the provider answered) or opens it again (another transient failure).
//! Only transient failures count (5xx, timeouts, connection errors); a 4xx or 429 is an answer,
//! so it never opens the circuit and a probe that gets one closes it.

use std::collections::VecDeque;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::after;

/// When a circuit opens and how long it stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CircuitConfig {
    /// Transient failures within `window` that open the circuit.
    pub failure_threshold: u32,
    pub window: Duration,
    /// How long an open circuit fails fast before it admits a probe.
    pub cool_down: Duration,
}

impl Default for CircuitConfig {
    fn default() -> Self {
        Self {
            failure_threshold: 5,
            window: Duration::from_secs(60),
            cool_down: Duration::from_secs(30),
        }
    }
}

/// The externally visible state (also the metrics gauge value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    Closed,
    HalfOpen,
    Open,
}

impl CircuitState {
    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub fn gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::HalfOpen => 1,
            Self::Open => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::HalfOpen => "half_open",
            Self::Open => "open",
        }
    }
}

/// Whether a call may go out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    /// The single half-open probe: its result decides the circuit's state.
    Probe,
    /// Open: fail fast. `probe_at` is when the next probe will be admitted; `None` while a
    /// probe is in flight.
    Rejected {
        probe_at: Option<DateTime<Utc>>,
    },
}

/// What one call's result says about the provider's health.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Any answer that is not a transient failure (2xx, 3xx, 4xx, 429).
    Healthy,
    /// 5xx, timeout, connection error.
    TransientFailure,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Closed,
    Open { until: DateTime<Utc> },
    HalfOpen { probing: bool },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Circuit {
    config: CircuitConfig,
    state: State,
    /// Times of recent transient failures while closed, oldest first.
    failures: VecDeque<DateTime<Utc>>,
}

impl Circuit {
    pub fn new(config: CircuitConfig) -> Self {
        Self {
            config,
            state: State::Closed,
            failures: VecDeque::new(),
        }
    }

    pub fn state(&self) -> CircuitState {
        match self.state {
            State::Closed => CircuitState::Closed,
            State::Open { .. } => CircuitState::Open,
            State::HalfOpen { .. } => CircuitState::HalfOpen,
        }
    }

    /// Transient failures counted in the current window.
    pub fn recent_failures(&self) -> usize {
        self.failures.len()
    }

    /// Decides whether a call may go out at `now`. An open circuit whose cool-down has passed
    /// turns half-open and admits this call as its probe.
    pub fn admit(&mut self, now: DateTime<Utc>) -> Admission {
        match self.state {
            State::Closed => Admission::Allowed,
            State::Open { until } if now >= until => {
                self.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
            State::Open { until } => Admission::Rejected {
                probe_at: Some(until),
            },
            State::HalfOpen { probing: true } => Admission::Rejected { probe_at: None },
            State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
        }
    }

    /// Folds in the result of a call admitted as `admission`. Results of calls admitted before
    /// the circuit opened change nothing once it is open or probing.
    pub fn record(&mut self, now: DateTime<Utc>, admission: Admission, verdict: Verdict) {
        match (&self.state, admission, verdict) {
            (State::HalfOpen { .. }, Admission::Probe, Verdict::Healthy) => {
                self.state = State::Closed;
                self.failures.clear();
            }
            (State::HalfOpen { .. }, Admission::Probe, Verdict::TransientFailure) => self.open(now),
            (State::Closed, _, Verdict::TransientFailure) => {
                let window_start = before(now, self.config.window);
                while self.failures.front().is_some_and(|at| *at <= window_start) {
                    self.failures.pop_front();
                }
                self.failures.push_back(now);
                if self.failures.len() >= self.config.failure_threshold.max(1) as usize {
                    self.open(now);
                }
            }
            _ => {}
        }
    }

    /// A probe ended without a result (cancelled, or parked before sending): the next call
    /// probes instead.
    pub fn abandon_probe(&mut self) {
        if self.state == (State::HalfOpen { probing: true }) {
            self.state = State::HalfOpen { probing: false };
        }
    }

    fn open(&mut self, now: DateTime<Utc>) {
        self.failures.clear();
        self.state = State::Open {
            until: after(now, self.config.cool_down),
        };
    }
}

fn before(time: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    chrono::TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| time.checked_sub_signed(delta))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use chrono::TimeDelta;

    use super::*;

    fn start() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid time")
    }

    fn circuit() -> Circuit {
        Circuit::new(CircuitConfig {
            failure_threshold: 3,
            window: Duration::from_secs(10),
            cool_down: Duration::from_secs(30),
        })
    }

    fn fail(circuit: &mut Circuit, at: DateTime<Utc>) {
        let admission = circuit.admit(at);
        circuit.record(at, admission, Verdict::TransientFailure);
    }

    #[test]
    fn opens_after_the_threshold_within_the_window_and_fails_fast() {
        let now = start();
        let mut circuit = circuit();
        fail(&mut circuit, now);
        fail(&mut circuit, now + TimeDelta::seconds(1));
        assert_eq!(circuit.state(), CircuitState::Closed);
        fail(&mut circuit, now + TimeDelta::seconds(2));
        assert_eq!(circuit.state(), CircuitState::Open);
        assert_eq!(
            circuit.admit(now + TimeDelta::seconds(3)),
            Admission::Rejected {
                probe_at: Some(now + TimeDelta::seconds(32))
            }
        );
    }

    #[test]
    fn failures_outside_the_window_do_not_count() {
        let now = start();
        let mut circuit = circuit();
        fail(&mut circuit, now);
        fail(&mut circuit, now + TimeDelta::seconds(5));
        fail(&mut circuit, now + TimeDelta::seconds(11));
        assert_eq!(circuit.state(), CircuitState::Closed);
        assert_eq!(circuit.recent_failures(), 2);
    }

    #[test]
    fn healthy_answers_never_open_it() {
        let now = start();
        let mut circuit = circuit();
        for second in 0..20 {
            let at = now + TimeDelta::seconds(second);
            let admission = circuit.admit(at);
            circuit.record(at, admission, Verdict::Healthy);
        }
        assert_eq!(circuit.state(), CircuitState::Closed);
    }

    #[test]
    fn one_probe_after_the_cool_down_closes_it_on_an_answer() {
        let now = start();
        let mut circuit = circuit();
        for second in 0..3 {
            fail(&mut circuit, now + TimeDelta::seconds(second));
        }
        let probe_time = now + TimeDelta::seconds(32);
        assert_eq!(circuit.admit(probe_time), Admission::Probe);
        assert_eq!(circuit.state(), CircuitState::HalfOpen);
        assert_eq!(
            circuit.admit(probe_time),
            Admission::Rejected { probe_at: None },
            "a single probe at a time"
        );
        circuit.record(probe_time, Admission::Probe, Verdict::Healthy);
        assert_eq!(circuit.state(), CircuitState::Closed);
        assert_eq!(circuit.admit(probe_time), Admission::Allowed);
    }

    #[test]
    fn a_failed_probe_opens_it_for_another_cool_down() {
        let now = start();
        let mut circuit = circuit();
        for second in 0..3 {
            fail(&mut circuit, now + TimeDelta::seconds(second));
        }
        let probe_time = now + TimeDelta::seconds(40);
        assert_eq!(circuit.admit(probe_time), Admission::Probe);
        circuit.record(probe_time, Admission::Probe, Verdict::TransientFailure);
        assert_eq!(
            circuit.admit(probe_time),
            Admission::Rejected {
                probe_at: Some(probe_time + TimeDelta::seconds(30))
            }
        );
    }

    #[test]
    fn an_abandoned_probe_lets_the_next_call_probe() {
        let now = start();
        let mut circuit = circuit();
        for second in 0..3 {
            fail(&mut circuit, now + TimeDelta::seconds(second));
        }
        let probe_time = now + TimeDelta::seconds(32);
        assert_eq!(circuit.admit(probe_time), Admission::Probe);
        circuit.abandon_probe();
        assert_eq!(circuit.admit(probe_time), Admission::Probe);
    }

    #[test]
    fn late_results_of_calls_admitted_before_opening_change_nothing() {
        let now = start();
        let mut circuit = circuit();
        for second in 0..3 {
            fail(&mut circuit, now + TimeDelta::seconds(second));
        }
        let late = now + TimeDelta::seconds(4);
        circuit.record(late, Admission::Allowed, Verdict::Healthy);
        circuit.record(late, Admission::Allowed, Verdict::TransientFailure);
        assert_eq!(
            circuit.admit(late),
            Admission::Rejected {
                probe_at: Some(now + TimeDelta::seconds(32))
            }
        );
    }
}
