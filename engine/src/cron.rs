//! Schedule arithmetic for `on.cron` entries: slot instants in the entry's IANA time zone
//! (croner walks the wall clock, chrono-tz resolves it), and which slots one claim of a due
//! schedule fires under its catch-up policy. Pure: the caller passes "now"; instants are epoch
//! milliseconds, like every stored timestamp.
//!
//! Daylight saving time, as croner resolves it (pinned by the tests below): a fixed-time entry
//! (`30 2 * * *`) whose wall time falls into a spring-forward gap fires once, at the first
//! instant after the gap; in a fall-back overlap it fires once, at the earlier instant. An
//! interval entry (`0 * * * *`, `*/15 * * * *`) fires on every real instant its wall times
//! name, so its fires stay evenly spaced in real time across both transitions.

use chrono::{DateTime, SecondsFormat, TimeZone};
use chrono_tz::Tz;
use croner::Cron;
use stepwise_workflows::{CatchUp, CronTrigger};

/// A slot fired this late or later counts as missed: `catch_up: none` drops it. The scheduler
/// ticks far more often, so only downtime (or a stalled process) makes a slot this late.
pub const MISFIRE_THRESHOLD_MS: i64 = 60_000;

/// At most this many slots of one schedule are fired in one transaction; the rest stay due
/// for the next claim, so catching up is bounded work per transaction.
pub const SLOTS_PER_CLAIM: usize = 32;

/// A parsed cron entry in its time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    cron: Cron,
    zone: Tz,
}

impl Schedule {
    /// The entry's expression and zone, parsed as the validator accepted them.
    pub fn of(trigger: &CronTrigger) -> Result<Self, String> {
        let cron = trigger
            .cron()
            .map_err(|error| format!("invalid cron schedule `{}`: {error}", trigger.schedule))?;
        let zone = trigger
            .time_zone()
            .map_err(|error| format!("unknown time zone: {error}"))?;
        Ok(Self { cron, zone })
    }

    /// `expression` in the zone named `zone`, as stored in a schedule row.
    pub fn parse(expression: &str, zone: &str) -> Result<Self, String> {
        Self::of(&CronTrigger {
            schedule: expression.to_owned(),
            timezone: Some(zone.to_owned()),
            catch_up: CatchUp::default(),
            max_catch_up: None,
            overlap: Default::default(),
        })
    }

    fn local(&self, instant_ms: i64) -> Option<DateTime<Tz>> {
        self.zone.timestamp_millis_opt(instant_ms).single()
    }

    /// The first slot strictly after `instant_ms`; `None` when the expression never matches
    /// again (within croner's search horizon).
    pub fn next_after(&self, instant_ms: i64) -> Option<i64> {
        let start = self.local(instant_ms)?;
        self.cron
            .find_next_occurrence(&start, false)
            .ok()
            .map(|slot| slot.timestamp_millis())
    }

    /// The last slot at or before `instant_ms`.
    pub fn latest_at_or_before(&self, instant_ms: i64) -> Option<i64> {
        let start = self.local(instant_ms)?;
        self.cron
            .find_previous_occurrence(&start, true)
            .ok()
            .map(|slot| slot.timestamp_millis())
    }

    /// The slots in `[from_ms, to_ms]`, most recent first, at most `limit` of them.
    pub fn recent(&self, from_ms: i64, to_ms: i64, limit: usize) -> Vec<i64> {
        let mut slots = Vec::new();
        let mut cursor = self.latest_at_or_before(to_ms);
        while let Some(slot) = cursor.filter(|slot| *slot >= from_ms) {
            if slots.len() == limit {
                break;
            }
            slots.push(slot);
            cursor = self.local(slot).and_then(|local| {
                self.cron
                    .find_previous_occurrence(&local, false)
                    .ok()
                    .map(|previous| previous.timestamp_millis())
            });
        }
        slots
    }

    /// The slot as RFC 3339 in the schedule's zone (`2026-03-29T03:00:00+02:00`).
    pub fn format(&self, slot_ms: i64) -> String {
        self.local(slot_ms)
            .map(|local| local.to_rfc3339_opts(SecondsFormat::Secs, true))
            .unwrap_or_default()
    }
}

/// What one claim of a schedule does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Slots to fire now, oldest first.
    pub fire: Vec<i64>,
    /// The schedule's next fire time afterwards; `None` when it never fires again.
    pub next_fire_at: Option<i64>,
}

/// The slots a schedule whose earliest unfired slot is `next_fire_at` fires at `now_ms`:
/// - `none`: only the most recent due slot, and only when it is not yet missed
///   ([`MISFIRE_THRESHOLD_MS`]); older ones are dropped;
/// - `latest`: the most recent due slot, however late; older ones are dropped;
/// - `all`: every due slot, oldest first, but only the `max_catch_up` most recent ones, and
///   at most [`SLOTS_PER_CLAIM`] per claim (the rest stay due).
pub fn plan(
    schedule: &Schedule,
    catch_up: CatchUp,
    max_catch_up: u32,
    next_fire_at: i64,
    now_ms: i64,
) -> Plan {
    if next_fire_at > now_ms {
        return Plan {
            fire: Vec::new(),
            next_fire_at: Some(next_fire_at),
        };
    }
    let latest = schedule
        .latest_at_or_before(now_ms)
        .filter(|latest| *latest >= next_fire_at);
    let after_now = schedule.next_after(now_ms);
    match catch_up {
        CatchUp::None => Plan {
            fire: latest
                .filter(|latest| now_ms - latest < MISFIRE_THRESHOLD_MS)
                .into_iter()
                .collect(),
            next_fire_at: after_now,
        },
        CatchUp::Latest => Plan {
            fire: latest.into_iter().collect(),
            next_fire_at: after_now,
        },
        CatchUp::All => {
            let mut due = schedule.recent(next_fire_at, now_ms, max_catch_up as usize);
            due.reverse();
            if due.len() <= SLOTS_PER_CLAIM {
                return Plan {
                    fire: due,
                    next_fire_at: after_now,
                };
            }
            let rest = due.split_off(SLOTS_PER_CLAIM);
            Plan {
                fire: due,
                next_fire_at: rest.first().copied(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parses a local wall time in `zone` (unambiguous ones only).
    fn at(zone: &str, local: &str) -> i64 {
        let tz: Tz = zone.parse().unwrap();
        let naive = chrono::NaiveDateTime::parse_from_str(local, "%Y-%m-%d %H:%M:%S").unwrap();
        tz.from_local_datetime(&naive)
            .single()
            .unwrap()
            .timestamp_millis()
    }

    /// Every slot in `(from, to]`, walking forward, as local RFC 3339.
    fn forward(schedule: &Schedule, from: i64, to: i64) -> Vec<i64> {
        let mut slots = Vec::new();
        let mut cursor = schedule.next_after(from);
        while let Some(slot) = cursor.filter(|slot| *slot <= to) {
            slots.push(slot);
            cursor = schedule.next_after(slot);
        }
        slots
    }

    /// The slots of `expression` in `zone` between two local times, checked to be the same
    /// walking forward and backward, formatted in the zone.
    fn slots(expression: &str, zone: &str, from: &str, to: &str) -> Vec<String> {
        let schedule = Schedule::parse(expression, zone).unwrap();
        let (from, to) = (at(zone, from), at(zone, to));
        let walked = forward(&schedule, from, to);
        let mut backward = schedule.recent(from + 1, to, usize::MAX);
        backward.reverse();
        assert_eq!(
            walked, backward,
            "{expression} in {zone}: forward != backward"
        );
        walked.iter().map(|slot| schedule.format(*slot)).collect()
    }

    fn strings(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Consecutive slots are exactly `step_ms` apart in real time: nothing lost, nothing doubled.
    fn evenly_spaced(expression: &str, zone: &str, from: &str, to: &str, step_ms: i64) {
        let schedule = Schedule::parse(expression, zone).unwrap();
        let walked = forward(&schedule, at(zone, from), at(zone, to));
        assert!(walked.len() > 4);
        for pair in walked.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                step_ms,
                "{expression} in {zone}: {} -> {}",
                schedule.format(pair[0]),
                schedule.format(pair[1])
            );
        }
    }

    #[test]
    fn berlin_spring_forward_fixed_time_fires_once_after_the_gap() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        assert_eq!(
            slots(
                "30 2 * * *",
                "Europe/Berlin",
                "2026-03-27 12:00:00",
                "2026-03-31 12:00:00"
            ),
            strings(&[
                "2026-03-28T02:30:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-30T02:30:00+02:00",
                "2026-03-31T02:30:00+02:00",
            ])
        );
    }

    #[test]
    fn berlin_fall_back_fixed_time_fires_once_at_the_earlier_instant() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:30 happens twice.
        assert_eq!(
            slots(
                "30 2 * * *",
                "Europe/Berlin",
                "2026-10-23 12:00:00",
                "2026-10-27 12:00:00"
            ),
            strings(&[
                "2026-10-24T02:30:00+02:00",
                "2026-10-25T02:30:00+02:00",
                "2026-10-26T02:30:00+01:00",
                "2026-10-27T02:30:00+01:00",
            ])
        );
    }

    #[test]
    fn new_york_spring_forward_fixed_time_fires_once_after_the_gap() {
        // 2026-03-08: 02:00 EST jumps to 03:00 EDT.
        assert_eq!(
            slots(
                "30 2 * * *",
                "America/New_York",
                "2026-03-06 12:00:00",
                "2026-03-10 12:00:00"
            ),
            strings(&[
                "2026-03-07T02:30:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-09T02:30:00-04:00",
                "2026-03-10T02:30:00-04:00",
            ])
        );
    }

    #[test]
    fn new_york_fall_back_fixed_time_fires_once_per_day() {
        // 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens twice, 02:30 once.
        assert_eq!(
            slots(
                "30 2 * * *",
                "America/New_York",
                "2026-10-30 12:00:00",
                "2026-11-03 12:00:00"
            ),
            strings(&[
                "2026-10-31T02:30:00-04:00",
                "2026-11-01T02:30:00-05:00",
                "2026-11-02T02:30:00-05:00",
                "2026-11-03T02:30:00-05:00",
            ])
        );
        assert_eq!(
            slots(
                "30 1 * * *",
                "America/New_York",
                "2026-10-31 12:00:00",
                "2026-11-02 12:00:00"
            ),
            strings(&["2026-11-01T01:30:00-04:00", "2026-11-02T01:30:00-05:00"])
        );
    }

    #[test]
    fn hourly_across_transitions_fires_every_real_hour() {
        assert_eq!(
            slots(
                "0 * * * *",
                "Europe/Berlin",
                "2026-03-29 00:30:00",
                "2026-03-29 04:30:00"
            ),
            strings(&[
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00",
            ])
        );
        assert_eq!(
            slots(
                "0 * * * *",
                "Europe/Berlin",
                "2026-10-25 00:30:00",
                "2026-10-25 03:30:00"
            ),
            strings(&[
                "2026-10-25T01:00:00+02:00",
                "2026-10-25T02:00:00+02:00",
                "2026-10-25T02:00:00+01:00",
                "2026-10-25T03:00:00+01:00",
            ])
        );
        assert_eq!(
            slots(
                "0 * * * *",
                "America/New_York",
                "2026-11-01 00:30:00",
                "2026-11-01 02:30:00"
            ),
            strings(&[
                "2026-11-01T01:00:00-04:00",
                "2026-11-01T01:00:00-05:00",
                "2026-11-01T02:00:00-05:00",
            ])
        );
        const HOUR: i64 = 3_600_000;
        for (zone, from, to) in [
            (
                "Europe/Berlin",
                "2026-03-28 20:00:00",
                "2026-03-29 08:00:00",
            ),
            (
                "Europe/Berlin",
                "2026-10-24 20:00:00",
                "2026-10-25 08:00:00",
            ),
            (
                "America/New_York",
                "2026-03-07 20:00:00",
                "2026-03-08 08:00:00",
            ),
            (
                "America/New_York",
                "2026-10-31 20:00:00",
                "2026-11-01 08:00:00",
            ),
        ] {
            evenly_spaced("0 * * * *", zone, from, to, HOUR);
        }
    }

    #[test]
    fn quarter_hourly_across_transitions_fires_every_real_quarter_hour() {
        assert_eq!(
            slots(
                "*/15 * * * *",
                "America/New_York",
                "2026-03-08 01:40:00",
                "2026-03-08 03:20:00"
            ),
            strings(&[
                "2026-03-08T01:45:00-05:00",
                "2026-03-08T03:00:00-04:00",
                "2026-03-08T03:15:00-04:00",
            ])
        );
        const QUARTER: i64 = 900_000;
        for (zone, from, to) in [
            (
                "Europe/Berlin",
                "2026-03-28 22:00:00",
                "2026-03-29 06:00:00",
            ),
            (
                "Europe/Berlin",
                "2026-10-24 22:00:00",
                "2026-10-25 06:00:00",
            ),
            (
                "America/New_York",
                "2026-03-07 22:00:00",
                "2026-03-08 06:00:00",
            ),
            (
                "America/New_York",
                "2026-10-31 22:00:00",
                "2026-11-01 06:00:00",
            ),
        ] {
            evenly_spaced("*/15 * * * *", zone, from, to, QUARTER);
        }
    }

    #[test]
    fn every_fixed_hour_fires_once_on_transition_days() {
        // Each of 24 daily entries fires exactly once on each transition day (midnight is outside
        // the half-open window).
        for (zone, day) in [
            ("Europe/Berlin", "2026-03-29"),
            ("Europe/Berlin", "2026-10-25"),
            ("America/New_York", "2026-03-08"),
            ("America/New_York", "2026-11-01"),
        ] {
            for hour in 0..24 {
                let fires = slots(
                    &format!("0 {hour} * * *"),
                    zone,
                    &format!("{day} 00:00:00"),
                    &format!("{day} 23:59:59"),
                );
                let expected = usize::from(hour != 0);
                assert_eq!(fires.len(), expected, "{zone} {day} {hour}:00: {fires:?}");
            }
        }
    }

    const MINUTE: i64 = 60_000;

    fn minutely() -> Schedule {
        Schedule::parse("* * * * *", "UTC").unwrap()
    }

    #[test]
    fn a_schedule_not_yet_due_fires_nothing() {
        let start = at("UTC", "2026-11-30 10:00:00");
        let plan = plan(&minutely(), CatchUp::All, 100, start + MINUTE, start);
        assert_eq!(plan.fire, Vec::<i64>::new());
        assert_eq!(plan.next_fire_at, Some(start + MINUTE));
    }

    #[test]
    fn catch_up_policies_after_an_hour_of_downtime() {
        let next = at("UTC", "2026-11-30 10:00:00");
        let now = next + 60 * MINUTE + 500;
        let schedule = minutely();
        // none: the slot of this minute is on time; the 60 before it are dropped.
        let none = plan(&schedule, CatchUp::None, 100, next, now);
        assert_eq!(none.fire, vec![next + 60 * MINUTE]);
        assert_eq!(none.next_fire_at, Some(next + 61 * MINUTE));
        // latest: the most recent slot only.
        let latest = plan(&schedule, CatchUp::Latest, 100, next, now);
        assert_eq!(latest.fire, vec![next + 60 * MINUTE]);
        // all: every one of the 61 slots, in claims of 32.
        let first = plan(&schedule, CatchUp::All, 100, next, now);
        assert_eq!(first.fire.len(), SLOTS_PER_CLAIM);
        assert_eq!(first.fire[0], next);
        let resume = first.next_fire_at.unwrap();
        assert_eq!(resume, next + 32 * MINUTE);
        let second = plan(&schedule, CatchUp::All, 100, resume, now);
        assert_eq!(second.fire.len(), 29);
        assert_eq!(second.fire.last(), Some(&(next + 60 * MINUTE)));
        assert_eq!(second.next_fire_at, Some(next + 61 * MINUTE));
        // all, bounded: only the 10 most recent.
        let bounded = plan(&schedule, CatchUp::All, 10, next, now);
        assert_eq!(
            bounded.fire,
            (51..=60).map(|m| next + m * MINUTE).collect::<Vec<_>>()
        );
    }

    #[test]
    fn none_drops_a_slot_that_is_already_missed() {
        let hourly = Schedule::parse("0 * * * *", "UTC").unwrap();
        let next = at("UTC", "2026-11-30 10:00:00");
        let late = plan(&hourly, CatchUp::None, 100, next, next + 2 * MINUTE);
        assert_eq!(late.fire, Vec::<i64>::new());
        assert_eq!(late.next_fire_at, Some(next + 60 * MINUTE));
        let latest = plan(&hourly, CatchUp::Latest, 100, next, next + 2 * MINUTE);
        assert_eq!(latest.fire, vec![next]);
    }
}
