//! Response headers -> [`RateLimitObservation`]. See the module docs of [`super`] for the
//! formats, the precedence and the treatment of malformed values.

use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use http::{HeaderMap, StatusCode};
use sfv::{BareItem, Dictionary, List, ListEntry, Parameters, Parser};

use super::{
    Diagnostic, HeaderSource, MAX_RESET_HORIZON, Problem, ProviderProfile, QuotaPolicy,
    RateLimitObservation,
};
use crate::http::parse_http_date;

/// Numbers at or above this are epoch seconds, not delays (2001-09-09; no delay is 31 years).
const EPOCH_SECONDS_FROM: f64 = 1e9;
/// Numbers at or above this are epoch milliseconds (1e12 s would be the year 33658).
const EPOCH_MILLIS_FROM: f64 = 1e12;
/// Shopify leaks `capacity / 20` requests per second (40 -> 2/s, 400 -> 20/s on Plus).
const SHOPIFY_DRAIN: Duration = Duration::from_secs(20);
/// Only this much of a body is searched for GitHub's "secondary rate limit".
const BODY_SCAN_LIMIT: usize = 64 * 1024;

/// Reads the rate-limit headers of one response. Never fails: what cannot be read is left
/// `None` and noted in [`RateLimitObservation::diagnostics`].
pub fn parse(
    headers: &HeaderMap,
    status: StatusCode,
    now: DateTime<Utc>,
    profile: &ProviderProfile,
) -> RateLimitObservation {
    parse_with_body(headers, status, &[], now, profile)
}

/// [`parse`], also recognising a GitHub secondary-limit 403 by its body
/// ([`is_secondary_rate_limit_body`]), which carries no distinguishing header.
pub fn parse_with_body(
    headers: &HeaderMap,
    status: StatusCode,
    body: &[u8],
    now: DateTime<Utc>,
    profile: &ProviderProfile,
) -> RateLimitObservation {
    let mut reader = Reader {
        headers,
        now,
        skew: TimeDelta::zero(),
        diagnostics: Vec::new(),
    };
    reader.skew = reader.clock_skew();

    // Precedence order for the quota fields.
    let declared = reader.declared_quotas(profile);
    let candidates = [
        reader.ietf(),
        reader.ietf_dictionary(),
        declared.requests,
        reader.shopify(),
        reader.hubspot(),
        reader.x_ratelimit("x-ratelimit-", HeaderSource::XRateLimit),
        reader.x_ratelimit("ratelimit-", HeaderSource::LegacyRateLimit),
    ];
    let mut obs = RateLimitObservation::default();
    for quota in candidates.into_iter().flatten() {
        if obs.remaining.is_none() && quota.remaining.is_some() {
            obs.remaining = quota.remaining;
            obs.source = Some(quota.source);
        }
        obs.limit = obs.limit.or(quota.limit);
        obs.reset_at = obs.reset_at.or(quota.reset_at);
        obs.policy = obs.policy.take().or(quota.policy);
        obs.scope = obs.scope.take().or(quota.scope);
    }
    let explicit_scope = reader
        .text("x-ratelimit-resource")
        .or_else(|| reader.text("x-ratelimit-scope"));
    obs.scope = explicit_scope
        .or(obs.scope.take())
        .or_else(|| profile.implied_scope.clone());

    obs.retry_after = reader.retry_after(profile.max_retry_after);
    let exhausted = obs.remaining == Some(0);
    obs.rejected = status == StatusCode::TOO_MANY_REQUESTS
        || (status == StatusCode::FORBIDDEN
            && (obs.retry_after.is_some() || exhausted || is_secondary_rate_limit_body(body)));
    let pending_reset = obs.reset_at.filter(|reset| *reset > now);
    // The latest refill among the exhausted quotas (of requests, or of what else is counted).
    let exhausted_until = pending_reset
        .filter(|_| exhausted)
        .max(declared.exhausted_until);
    obs.not_before = if let Some(at) = obs.retry_after {
        Some(at)
    } else if obs.rejected {
        Some(
            exhausted_until
                .unwrap_or_else(|| plus_seconds(now, profile.rejection_wait.as_secs_f64())),
        )
    } else {
        exhausted_until
    };
    obs.diagnostics = reader.diagnostics;
    obs
}

/// Whether a response body is GitHub's secondary-rate-limit message ("You have exceeded a
/// secondary rate limit"). Case-insensitive; only the first 64 KiB are searched.
pub fn is_secondary_rate_limit_body(body: &[u8]) -> bool {
    let body = &body[..body.len().min(BODY_SCAN_LIMIT)];
    let needle = b"secondary rate limit";
    body.windows(needle.len())
        .any(|window| window.eq_ignore_ascii_case(needle))
}

/// What the profile's declared header quotas say.
struct DeclaredQuotas {
    /// The quota of requests with the fewest remaining.
    requests: Option<Quota>,
    /// The latest pending reset of an exhausted quota of something else (tokens).
    exhausted_until: Option<DateTime<Utc>>,
}

/// A `RateLimit` item: (policy name, remaining, reset).
type Restrictive = (Option<String>, u64, Option<DateTime<Utc>>);

/// One family's view of the quota.
struct Quota {
    limit: Option<u64>,
    remaining: Option<u64>,
    reset_at: Option<DateTime<Utc>>,
    policy: Option<QuotaPolicy>,
    scope: Option<String>,
    source: HeaderSource,
}

struct Reader<'a> {
    headers: &'a HeaderMap,
    now: DateTime<Utc>,
    /// Server clock minus ours, from the `Date` header (zero when within 2 s or absurd).
    skew: TimeDelta,
    diagnostics: Vec<Diagnostic>,
}

impl Reader<'_> {
    fn note(&mut self, header: &str, problem: Problem) {
        let diagnostic = Diagnostic {
            header: header.to_owned(),
            problem,
        };
        if !self.diagnostics.contains(&diagnostic) {
            self.diagnostics.push(diagnostic);
        }
    }

    /// Every line of header `name`, trimmed; unreadable or empty lines are noted and skipped.
    fn lines(&mut self, name: &str) -> Vec<String> {
        let mut lines = Vec::new();
        let mut unreadable = false;
        for value in self.headers.get_all(name) {
            match value.to_str().map(str::trim) {
                Ok(line) if !line.is_empty() => lines.push(line.to_owned()),
                _ => unreadable = true,
            }
        }
        if unreadable {
            self.note(name, Problem::Unreadable);
        }
        lines
    }

    /// The lines of `name` joined as one field value (RFC 9110 §5.3), or `None` when absent.
    fn joined(&mut self, name: &str) -> Option<String> {
        let lines = self.lines(name);
        (!lines.is_empty()).then(|| lines.join(", "))
    }

    /// The first readable value of `name`, for names and tokens.
    fn text(&mut self, name: &str) -> Option<String> {
        self.lines(name).into_iter().next()
    }

    /// The numbers in `name`: every line, split at commas, parameters (`;w=60`) dropped.
    fn numbers(&mut self, name: &str) -> Vec<f64> {
        let mut numbers = Vec::new();
        for line in self.lines(name) {
            for part in line.split(',') {
                let part = part.split(';').next().unwrap_or_default().trim();
                match number(part) {
                    Some(value) => numbers.push(value),
                    None => self.note(name, Problem::NotNumeric),
                }
            }
        }
        if numbers.len() > 1 && numbers.iter().any(|n| *n != numbers[0]) {
            self.note(name, Problem::Multiple);
        }
        numbers
    }

    /// A limit: negative and zero values are ignored, several values -> the smallest.
    fn limit(&mut self, name: &str) -> Option<u64> {
        let mut best: Option<u64> = None;
        for value in self.numbers(name) {
            let count = if value < 0.0 {
                self.note(name, Problem::Negative);
                continue;
            } else if let Some(count) = to_count(value) {
                count
            } else {
                self.note(name, Problem::TooLarge);
                continue;
            };
            if count == 0 {
                self.note(name, Problem::ZeroLimit);
                continue;
            }
            best = Some(best.map_or(count, |b| b.min(count)));
        }
        best
    }

    /// A remaining count: negative values count as 0, several values -> the smallest.
    fn remaining(&mut self, name: &str) -> Option<u64> {
        let mut best: Option<u64> = None;
        for value in self.numbers(name) {
            let count = if value < 0.0 {
                self.note(name, Problem::Negative);
                0
            } else if let Some(count) = to_count(value) {
                count
            } else {
                self.note(name, Problem::TooLarge);
                continue;
            };
            best = Some(best.map_or(count, |b| b.min(count)));
        }
        best
    }

    /// A reset time (epoch seconds, epoch milliseconds or delta seconds); several -> the latest.
    fn reset(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let values = self.numbers(name);
        values
            .into_iter()
            .map(|value| self.reset_value(name, value))
            .max()
    }

    fn reset_value(&mut self, name: &str, value: f64) -> DateTime<Utc> {
        if value < 0.0 {
            self.note(name, Problem::Negative);
            return self.now;
        }
        if value >= EPOCH_SECONDS_FROM {
            let seconds = if value >= EPOCH_MILLIS_FROM {
                value / 1000.0
            } else {
                value
            };
            self.server_epoch(name, seconds, MAX_RESET_HORIZON)
        } else {
            self.after(name, value, MAX_RESET_HORIZON)
        }
    }

    /// `now + seconds`, rounded up to the millisecond, clamped to `now + max`.
    fn after(&mut self, name: &str, seconds: f64, max: Duration) -> DateTime<Utc> {
        if seconds > max.as_secs_f64() {
            self.note(name, Problem::Clamped);
            return plus_seconds(self.now, max.as_secs_f64());
        }
        plus_seconds(self.now, seconds)
    }

    /// A server-stated epoch time, corrected for skew, in `[now, now + max]`.
    fn server_epoch(&mut self, name: &str, seconds: f64, max: Duration) -> DateTime<Utc> {
        let skew = self.skew.num_milliseconds() as f64 / 1000.0;
        let now = self.now.timestamp_millis() as f64 / 1000.0;
        self.within(name, seconds - skew - now, max)
    }

    /// `now + offset` seconds, where a negative offset means "already past".
    fn within(&mut self, name: &str, offset: f64, max: Duration) -> DateTime<Utc> {
        if offset < 0.0 {
            self.note(name, Problem::InThePast);
            return self.now;
        }
        self.after(name, offset, max)
    }

    /// `Retry-After` as an absolute time; several values -> the latest.
    fn retry_after(&mut self, max: Duration) -> Option<DateTime<Utc>> {
        const NAME: &str = "retry-after";
        let mut latest: Option<DateTime<Utc>> = None;
        for line in self.lines(NAME) {
            let mut found = Vec::new();
            if let Some(date) = parse_http_date(&line) {
                let offset = (date - self.skew - self.now).num_milliseconds() as f64 / 1000.0;
                found.push(self.within(NAME, offset, max));
            } else {
                // Delay seconds, possibly a comma list from joined duplicates.
                for part in line.split(',') {
                    match number(part.trim()) {
                        Some(value) if value < 0.0 => {
                            self.note(NAME, Problem::Negative);
                            found.push(self.now);
                        }
                        Some(value) if value >= EPOCH_SECONDS_FROM => {
                            self.note(NAME, Problem::ReadAsEpoch);
                            let seconds = if value >= EPOCH_MILLIS_FROM {
                                value / 1000.0
                            } else {
                                value
                            };
                            found.push(self.server_epoch(NAME, seconds, max));
                        }
                        Some(value) => found.push(self.after(NAME, value, max)),
                        None => self.note(NAME, Problem::NotNumeric),
                    }
                }
            }
            for at in found {
                if latest.is_some_and(|l| l != at) {
                    self.note(NAME, Problem::Multiple);
                }
                latest = Some(latest.map_or(at, |l| l.max(at)));
            }
        }
        latest
    }

    /// Server clock minus ours, from `Date`; zero unless it differs by 2 s to 1 day.
    fn clock_skew(&mut self) -> TimeDelta {
        let Some(date) = self.text("date").and_then(|d| parse_http_date(&d)) else {
            return TimeDelta::zero();
        };
        let skew = date - self.now;
        let size = skew.abs();
        if size >= TimeDelta::seconds(2) && size <= TimeDelta::days(1) {
            skew
        } else {
            TimeDelta::zero()
        }
    }

    /// `RateLimit` / `RateLimit-Policy` in the current draft's list syntax (also the older
    /// `RateLimit-Policy: 100;w=60`).
    fn ietf(&mut self) -> Option<Quota> {
        let policies = self.ietf_policies();
        // Not a list: maybe the older dictionary syntax, read by `ietf_dictionary`.
        let current = self
            .joined("ratelimit")
            .and_then(|field| Parser::new(&field).parse::<List>().ok())
            .and_then(|list| self.most_restrictive(&list));
        let Some((name, remaining, reset)) = current else {
            return policies.map(Self::policy_only);
        };
        let policies = policies.unwrap_or_default();
        let policy = policies
            .iter()
            .find(|p| p.name == name)
            .or_else(|| policies.first().filter(|_| policies.len() == 1))
            .cloned();
        Some(Quota {
            limit: policy.as_ref().map(|p| p.quota),
            remaining: Some(remaining),
            reset_at: reset,
            scope: name.clone(),
            policy,
            source: HeaderSource::Ietf,
        })
    }

    fn policy_only(policies: Vec<QuotaPolicy>) -> Quota {
        // With several policies and no RateLimit, the one with the smallest rate is the bound.
        let policy = policies.into_iter().min_by(|a, b| {
            let rate = |p: &QuotaPolicy| {
                p.quota as f64 / p.window.map_or(f64::INFINITY, |w| w.as_secs_f64().max(1.0))
            };
            rate(a).total_cmp(&rate(b))
        });
        Quota {
            limit: policy.as_ref().map(|p| p.quota),
            remaining: None,
            reset_at: None,
            scope: policy.as_ref().and_then(|p| p.name.clone()),
            policy,
            source: HeaderSource::Ietf,
        }
    }

    fn ietf_policies(&mut self) -> Option<Vec<QuotaPolicy>> {
        const NAME: &str = "ratelimit-policy";
        let field = self.joined(NAME)?;
        let Ok(list) = Parser::new(&field).parse::<List>() else {
            self.note(NAME, Problem::NotNumeric);
            return None;
        };
        let mut policies = Vec::new();
        for entry in &list {
            let ListEntry::Item(item) = entry else {
                continue;
            };
            let window = match param_integer(&item.params, "w") {
                Some(w) if w > 0 => Some(Duration::from_secs(w.unsigned_abs())),
                _ => None,
            };
            // Current draft: "name";q=100;w=60. Older drafts: 100;w=60.
            let (name, quota) = match item.bare_item.as_integer() {
                Some(quota) => (None, Some(i64::from(quota))),
                None => (bare_name(&item.bare_item), param_integer(&item.params, "q")),
            };
            match quota {
                Some(quota) if quota > 0 => policies.push(QuotaPolicy {
                    name,
                    quota: quota.unsigned_abs(),
                    window,
                }),
                Some(_) => self.note(NAME, Problem::ZeroLimit),
                None => self.note(NAME, Problem::NotNumeric),
            }
        }
        (!policies.is_empty()).then_some(policies)
    }

    /// The `RateLimit` item with the fewest remaining requests (ties: the later reset).
    fn most_restrictive(&mut self, list: &List) -> Option<Restrictive> {
        const NAME: &str = "ratelimit";
        let mut best: Option<Restrictive> = None;
        for entry in list {
            let ListEntry::Item(item) = entry else {
                continue;
            };
            let Some(r) = param_integer(&item.params, "r") else {
                self.note(NAME, Problem::NotNumeric);
                continue;
            };
            let remaining = if r < 0 {
                self.note(NAME, Problem::Negative);
                0
            } else {
                r.unsigned_abs()
            };
            let reset = param_integer(&item.params, "t").map(|t| self.delta_reset(NAME, t));
            let candidate = (bare_name(&item.bare_item), remaining, reset);
            best = match best {
                Some(b)
                    if (b.1, std::cmp::Reverse(b.2)) <= (remaining, std::cmp::Reverse(reset)) =>
                {
                    Some(b)
                }
                _ => Some(candidate),
            };
        }
        best
    }

    fn delta_reset(&mut self, name: &str, seconds: i64) -> DateTime<Utc> {
        if seconds < 0 {
            self.note(name, Problem::Negative);
            return self.now;
        }
        self.after(name, seconds as f64, MAX_RESET_HORIZON)
    }

    /// The older draft's `RateLimit: limit=100, remaining=50, reset=30`.
    fn ietf_dictionary(&mut self) -> Option<Quota> {
        const NAME: &str = "ratelimit";
        let field = self.joined(NAME)?;
        if Parser::new(&field).parse::<List>().is_ok() {
            return None; // the current syntax, read by `ietf`
        }
        let Ok(dict) = Parser::new(&field).parse::<Dictionary>() else {
            self.note(NAME, Problem::NotNumeric);
            return None;
        };
        let integer = |key: &str| match dict.get(key) {
            Some(ListEntry::Item(item)) => item.bare_item.as_integer().map(i64::from),
            _ => None,
        };
        let (limit, remaining, reset) = (integer("limit"), integer("remaining"), integer("reset"));
        let unreadable = ["limit", "remaining", "reset"]
            .iter()
            .any(|key| dict.contains_key(*key) && integer(key).is_none());
        if unreadable {
            self.note(NAME, Problem::NotNumeric);
        }
        if limit.is_none() && remaining.is_none() {
            return None;
        }
        let limit = match limit {
            Some(l) if l > 0 => Some(l.unsigned_abs()),
            Some(_) => {
                self.note(NAME, Problem::ZeroLimit);
                None
            }
            None => None,
        };
        let remaining = remaining.map(|r| {
            if r < 0 {
                self.note(NAME, Problem::Negative);
            }
            r.max(0).unsigned_abs()
        });
        let reset_at = reset.map(|t| self.delta_reset(NAME, t));
        let policy = self
            .ietf_policies()
            .and_then(|p| p.into_iter().next())
            .or_else(|| {
                limit.map(|quota| QuotaPolicy {
                    name: None,
                    quota,
                    window: None,
                })
            });
        Some(Quota {
            limit,
            remaining,
            reset_at,
            policy,
            scope: None,
            source: HeaderSource::IetfDictionary,
        })
    }

    /// Shopify `X-Shopify-Shop-Api-Call-Limit: used/capacity`.
    fn shopify(&mut self) -> Option<Quota> {
        const NAME: &str = "x-shopify-shop-api-call-limit";
        let mut best: Option<(u64, u64)> = None; // (remaining, capacity)
        for line in self.lines(NAME) {
            for part in line.split(',') {
                let parsed = part.split_once('/').and_then(|(used, capacity)| {
                    let used = number(used.trim())?;
                    let capacity = number(capacity.trim())?;
                    Some((used, capacity))
                });
                let Some((used, capacity)) = parsed else {
                    self.note(NAME, Problem::NotNumeric);
                    continue;
                };
                let (Some(used), Some(capacity)) = (to_count(used.max(0.0)), to_count(capacity))
                else {
                    self.note(NAME, Problem::TooLarge);
                    continue;
                };
                if capacity == 0 {
                    self.note(NAME, Problem::ZeroLimit);
                    continue;
                }
                let remaining = capacity.saturating_sub(used);
                if best.is_some_and(|b| b != (remaining, capacity)) {
                    self.note(NAME, Problem::Multiple);
                }
                best = Some(best.map_or((remaining, capacity), |b| b.min((remaining, capacity))));
            }
        }
        let (remaining, capacity) = best?;
        Some(Quota {
            limit: Some(capacity),
            remaining: Some(remaining),
            reset_at: None,
            policy: Some(QuotaPolicy {
                name: None,
                quota: capacity,
                window: Some(SHOPIFY_DRAIN),
            }),
            scope: None,
            source: HeaderSource::Provider,
        })
    }

    /// HubSpot's interval (`-Max`, `-Remaining`, `-Interval-Milliseconds`) and daily (`-Daily`,
    /// `-Daily-Remaining`) quotas; the one with fewer remaining requests.
    fn hubspot(&mut self) -> Option<Quota> {
        let interval = self.hubspot_quota(
            "x-hubspot-ratelimit-max",
            "x-hubspot-ratelimit-remaining",
            "interval",
            None,
        );
        let daily = self.hubspot_quota(
            "x-hubspot-ratelimit-daily",
            "x-hubspot-ratelimit-daily-remaining",
            "daily",
            Some(Duration::from_secs(24 * 3600)),
        );
        match (interval, daily) {
            (Some(i), Some(d)) => Some(
                if d.remaining.is_some() && (i.remaining.is_none() || d.remaining < i.remaining) {
                    d
                } else {
                    i
                },
            ),
            (i, d) => i.or(d),
        }
    }

    fn hubspot_quota(
        &mut self,
        limit_header: &str,
        remaining_header: &str,
        name: &str,
        window: Option<Duration>,
    ) -> Option<Quota> {
        let limit = self.limit(limit_header);
        let remaining = self.remaining(remaining_header);
        if limit.is_none() && remaining.is_none() {
            return None;
        }
        let window = window.or_else(|| {
            let ms = self.limit("x-hubspot-ratelimit-interval-milliseconds")?;
            Some(Duration::from_millis(ms))
        });
        Some(Quota {
            limit,
            remaining,
            reset_at: None,
            policy: limit.map(|quota| QuotaPolicy {
                name: Some(name.to_owned()),
                quota,
                window,
            }),
            scope: None,
            source: HeaderSource::Provider,
        })
    }

    /// The quotas `profile` declares in headers of the provider's naming.
    fn declared_quotas(&mut self, profile: &ProviderProfile) -> DeclaredQuotas {
        let mut declared = DeclaredQuotas {
            requests: None,
            exhausted_until: None,
        };
        for quota in &profile.header_quotas {
            let (limit, remaining) = match quota.usage.as_deref() {
                Some(header) => match self.usage(header, quota.key.as_deref()) {
                    Some((used, limit)) => (Some(limit), Some(limit.saturating_sub(used))),
                    None => (None, None),
                },
                None => (
                    quota.limit.as_deref().and_then(|name| self.limit(name)),
                    quota
                        .remaining
                        .as_deref()
                        .and_then(|name| self.remaining(name)),
                ),
            };
            let reset_at = quota
                .reset
                .as_deref()
                .and_then(|name| self.unit_reset(name));
            if limit.is_none() && remaining.is_none() && reset_at.is_none() {
                continue;
            }
            if quota.counts_requests() {
                let fewer = declared
                    .requests
                    .as_ref()
                    .is_none_or(|held| remaining.is_some() && remaining < held.remaining);
                if fewer {
                    declared.requests = Some(Quota {
                        limit,
                        remaining,
                        reset_at,
                        policy: None,
                        scope: None,
                        source: HeaderSource::Provider,
                    });
                }
            } else if remaining == Some(0) {
                let pending = reset_at.filter(|reset| *reset > self.now);
                declared.exhausted_until = declared.exhausted_until.max(pending);
            }
        }
        declared
    }

    /// `(used, limit)` from header `name` stating `used/limit`, or `key=used/limit` among
    /// comma-separated entries when `key` is given; the entry with the least left wins.
    fn usage(&mut self, name: &str, key: Option<&str>) -> Option<(u64, u64)> {
        let mut least: Option<(u64, u64)> = None;
        for line in self.lines(name) {
            for entry in line.split(',').map(str::trim) {
                let value = match (key, entry.split_once('=')) {
                    (Some(key), Some((entry_key, value))) if entry_key.trim() == key => value,
                    (None, None) => entry,
                    _ => continue,
                };
                let parsed = value.split_once('/').and_then(|(used, limit)| {
                    Some((
                        used.trim().parse::<u64>().ok()?,
                        limit.trim().parse::<u64>().ok()?,
                    ))
                });
                match parsed {
                    Some((_, 0)) => self.note(name, Problem::ZeroLimit),
                    Some((used, limit)) => {
                        let left = limit.saturating_sub(used);
                        if least.is_none_or(|(u, l)| left < l.saturating_sub(u)) {
                            least = Some((used, limit));
                        }
                    }
                    None => self.note(name, Problem::NotNumeric),
                }
            }
        }
        least
    }

    /// A reset in any form [`Self::reset`] reads, or a duration with units (`6m0s`, `20ms`,
    /// `1h2m3.5s`); several -> the latest.
    fn unit_reset(&mut self, name: &str) -> Option<DateTime<Utc>> {
        let mut latest = None;
        for line in self.lines(name) {
            for part in line.split(',').map(str::trim) {
                let at = if let Some(value) = number(part) {
                    self.reset_value(name, value)
                } else if let Some(seconds) = unit_seconds(part) {
                    self.after(name, seconds, MAX_RESET_HORIZON)
                } else {
                    self.note(name, Problem::NotNumeric);
                    continue;
                };
                latest = latest.max(Some(at));
            }
        }
        latest
    }

    /// `{prefix}limit`, `{prefix}remaining`, `{prefix}reset` (and `x-ratelimit-reset-after`).
    fn x_ratelimit(&mut self, prefix: &str, source: HeaderSource) -> Option<Quota> {
        let limit = self.limit(&format!("{prefix}limit"));
        let remaining = self.remaining(&format!("{prefix}remaining"));
        let reset = self.reset(&format!("{prefix}reset"));
        let reset_after = if source == HeaderSource::XRateLimit {
            let name = "x-ratelimit-reset-after";
            let values = self.numbers(name);
            values
                .into_iter()
                .map(|v| self.within(name, v, MAX_RESET_HORIZON))
                .max()
        } else {
            None
        };
        let reset_at = reset.max(reset_after);
        if limit.is_none() && remaining.is_none() && reset_at.is_none() {
            return None;
        }
        Some(Quota {
            limit,
            remaining,
            reset_at,
            policy: None,
            scope: None,
            source,
        })
    }
}

/// A decimal number: optional sign, digits, optional fraction. No exponents, `inf` or `NaN`.
fn number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
    let ok = !whole.is_empty()
        && whole.bytes().all(|b| b.is_ascii_digit())
        && fraction.bytes().all(|b| b.is_ascii_digit());
    if !ok {
        return None;
    }
    text.parse::<f64>().ok().filter(|v| v.is_finite())
}

/// A duration written as numbers with units, Go's `time.Duration` text (`6m0s`, `20ms`,
/// `1h2m3.5s`, `1.5µs`), in seconds; `None` for anything else.
fn unit_seconds(text: &str) -> Option<f64> {
    // (unit, seconds per unit as a fraction, so `20ms` is exactly 20 / 1000)
    const UNITS: [(&str, f64, f64); 7] = [
        ("ns", 1.0, 1e9),
        ("us", 1.0, 1e6),
        ("µs", 1.0, 1e6),
        ("ms", 1.0, 1e3),
        ("h", 3600.0, 1.0),
        ("m", 60.0, 1.0),
        ("s", 1.0, 1.0),
    ];
    let mut rest = text;
    let mut total = 0.0;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .filter(|end| *end > 0)?;
        let value = number(&rest[..digits])?;
        rest = &rest[digits..];
        let (unit, per, divisor) = UNITS.iter().find(|(unit, ..)| rest.starts_with(unit))?;
        total += value * per / divisor;
        rest = &rest[unit.len()..];
    }
    (!text.is_empty()).then_some(total)
}

/// A non-negative number as a count (fractions dropped); `None` when it does not fit a `u64`.
fn to_count(value: f64) -> Option<u64> {
    // u64::MAX as f64 rounds up to 2^64, so `<` keeps the cast exact and in range.
    (value < u64::MAX as f64).then_some(value.max(0.0) as u64)
}

fn param_integer(params: &Parameters, key: &str) -> Option<i64> {
    params.get(key)?.as_integer().map(i64::from)
}

fn bare_name(item: &BareItem) -> Option<String> {
    item.as_string()
        .map(|s| s.as_str().to_owned())
        .or_else(|| item.as_token().map(|t| t.as_str().to_owned()))
}

/// `at + seconds`, rounded up to the millisecond (after rounding away float noise at the
/// microsecond), saturating at the ends of time.
pub(super) fn plus_seconds(at: DateTime<Utc>, seconds: f64) -> DateTime<Utc> {
    let millis = ((seconds * 1e6).round() / 1e3).ceil();
    if millis >= i64::MAX as f64 {
        return DateTime::<Utc>::MAX_UTC;
    }
    TimeDelta::try_milliseconds(millis as i64)
        .and_then(|d| at.checked_add_signed(d))
        .unwrap_or(if millis < 0.0 {
            DateTime::<Utc>::MIN_UTC
        } else {
            DateTime::<Utc>::MAX_UTC
        })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use http::{HeaderName, HeaderValue};

    use super::*;
    use crate::ratelimit::HeaderSource::*;
    use crate::ratelimit::Problem::*;

    /// (limit, remaining, expected limit, expected remaining, expected problems)
    type CountCase<'a> = (&'a str, &'a str, Option<u64>, Option<u64>, &'a [Problem]);
    /// (Retry-After, expected time, expected problems)
    type RetryCase<'a> = (&'a str, Option<DateTime<Utc>>, &'a [Problem]);

    /// 2026-01-01T00:00:00Z, a Thursday.
    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap()
    }

    fn secs(s: f64) -> DateTime<Utc> {
        plus_seconds(now(), s)
    }

    fn epoch(offset: i64) -> String {
        (now().timestamp() + offset).to_string()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn read(pairs: &[(&str, &str)]) -> RateLimitObservation {
        read_with(pairs, 200, &ProviderProfile::generic())
    }

    fn read_with(
        pairs: &[(&str, &str)],
        status: u16,
        profile: &ProviderProfile,
    ) -> RateLimitObservation {
        parse(
            &headers(pairs),
            StatusCode::from_u16(status).unwrap(),
            now(),
            profile,
        )
    }

    fn problems(obs: &RateLimitObservation) -> Vec<(&str, Problem)> {
        obs.diagnostics
            .iter()
            .map(|d| (d.header.as_str(), d.problem))
            .collect()
    }

    #[test]
    fn no_headers_is_an_empty_observation() {
        assert_eq!(read(&[]), RateLimitObservation::default());
    }

    #[test]
    fn github_primary_headers() {
        let reset = epoch(1800);
        let obs = read_with(
            &[
                ("x-ratelimit-limit", "5000"),
                ("x-ratelimit-remaining", "4999"),
                ("x-ratelimit-used", "1"),
                ("x-ratelimit-reset", &reset),
                ("x-ratelimit-resource", "core"),
            ],
            200,
            &crate::providers::provider("github")
                .expect("github")
                .rate_limit_profile(),
        );
        assert_eq!(obs.limit, Some(5000));
        assert_eq!(obs.remaining, Some(4999));
        assert_eq!(obs.reset_at, Some(secs(1800.0)));
        assert_eq!(obs.scope.as_deref(), Some("core"));
        assert_eq!(obs.source, Some(XRateLimit));
        assert!(!obs.rejected);
        assert_eq!(obs.not_before, None);
        assert!(obs.diagnostics.is_empty(), "{:?}", obs.diagnostics);
    }

    #[test]
    fn reset_epoch_seconds_epoch_millis_and_delta_agree() {
        let millis = ((now().timestamp() + 30) * 1000).to_string();
        for value in ["30", epoch(30).as_str(), millis.as_str(), " 30 ", "29.9999"] {
            let obs = read(&[("x-ratelimit-reset", value)]);
            assert_eq!(obs.reset_at, Some(secs(30.0)), "{value:?}");
        }
        // A delta just under the epoch threshold is still a delta, clamped to 31 days.
        let obs = read(&[("x-ratelimit-reset", "999999999")]);
        assert_eq!(obs.reset_at, Some(secs(MAX_RESET_HORIZON.as_secs_f64())));
        assert_eq!(problems(&obs), [("x-ratelimit-reset", Clamped)]);
    }

    #[test]
    fn past_negative_and_far_future_resets() {
        let cases: [(&str, DateTime<Utc>, Vec<Problem>); 6] = [
            (&epoch(-10), now(), vec![InThePast]),
            ("1000000000", now(), vec![InThePast]), // 2001
            ("0", now(), vec![]),
            ("-5", now(), vec![Negative]),
            (&epoch(400 * 86400), secs(31.0 * 86400.0), vec![Clamped]),
            ("99999999999999999999", secs(31.0 * 86400.0), vec![Clamped]), // ms, far future
        ];
        for (value, expected, expected_problems) in cases {
            let obs = read(&[("x-ratelimit-reset", value)]);
            assert_eq!(obs.reset_at, Some(expected), "{value}");
            let got: Vec<Problem> = obs.diagnostics.iter().map(|d| d.problem).collect();
            assert_eq!(got, expected_problems, "{value}");
        }
    }

    #[test]
    fn odd_counts() {
        // (limit, remaining) values -> (limit, remaining, problems)
        let cases: &[CountCase] = &[
            ("100", "-3", Some(100), Some(0), &[Negative]),
            ("-100", "5", None, Some(5), &[Negative]),
            ("0", "0", None, Some(0), &[ZeroLimit]),
            ("abc", "5", None, Some(5), &[NotNumeric]),
            ("1e3", "0x10", None, None, &[NotNumeric, NotNumeric]),
            ("inf", "NaN", None, None, &[NotNumeric, NotNumeric]),
            ("  60\t", " 59 ", Some(60), Some(59), &[]),
            ("100, 100;w=60", "7", Some(100), Some(7), &[]),
            ("100, 50", "7,3", Some(50), Some(3), &[Multiple, Multiple]),
            ("99999999999999999999999", "5", None, Some(5), &[TooLarge]),
            ("18446744073709551615", "1", None, Some(1), &[TooLarge]),
            ("10.9", "4.9", Some(10), Some(4), &[]),
            ("+10", "+4", Some(10), Some(4), &[]),
        ];
        for (limit, remaining, want_limit, want_remaining, want_problems) in cases {
            let obs = read(&[
                ("x-ratelimit-limit", limit),
                ("x-ratelimit-remaining", remaining),
            ]);
            assert_eq!(obs.limit, *want_limit, "{limit:?}");
            assert_eq!(obs.remaining, *want_remaining, "{remaining:?}");
            let got: Vec<Problem> = obs.diagnostics.iter().map(|d| d.problem).collect();
            assert_eq!(got, *want_problems, "{limit:?} / {remaining:?}");
        }
    }

    #[test]
    fn empty_duplicated_and_mixed_case_headers() {
        let obs = read(&[
            ("X-RateLimit-Remaining", "10"),
            ("x-ratelimit-remaining", "8"),
            ("X-RATELIMIT-LIMIT", ""),
            ("x-ratelimit-reset", "20"),
            ("x-ratelimit-reset", "40"),
        ]);
        assert_eq!(obs.remaining, Some(8));
        assert_eq!(obs.limit, None);
        assert_eq!(obs.reset_at, Some(secs(40.0)));
        assert_eq!(
            problems(&obs),
            [
                ("x-ratelimit-limit", Unreadable),
                ("x-ratelimit-remaining", Multiple),
                ("x-ratelimit-reset", Multiple),
            ]
        );
        // Non-UTF-8 bytes are unreadable, not a panic.
        let mut map = HeaderMap::new();
        map.insert(
            "x-ratelimit-remaining",
            HeaderValue::from_bytes(b"\xff\xfe").unwrap(),
        );
        let obs = parse(&map, StatusCode::OK, now(), &ProviderProfile::generic());
        assert_eq!(obs.remaining, None);
        assert_eq!(problems(&obs), [("x-ratelimit-remaining", Unreadable)]);
    }

    #[test]
    fn legacy_ratelimit_headers_and_reset_after() {
        let obs = read(&[
            ("RateLimit-Limit", "100"),
            ("RateLimit-Remaining", "60"),
            ("RateLimit-Reset", "15"),
        ]);
        assert_eq!(
            (obs.limit, obs.remaining, obs.reset_at, obs.source),
            (Some(100), Some(60), Some(secs(15.0)), Some(LegacyRateLimit))
        );
        let obs = read(&[("x-ratelimit-reset-after", "1.25")]);
        assert_eq!(obs.reset_at, Some(secs(1.25)));
        // X-RateLimit wins over legacy, field by field.
        let obs = read(&[
            ("x-ratelimit-remaining", "5"),
            ("ratelimit-remaining", "6"),
            ("ratelimit-limit", "10"),
        ]);
        assert_eq!(
            (obs.limit, obs.remaining, obs.source),
            (Some(10), Some(5), Some(XRateLimit))
        );
    }

    #[test]
    fn retry_after_seconds_and_http_dates() {
        let cases: &[RetryCase] = &[
            ("120", Some(secs(120.0)), &[]),
            (" 120 ", Some(secs(120.0)), &[]),
            ("1.5", Some(secs(1.5)), &[]),
            ("Thu, 01 Jan 2026 00:02:00 GMT", Some(secs(120.0)), &[]),
            ("Thursday, 01-Jan-26 00:02:00 GMT", Some(secs(120.0)), &[]),
            ("Thu Jan  1 00:02:00 2026", Some(secs(120.0)), &[]),
            ("Wed, 31 Dec 2025 23:00:00 GMT", Some(now()), &[InThePast]),
            ("0", Some(now()), &[]),
            ("-5", Some(now()), &[Negative]),
            ("99999", Some(secs(3600.0)), &[Clamped]),
            ("5, 7", Some(secs(7.0)), &[Multiple]),
            ("soon", None, &[NotNumeric]),
            ("Thu, 01 Jan 2026 00:02:00", None, &[NotNumeric]),
        ];
        for (value, want, want_problems) in cases {
            let obs = read(&[("Retry-After", value)]);
            assert_eq!(obs.retry_after, *want, "{value:?}");
            assert_eq!(obs.not_before, *want, "{value:?}");
            let got: Vec<Problem> = obs.diagnostics.iter().map(|d| d.problem).collect();
            assert_eq!(got, *want_problems, "{value:?}");
        }
        let obs = read(&[("retry-after", &epoch(90))]);
        assert_eq!(obs.retry_after, Some(secs(90.0)));
        assert_eq!(problems(&obs), [("retry-after", ReadAsEpoch)]);
    }

    #[test]
    fn retry_after_beats_everything_even_outside_rejections() {
        let reset = epoch(600);
        let obs = read_with(
            &[
                ("retry-after", "10"),
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            429,
            &crate::providers::provider("github")
                .expect("github")
                .rate_limit_profile(),
        );
        assert!(obs.rejected);
        assert_eq!(obs.not_before, Some(secs(10.0)));
        let obs = read_with(&[("retry-after", "10")], 503, &ProviderProfile::generic());
        assert!(!obs.rejected);
        assert_eq!(obs.not_before, Some(secs(10.0)));
    }

    #[test]
    fn rejections() {
        let github = crate::providers::provider("github")
            .expect("github")
            .rate_limit_profile();
        let reset = epoch(600);
        // Primary limit exhausted: wait for the reset.
        let obs = read_with(
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", &reset),
            ],
            403,
            &github,
        );
        assert!(obs.rejected);
        assert_eq!(obs.not_before, Some(secs(600.0)));
        // Secondary limit with Retry-After.
        let obs = read_with(&[("retry-after", "30")], 403, &github);
        assert!(obs.rejected);
        assert_eq!(obs.not_before, Some(secs(30.0)));
        // Secondary limit recognised by its body: 60 s default.
        let body = br#"{"message":"You have exceeded a Secondary Rate Limit."}"#;
        let obs = parse_with_body(
            &HeaderMap::new(),
            StatusCode::FORBIDDEN,
            body,
            now(),
            &github,
        );
        assert!(obs.rejected);
        assert_eq!(obs.not_before, Some(secs(60.0)));
        // A plain 403 is a permission problem, not a rate limit.
        let obs = read_with(&[("x-ratelimit-remaining", "10")], 403, &github);
        assert!(!obs.rejected);
        assert_eq!(obs.not_before, None);
        // A bare 429 waits the profile's rejection wait.
        let obs = read_with(&[], 429, &ProviderProfile::generic());
        assert!(obs.rejected);
        assert_eq!(obs.not_before, Some(secs(5.0)));
        // Exhausted but not rejected: no request before the reset.
        let obs = read_with(
            &[("ratelimit-remaining", "0"), ("ratelimit-reset", "12")],
            200,
            &github,
        );
        assert!(!obs.rejected);
        assert_eq!(obs.not_before, Some(secs(12.0)));
    }

    #[test]
    fn ietf_current_draft() {
        let obs = read(&[
            ("RateLimit-Policy", r#""default";q=100;w=60"#),
            ("RateLimit", r#""default";r=50;t=30"#),
        ]);
        assert_eq!(obs.limit, Some(100));
        assert_eq!(obs.remaining, Some(50));
        assert_eq!(obs.reset_at, Some(secs(30.0)));
        assert_eq!(
            obs.policy,
            Some(QuotaPolicy {
                name: Some("default".into()),
                quota: 100,
                window: Some(Duration::from_secs(60)),
            })
        );
        assert_eq!(obs.scope.as_deref(), Some("default"));
        assert_eq!(obs.source, Some(Ietf));
        assert!(obs.diagnostics.is_empty(), "{:?}", obs.diagnostics);
    }

    #[test]
    fn ietf_several_policies_pick_the_fewest_remaining() {
        let obs = read(&[
            (
                "ratelimit-policy",
                r#""burst";q=10;w=1, "daily";q=1000;w=86400;qu="requests""#,
            ),
            ("ratelimit", r#""burst";r=5;t=1"#),
            ("ratelimit", r#""daily";r=2;t=3600"#),
        ]);
        assert_eq!(
            (obs.limit, obs.remaining, obs.reset_at),
            (Some(1000), Some(2), Some(secs(3600.0)))
        );
        assert_eq!(obs.scope.as_deref(), Some("daily"));
        // Tokens for names; a policy alone gives the limit.
        let obs = read(&[("ratelimit-policy", "burst;q=10;w=1, day;q=100;w=86400")]);
        assert_eq!((obs.limit, obs.remaining), (Some(100), None));
    }

    #[test]
    fn ietf_older_drafts() {
        let obs = read(&[
            ("RateLimit", "limit=100, remaining=50, reset=30"),
            ("RateLimit-Policy", "100;w=60"),
        ]);
        assert_eq!(
            (obs.limit, obs.remaining, obs.reset_at, obs.source),
            (Some(100), Some(50), Some(secs(30.0)), Some(IetfDictionary))
        );
        assert_eq!(
            obs.policy.and_then(|p| p.window),
            Some(Duration::from_secs(60))
        );
        let obs = read(&[("RateLimit", "limit=100, remaining=-2, reset=-1")]);
        assert_eq!((obs.remaining, obs.reset_at), (Some(0), Some(now())));
    }

    #[test]
    fn ietf_beats_x_ratelimit() {
        let obs = read(&[
            ("ratelimit", r#""default";r=3;t=10"#),
            ("x-ratelimit-remaining", "40"),
            ("x-ratelimit-limit", "50"),
        ]);
        // Remaining from IETF; the limit only X-RateLimit supplies.
        assert_eq!((obs.limit, obs.remaining), (Some(50), Some(3)));
        assert_eq!(obs.source, Some(Ietf));
    }

    #[test]
    fn ietf_malformed() {
        for (policy, limit) in [
            (r#""default";q=100;w=60"#, Some(100)),
            (r#""default";q=0"#, None),
            (r#""default";q=-1"#, None),
            ("((((", None),
            ("", None),
        ] {
            for ratelimit in [
                r#""default";r=abc"#,
                r#""default";t=5"#,
                "garbage(((",
                r#""unterminated"#,
                "limit=x, remaining=?1",
            ] {
                let obs = read(&[("ratelimit-policy", policy), ("ratelimit", ratelimit)]);
                assert_eq!(obs.remaining, None, "{policy} / {ratelimit}");
                assert_eq!(obs.limit, limit, "{policy} / {ratelimit}");
                assert!(!obs.diagnostics.is_empty(), "{policy} / {ratelimit}");
            }
        }
    }

    #[test]
    fn shopify_call_limit() {
        // Shopify REST: a 40-request bucket leaking 2 per second.
        let shopify = ProviderProfile {
            rejection_wait: Duration::from_secs(2),
            ..ProviderProfile::seeded(40, Duration::from_secs(20))
        };
        let obs = read_with(&[("X-Shopify-Shop-Api-Call-Limit", "32/40")], 200, &shopify);
        assert_eq!((obs.limit, obs.remaining), (Some(40), Some(8)));
        assert_eq!(obs.source, Some(Provider));
        assert_eq!(
            obs.policy.and_then(|p| p.window),
            Some(Duration::from_secs(20))
        );
        let obs = read_with(&[("x-shopify-shop-api-call-limit", "45/40")], 429, &shopify);
        assert_eq!(obs.remaining, Some(0));
        assert!(obs.rejected);
        assert_eq!(obs.not_before, Some(secs(2.0)));
        for bad in ["x/40", "40", "3/0", "/", "-1/-1"] {
            let obs = read_with(&[("x-shopify-shop-api-call-limit", bad)], 200, &shopify);
            assert_eq!(obs.remaining, None, "{bad}");
            assert!(!obs.diagnostics.is_empty(), "{bad}");
        }
    }

    #[test]
    fn hubspot_interval_and_daily() {
        let hubspot = ProviderProfile {
            default_window: Some(Duration::from_secs(10)),
            ..ProviderProfile::seeded(100, Duration::from_secs(10))
        };
        let interval = [
            ("X-HubSpot-RateLimit-Max", "100"),
            ("X-HubSpot-RateLimit-Remaining", "97"),
            ("X-HubSpot-RateLimit-Interval-Milliseconds", "10000"),
        ];
        let obs = read_with(&interval, 200, &hubspot);
        assert_eq!((obs.limit, obs.remaining), (Some(100), Some(97)));
        assert_eq!(
            obs.policy,
            Some(QuotaPolicy {
                name: Some("interval".into()),
                quota: 100,
                window: Some(Duration::from_secs(10)),
            })
        );
        let mut both = interval.to_vec();
        both.extend([
            ("X-HubSpot-RateLimit-Daily", "250000"),
            ("X-HubSpot-RateLimit-Daily-Remaining", "12"),
        ]);
        let obs = read_with(&both, 200, &hubspot);
        assert_eq!((obs.limit, obs.remaining), (Some(250000), Some(12)));
        assert_eq!(obs.policy.and_then(|p| p.name).as_deref(), Some("daily"));
    }

    /// OpenAI's headers, as its profile declares them.
    fn openai_like() -> ProviderProfile {
        let quota = |counts: &str| crate::ratelimit::HeaderQuota {
            limit: Some(format!("x-ratelimit-limit-{counts}")),
            remaining: Some(format!("x-ratelimit-remaining-{counts}")),
            reset: Some(format!("x-ratelimit-reset-{counts}")),
            counts: counts.to_owned(),
            usage: None,
            key: None,
        };
        ProviderProfile {
            header_quotas: vec![quota("requests"), quota("tokens")],
            ..ProviderProfile::generic()
        }
    }

    #[test]
    fn declared_header_quotas_read_requests_and_block_on_exhausted_tokens() {
        fn quotas<'a>(requests: &'a str, tokens: &'a str) -> [(&'a str, &'a str); 6] {
            [
                ("x-ratelimit-limit-requests", "500"),
                ("x-ratelimit-remaining-requests", requests),
                ("x-ratelimit-reset-requests", "1m0.5s"),
                ("x-ratelimit-limit-tokens", "30000"),
                ("x-ratelimit-remaining-tokens", tokens),
                ("x-ratelimit-reset-tokens", "6m0s"),
            ]
        }
        let profile = openai_like();
        let obs = read_with(&quotas("499", "29000"), 200, &profile);
        assert_eq!(
            (obs.limit, obs.remaining, obs.reset_at, obs.source),
            (Some(500), Some(499), Some(secs(60.5)), Some(Provider))
        );
        assert_eq!(obs.not_before, None, "tokens remain: no wait");
        assert!(obs.diagnostics.is_empty(), "{:?}", obs.diagnostics);

        let tokens_out = read_with(&quotas("499", "0"), 200, &profile);
        assert_eq!(
            tokens_out.remaining,
            Some(499),
            "the bucket counts requests"
        );
        assert_eq!(tokens_out.not_before, Some(secs(360.0)));

        let rejected = read_with(&quotas("499", "0"), 429, &profile);
        assert!(rejected.rejected);
        assert_eq!(
            rejected.not_before,
            Some(secs(360.0)),
            "waits for the tokens"
        );
        let requests_out = read_with(&quotas("0", "29000"), 429, &profile);
        assert_eq!(requests_out.not_before, Some(secs(60.5)));
        let mut both = quotas("0", "0").to_vec();
        both.push(("retry-after", "2"));
        assert_eq!(
            read_with(&both, 429, &profile).not_before,
            Some(secs(2.0)),
            "Retry-After wins"
        );
        // Without the declaration these headers say nothing.
        assert_eq!(
            read(&quotas("0", "0")).remaining,
            None,
            "not a standard family"
        );
    }

    #[test]
    fn a_usage_header_states_used_of_limit_under_its_key() {
        let profile = ProviderProfile {
            header_quotas: vec![crate::ratelimit::HeaderQuota {
                limit: None,
                remaining: None,
                reset: None,
                counts: "requests".into(),
                usage: Some("sforce-limit-info".into()),
                key: Some("api-usage".into()),
            }],
            ..ProviderProfile::generic()
        };
        let obs = read_with(
            &[("sforce-limit-info", "api-usage=25/15000")],
            200,
            &profile,
        );
        assert_eq!(
            (obs.limit, obs.remaining, obs.source),
            (Some(15000), Some(14975), Some(Provider))
        );
        assert!(obs.diagnostics.is_empty(), "{:?}", obs.diagnostics);
        let other_entries = read_with(
            &[(
                "sforce-limit-info",
                "per-app-api-usage=9/5000(appName=sample), api-usage=18/15000",
            )],
            200,
            &profile,
        );
        assert_eq!(other_entries.remaining, Some(14982));
        let spent = read_with(
            &[("sforce-limit-info", "api-usage=15003/15000")],
            403,
            &profile,
        );
        assert_eq!(spent.remaining, Some(0));
        assert!(
            spent.rejected,
            "a 403 with the allowance spent is a rejection"
        );
        let odd = read_with(&[("sforce-limit-info", "api-usage=lots")], 200, &profile);
        assert_eq!(odd.remaining, None);
        assert_eq!(odd.diagnostics.len(), 1, "{:?}", odd.diagnostics);
    }

    #[test]
    fn unit_durations_read_as_resets() {
        for (text, seconds) in [
            ("1s", 1.0),
            ("6m0s", 360.0),
            ("20ms", 0.02),
            ("1h2m3.5s", 3723.5),
            ("7.66s", 7.66),
            ("250us", 0.00025),
        ] {
            assert_eq!(unit_seconds(text), Some(seconds), "{text}");
        }
        for text in ["", "s", "5", "5x", "1m-2s", "m5"] {
            assert_eq!(unit_seconds(text), None, "{text}");
        }
        let obs = read_with(
            &[
                ("x-ratelimit-remaining-requests", "3"),
                ("x-ratelimit-reset-requests", "soon"),
            ],
            200,
            &openai_like(),
        );
        assert_eq!(obs.remaining, Some(3));
        assert_eq!(problems(&obs), [("x-ratelimit-reset-requests", NotNumeric)]);
    }

    #[test]
    fn an_implied_scope_names_the_bucket() {
        let tier2 = ProviderProfile {
            implied_scope: Some("tier2".into()),
            ..ProviderProfile::generic()
        };
        let obs = read_with(&[("retry-after", "30")], 429, &tier2);
        assert_eq!(obs.scope.as_deref(), Some("tier2"));
        assert!(obs.rejected);
        assert_eq!(obs.not_before, Some(secs(30.0)));
    }

    #[test]
    fn date_header_corrects_clock_skew() {
        // The server's clock is 10 s ahead of ours.
        let reset = epoch(40);
        let obs = read(&[
            ("date", "Thu, 01 Jan 2026 00:00:10 GMT"),
            ("x-ratelimit-reset", &reset),
            ("retry-after", "Thu, 01 Jan 2026 00:00:40 GMT"),
        ]);
        assert_eq!(obs.reset_at, Some(secs(30.0)));
        assert_eq!(obs.retry_after, Some(secs(30.0)));
        // A second of difference is noise; deltas are never corrected.
        let obs = read(&[
            ("date", "Thu, 01 Jan 2026 00:00:01 GMT"),
            ("x-ratelimit-reset", &reset),
        ]);
        assert_eq!(obs.reset_at, Some(secs(40.0)));
    }

    #[test]
    fn secondary_body_detection() {
        assert!(is_secondary_rate_limit_body(
            b"You have exceeded a secondary rate limit"
        ));
        assert!(!is_secondary_rate_limit_body(b"rate limit"));
        assert!(!is_secondary_rate_limit_body(b""));
    }
}
