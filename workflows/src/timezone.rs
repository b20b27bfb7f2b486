//! Time zone names without a time zone database.
//!
//! The workspace has no tz database crate (chrono-tz / jiff), so this is a shape check: the
//! IANA areas, `Etc/...`, and `UTC`. It catches `Berlin`, `CET+1` and `europe/berlin`, not
//! `Europe/Berln`; the scheduler's real lookup is the final word.

/// The top-level areas of the IANA database, plus the legacy `US/...`-style groups.
const AREAS: &[&str] = &[
    "Africa",
    "America",
    "Antarctica",
    "Arctic",
    "Asia",
    "Atlantic",
    "Australia",
    "Brazil",
    "Canada",
    "Chile",
    "Etc",
    "Europe",
    "Indian",
    "Mexico",
    "Pacific",
    "US",
];

/// Names outside the areas that are valid zones (the legacy POSIX-style ones included).
const PLAIN: &[&str] = &[
    "UTC", "GMT", "CET", "EET", "MET", "WET", "EST", "MST", "HST", "EST5EDT", "CST6CDT", "MST7MDT",
    "PST8PDT",
];

/// Whether `name` has the shape of an IANA zone name.
pub(crate) fn is_plausible(name: &str) -> bool {
    if PLAIN.contains(&name) {
        return true;
    }
    let mut parts = name.split('/');
    let area_ok = parts.next().is_some_and(|area| AREAS.contains(&area));
    let rest: Vec<&str> = parts.collect();
    area_ok
        && !rest.is_empty()
        && rest.iter().all(|part| {
            part.chars().next().is_some_and(|c| c.is_ascii_uppercase())
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_iana_shapes_only() {
        for good in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
            "America/Port-au-Prince",
            "CET",
        ] {
            assert!(is_plausible(good), "{good}");
        }
        for bad in [
            "Berlin",
            "europe/berlin",
            "Europe/",
            "Mars/Olympus",
            "CET+1",
            "",
        ] {
            assert!(!is_plausible(bad), "{bad}");
        }
    }
}
