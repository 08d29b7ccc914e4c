//! The `date` of TextRoom messages and announcements: `%FT%T%z` as Janus's `strftime` prints it
//! (`2026-11-23T20:22:18+0000`). We always print UTC, so the offset is `+0000`.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, formatted.
pub fn now() -> String {
    let secs = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    };
    format(secs)
}

/// Seconds since the Unix epoch, formatted in UTC.
pub fn format(unix_secs: i64) -> String {
    let days = unix_secs.div_euclid(86_400);
    let rem = unix_secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}+0000", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Proleptic Gregorian (year, month, day) of a day count since 1970-01-01 (H. Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days.saturating_add(719_468);
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365]
    let mp = (5 * doy + 2) / 153; // [0, 11], March-based
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = era.saturating_mul(400).saturating_add(yoe).saturating_add(i64::from(month <= 2));
    // Both are in range by construction (day 1..=31, month 1..=12).
    (year, month as u32, day as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(format(0), "1970-01-01T00:00:00+0000");
        assert_eq!(format(951_782_400), "2000-02-29T00:00:00+0000");
        assert_eq!(format(1_700_000_000), "2023-11-14T22:13:20+0000");
        assert_eq!(format(1_795_465_338), "2026-11-23T20:22:18+0000");
        assert_eq!(format(-1), "1969-12-31T23:59:59+0000");
        assert_eq!(format(4_107_542_400), "2100-03-01T00:00:00+0000");
    }

    #[test]
    fn every_day_round_trips() {
        // Walk 1600-01-01 .. 2400-01-01 and check the calendar advances one day at a time.
        let (mut y, mut m, mut d) = civil_from_days(-135_140);
        assert_eq!((y, m, d), (1600, 1, 1));
        for days in -135_139..157_054 {
            let next = civil_from_days(days);
            let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
            let len = match m {
                2 if leap => 29,
                2 => 28,
                4 | 6 | 9 | 11 => 30,
                _ => 31,
            };
            let expected = if d < len {
                (y, m, d + 1)
            } else if m < 12 {
                (y, m + 1, 1)
            } else {
                (y + 1, 1, 1)
            };
            assert_eq!(next, expected, "day {days}");
            (y, m, d) = next;
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        let _ = format(i64::MAX);
        let _ = format(i64::MIN);
        assert_eq!(now().len(), "2026-11-23T20:22:18+0000".len());
    }
}
