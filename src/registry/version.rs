//! List versions: `YYYYMMDD * 10^7 + n`, so a version says on which (UTC) day the list was last
//! changed and still leaves room for ten million changes a day, yet never goes backwards, even
//! when the clock does.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// Updates a day before the date part would have to move on.
pub const UPDATES_PER_DAY: u64 = 10_000_000;

/// Largest version the published word can carry (it holds `version << 1 | slot`).
pub const MAX_VERSION: u64 = u64::MAX >> 1;

/// The version after `previous`: `max(YYYYMMDD * 10^7 for the UTC day of now_unix_secs,
/// previous + 1)`. A `previous` from the future (a clock set back, or a busy day past ten
/// million updates) still gets `+ 1`. Saturates at `u64::MAX`; the writer refuses anything
/// above [`MAX_VERSION`].
pub fn next_version(previous: u64, now_unix_secs: u64) -> u64 {
    let (y, m, d) = civil_date(now_unix_secs / 86_400);
    let day_base = (y * 10_000 + m * 100 + d) * UPDATES_PER_DAY;
    day_base.max(previous.saturating_add(1))
}

/// [`next_version`] at the current time of the system clock (a clock before 1970 counts as 1970).
pub fn next_version_now(previous: u64) -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    next_version(previous, now)
}

/// The proleptic Gregorian (year, month, day) of a day counted from 1970-01-01. The usual
/// era-based conversion: shift the year to start on March 1 so the leap day comes last, then
/// split into 400-year eras of 146097 days.
fn civil_date(days_since_epoch: u64) -> (u64, u64, u64) {
    let z = days_since_epoch + 719_468; // days since 0000-03-01
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153; // 0 = March
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    #[test]
    fn calendar() {
        assert_eq!(civil_date(0), (1970, 1, 1));
        assert_eq!(civil_date(59), (1970, 3, 1));
        assert_eq!(civil_date(10_956), (1999, 12, 31));
        assert_eq!(civil_date(10_957), (2000, 1, 1));
        assert_eq!(civil_date(11_016), (2000, 2, 29));
        assert_eq!(civil_date(12_717), (2004, 10, 26));
        assert_eq!(civil_date(19_782), (2024, 2, 29));
        assert_eq!(civil_date(47_541), (2100, 3, 1)); // 2100 is not a leap year
        assert_eq!(civil_date(47_540), (2100, 2, 28));
    }

    #[test]
    fn date_derived() {
        // 2004-10-26 12:34:56 UTC, the day of the mailing-list post.
        let now = 12_717 * DAY + 45_296;
        assert_eq!(next_version(0, now), 20_041_026 * UPDATES_PER_DAY);
        assert_eq!(next_version(0, now), 200_410_260_000_000);
        // Midnight belongs to the new day, the second before to the old one.
        assert_eq!(next_version(0, 12_718 * DAY), 20_041_027 * UPDATES_PER_DAY);
        assert_eq!(
            next_version(0, 12_718 * DAY - 1),
            20_041_026 * UPDATES_PER_DAY
        );
        // A version from an earlier day gives way to today's base.
        assert_eq!(
            next_version(20_041_025 * UPDATES_PER_DAY + 123, now),
            20_041_026 * UPDATES_PER_DAY
        );
    }

    #[test]
    fn monotonic_within_a_day() {
        let now = 19_782 * DAY + 3600;
        let mut v = 0;
        for i in 0..100_000u64 {
            let next = next_version(v, now + i % 7);
            assert!(next > v);
            v = next;
        }
        assert_eq!(v, 20_240_229 * UPDATES_PER_DAY + 99_999);
    }

    #[test]
    fn previous_from_the_future_still_increases() {
        let now = 19_782 * DAY;
        let future = 20_300_101 * UPDATES_PER_DAY + 5;
        assert_eq!(next_version(future, now), future + 1);
        // A day with more than ten million updates spills into the next day's numbers.
        let busy = 20_240_229 * UPDATES_PER_DAY + UPDATES_PER_DAY - 1;
        assert_eq!(next_version(busy, now), 20_240_230 * UPDATES_PER_DAY);
        assert_eq!(next_version(u64::MAX, now), u64::MAX);
    }

    #[test]
    fn system_clock() {
        let v = next_version_now(0);
        assert!(v >= 20_240_101 * UPDATES_PER_DAY, "{v}");
        assert!(v <= MAX_VERSION);
        assert_eq!(next_version_now(v + 10), v + 11);
    }
}
