//! The short in-request retry: which failures are worth another attempt, whether the request
//! may be sent again, and how long to wait. Pure; the runtime supplies the random draw.
//!
//! Full-jitter exponential backoff is hand-written (one line in [`RetryPolicy::backoff`]): the
//! loop around it also honours `Retry-After`, the idempotency rule, the rate-limit scheduler
//! and the circuit between attempts, which a retry crate's closure-based loop would hide.

use std::time::Duration;

use reqwest::Method;
use stepwise_workflows::HttpRetry;

/// How hard one call tries before handing the failure to the engine's durable step retry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts per call, the first included (a 401 answered by a refresh is not counted).
    pub max_attempts: u32,
    /// Upper bound of the first backoff; doubled per retry up to `max_delay`.
    pub base_delay: Duration,
    pub max_delay: Duration,
    /// Total time one call may spend waiting between attempts. A wait that does not fit (a
    /// long `Retry-After`) ends the call with a retryable error carrying that wait.
    pub budget: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(2),
            budget: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// This policy with the fields a step's `http_retry:` sets replaced.
    pub fn overridden_by(self, step: &HttpRetry) -> Self {
        Self {
            max_attempts: step.max_attempts.unwrap_or(self.max_attempts),
            base_delay: step.initial_delay.unwrap_or(self.base_delay),
            max_delay: step.max_delay.unwrap_or(self.max_delay),
            budget: step.budget.unwrap_or(self.budget),
        }
    }

    /// Full jitter: uniform in `[0, min(max_delay, base_delay * 2^(retry - 1)))`; `retry` is 1
    /// for the first retry and `unit` a draw from `[0, 1)`.
    pub fn backoff(&self, retry: u32, unit: f64) -> Duration {
        let exponent = retry.saturating_sub(1).min(30);
        let ceiling = self
            .base_delay
            .saturating_mul(1 << exponent)
            .min(self.max_delay);
        ceiling.mul_f64(unit.clamp(0.0, 1.0))
    }

    /// The wait before attempt `attempt + 1`, or `None` to stop: out of attempts, the request
    /// may not be repeated, or the wait does not fit in what is left of the budget.
    pub fn next_wait(
        &self,
        attempt: u32,
        failure: &Failure,
        idempotent: bool,
        waited: Duration,
        unit: f64,
    ) -> Option<Duration> {
        if attempt >= self.max_attempts || !(idempotent || failure.never_sent) {
            return None;
        }
        let wait = self
            .backoff(attempt, unit)
            .max(failure.retry_after.unwrap_or_default());
        (waited + wait <= self.budget).then_some(wait)
    }
}

/// A transient failure of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    /// The server's `Retry-After`, when it sent one.
    pub retry_after: Option<Duration>,
    /// Nothing reached the server (connection refused, DNS, connect timeout).
    pub never_sent: bool,
}

/// Whether sending the request twice has the effect of sending it once: the idempotent methods
/// of RFC 9110 §9.2.2, or any request carrying an `Idempotency-Key`.
pub fn is_idempotent(method: &Method, has_idempotency_key: bool) -> bool {
    has_idempotency_key
        || matches!(
            *method,
            Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSIENT: Failure = Failure {
        retry_after: None,
        never_sent: false,
    };

    #[test]
    fn backoff_is_full_jitter_under_a_doubling_ceiling() {
        let policy = RetryPolicy::default();
        assert_eq!(policy.backoff(1, 0.0), Duration::ZERO);
        assert_eq!(policy.backoff(1, 0.5), Duration::from_millis(100));
        assert_eq!(policy.backoff(2, 0.5), Duration::from_millis(200));
        assert_eq!(policy.backoff(3, 0.5), Duration::from_millis(400));
        assert_eq!(policy.backoff(40, 0.5), Duration::from_secs(1), "capped");
    }

    #[test]
    fn stops_after_max_attempts() {
        let policy = RetryPolicy::default();
        assert!(
            policy
                .next_wait(1, &TRANSIENT, true, Duration::ZERO, 0.5)
                .is_some()
        );
        assert!(
            policy
                .next_wait(2, &TRANSIENT, true, Duration::ZERO, 0.5)
                .is_some()
        );
        assert_eq!(
            policy.next_wait(3, &TRANSIENT, true, Duration::ZERO, 0.5),
            None
        );
    }

    #[test]
    fn a_non_idempotent_request_is_repeated_only_when_it_never_left() {
        let policy = RetryPolicy::default();
        assert_eq!(
            policy.next_wait(1, &TRANSIENT, false, Duration::ZERO, 0.5),
            None
        );
        let refused = Failure {
            never_sent: true,
            ..TRANSIENT
        };
        assert!(
            policy
                .next_wait(1, &refused, false, Duration::ZERO, 0.5)
                .is_some()
        );
    }

    #[test]
    fn retry_after_wins_over_backoff_and_must_fit_the_budget() {
        let policy = RetryPolicy::default();
        let asked = |seconds| Failure {
            retry_after: Some(Duration::from_secs(seconds)),
            ..TRANSIENT
        };
        assert_eq!(
            policy.next_wait(1, &asked(2), true, Duration::ZERO, 0.5),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            policy.next_wait(1, &asked(2), true, Duration::from_secs(4), 0.5),
            None
        );
        assert_eq!(
            policy.next_wait(1, &asked(60), true, Duration::ZERO, 0.5),
            None
        );
    }

    #[test]
    fn a_step_override_replaces_only_the_fields_it_sets() {
        let policy = RetryPolicy::default().overridden_by(&HttpRetry {
            max_attempts: Some(1),
            budget: Some(Duration::from_secs(1)),
            ..HttpRetry::default()
        });
        assert_eq!(
            policy,
            RetryPolicy {
                max_attempts: 1,
                budget: Duration::from_secs(1),
                ..RetryPolicy::default()
            }
        );
        assert_eq!(
            policy.next_wait(1, &TRANSIENT, true, Duration::ZERO, 0.5),
            None,
            "one attempt: no retry"
        );
        let delays = RetryPolicy::default().overridden_by(&HttpRetry {
            initial_delay: Some(Duration::from_millis(50)),
            max_delay: Some(Duration::from_millis(80)),
            ..HttpRetry::default()
        });
        assert_eq!(delays.backoff(1, 0.5), Duration::from_millis(25));
        assert_eq!(delays.backoff(3, 0.5), Duration::from_millis(40), "capped");
    }

    #[test]
    fn idempotency_follows_the_method_or_the_key() {
        assert!(is_idempotent(&Method::GET, false));
        assert!(is_idempotent(&Method::PUT, false));
        assert!(!is_idempotent(&Method::POST, false));
        assert!(!is_idempotent(&Method::PATCH, false));
        assert!(is_idempotent(&Method::POST, true));
    }
}
