//! Turning HTTP status codes and `Retry-After` into [`ActionError`] classes, shared by every
//! action that calls an HTTP API (429/5xx are transient, other 4xx are permanent; ARCHITECTURE.md, `integrations/`).

use std::time::Duration;

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::ActionError;

/// Whether a response with `status` is worth retrying: 408, 425, 429 and every 5xx except
/// 501 Not Implemented and 505 HTTP Version Not Supported, which no retry can fix.
pub fn is_retryable_status(status: StatusCode) -> bool {
    match status.as_u16() {
        408 | 425 | 429 => true,
        501 | 505 => false,
        code => (500..600).contains(&code),
    }
}

/// The error for a response status, or `None` for 1xx/2xx/3xx. A retryable error carries the
/// response's `Retry-After` delay so the engine waits at least that long.
pub fn error_for_status(
    status: StatusCode,
    headers: &HeaderMap,
    message: impl Into<String>,
) -> Option<ActionError> {
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let message = message.into();
    Some(if is_retryable_status(status) {
        ActionError::Retryable {
            message,
            retry_after: retry_after(headers, Utc::now()),
        }
    } else {
        ActionError::Permanent(message)
    })
}

/// The delay a `Retry-After` header asks for, relative to `now`; `None` when absent or invalid.
pub fn retry_after(headers: &HeaderMap, now: DateTime<Utc>) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?;
    parse_retry_after(value, now)
}

/// Parses a `Retry-After` value (RFC 9110 §10.2.3): delay seconds, or an HTTP date, which
/// yields the time left until then (zero when it has passed).
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Parses the three HTTP-date forms RFC 9110 §5.6.7 requires recipients to accept.
pub fn parse_http_date(value: &str) -> Option<DateTime<Utc>> {
    const FORMATS: [&str; 3] = [
        "%a, %d %b %Y %H:%M:%S GMT", // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
        "%A, %d-%b-%y %H:%M:%S GMT", // RFC 850:     Sunday, 06-Nov-94 08:49:37 GMT
        "%a %b %e %H:%M:%S %Y",      // asctime:     Sun Nov  6 08:49:37 1994
    ];
    FORMATS.iter().find_map(|format| {
        NaiveDateTime::parse_from_str(value, format)
            .ok()
            .map(|naive| naive.and_utc())
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid test date")
    }

    #[test]
    fn retry_after_accepts_seconds_and_all_http_date_forms() {
        let now = at(1994, 11, 6, 8, 49, 30);
        let seven = Some(Duration::from_secs(7));
        assert_eq!(parse_retry_after("7", now), seven);
        assert_eq!(parse_retry_after(" 7 ", now), seven);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now),
            seven
        );
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:37 GMT", now),
            seven
        );
        assert_eq!(parse_retry_after("Sun Nov  6 08:49:37 1994", now), seven);
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("-1", now), None);
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn statuses_are_classified() {
        let headers = HeaderMap::new();
        let class = |code: u16| {
            let status = StatusCode::from_u16(code).expect("valid test status");
            error_for_status(status, &headers, "x").map(|error| error.class())
        };
        for code in [200, 204, 301, 304] {
            assert_eq!(class(code), None, "{code}");
        }
        for code in [408, 429, 500, 502, 503, 504] {
            assert_eq!(class(code), Some("retryable"), "{code}");
        }
        for code in [400, 401, 403, 404, 409, 422, 501] {
            assert_eq!(class(code), Some("permanent"), "{code}");
        }
    }
}
