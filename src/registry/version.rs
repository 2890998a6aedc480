//! List versions: `E * 10^15 + YYYYMMDD * 10^7 + n`, so a version says on which (UTC) day the list
//! was last changed and still leaves room for ten million changes a day, yet never goes
//! backwards, even when the clock does.
//!
//! `E` is the *epoch*, 0 until an operator supersedes a version that came from a clock far ahead
//! (`mcadmin publish --force`, [`superseding_version`]). Because the epoch is the number's high
//! part, it compares before the date everywhere a version is compared (segments, records, the
//! handles' change check), and a superseding version is simply a larger number: hosts that
//! installed a version dated years ahead install the fix by the ordinary "newer wins" rule, and
//! versions never go backwards. Epoch 0 versions are exactly the versions of earlier releases.
#![forbid(unsafe_code)]

use std::time::{SystemTime, UNIX_EPOCH};

/// Updates a day before the date part would have to move on.
pub const UPDATES_PER_DAY: u64 = 10_000_000;

/// Largest version the published word can carry (it holds `version << 1 | slot`).
pub const MAX_VERSION: u64 = u64::MAX >> 1;

/// The span of one epoch: every date-derived part (at most `99991231 * 10^7 + 9999999`) is below
/// it, so `version / EPOCH_SPAN` is the epoch and `version % EPOCH_SPAN` the dated part.
pub const EPOCH_SPAN: u64 = 1_000_000_000_000_000;

// Every dated part fits below an epoch's span.
const _: () = assert!(99_991_231 * UPDATES_PER_DAY + UPDATES_PER_DAY - 1 < EPOCH_SPAN);

/// The epoch of a version (0 for every version an earlier release wrote).
pub fn epoch_of(version: u64) -> u64 {
    version / EPOCH_SPAN
}

/// The dated part of a version, `YYYYMMDD * 10^7 + n`, without its epoch.
pub fn dated_part(version: u64) -> u64 {
    version % EPOCH_SPAN
}

/// `YYYYMMDD * 10^7` for the UTC day of `now_unix_secs`.
pub fn day_base(now_unix_secs: u64) -> u64 {
    let (y, m, d) = civil_date(now_unix_secs / 86_400);
    (y * 10_000 + m * 100 + d) * UPDATES_PER_DAY
}

/// The version after `previous`, in `previous`'s epoch: `max(E * 10^15 + YYYYMMDD * 10^7 for the
/// UTC day of now_unix_secs, previous + 1)`. A `previous` from the future (a clock set back, or a
/// busy day past ten million updates) still gets `+ 1`. Saturates at `u64::MAX`; the writer
/// refuses anything above [`MAX_VERSION`].
pub fn next_version(previous: u64, now_unix_secs: u64) -> u64 {
    let epoch_base = epoch_of(previous) * EPOCH_SPAN;
    epoch_base
        .saturating_add(day_base(now_unix_secs))
        .max(previous.saturating_add(1))
}

/// The version that supersedes `newest` whatever its date: the first version of today (UTC, at
/// `now_unix_secs`) in the epoch after `newest`'s. `None` when that is beyond [`MAX_VERSION`]
/// (after 9223 supersessions).
pub fn superseding_version(newest: u64, now_unix_secs: u64) -> Option<u64> {
    let version = (epoch_of(newest) + 1)
        .checked_mul(EPOCH_SPAN)?
        .checked_add(day_base(now_unix_secs))?;
    (version <= MAX_VERSION).then_some(version)
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
pub fn civil_date(days_since_epoch: u64) -> (u64, u64, u64) {
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
    fn epochs_compare_before_dates() {
        let now = 19_782 * DAY; // 2024-02-29
        let future = 20_991_231 * UPDATES_PER_DAY + 7; // 2099-12-31, epoch 0
        let fix = superseding_version(future, now).unwrap();
        assert_eq!(fix, EPOCH_SPAN + 20_240_229 * UPDATES_PER_DAY);
        assert!(
            fix > future,
            "a larger number: installed by the newer-wins rule"
        );
        assert_eq!(
            (epoch_of(fix), dated_part(fix)),
            (1, 20_240_229 * UPDATES_PER_DAY)
        );
        // Later changes stay in the new epoch and follow the calendar again.
        assert_eq!(next_version(fix, now), fix + 1);
        assert_eq!(
            next_version(fix, now + DAY),
            EPOCH_SPAN + 20_240_301 * UPDATES_PER_DAY
        );
        // Superseding again moves on an epoch; the last epoch that fits is refused beyond.
        assert_eq!(epoch_of(superseding_version(fix, now).unwrap()), 2);
        let last = (MAX_VERSION / EPOCH_SPAN) * EPOCH_SPAN;
        assert!(superseding_version(last - EPOCH_SPAN, now).is_some());
        assert_eq!(superseding_version(last, now), None);
    }

    #[test]
    fn system_clock() {
        let v = next_version_now(0);
        assert!(v >= 20_240_101 * UPDATES_PER_DAY, "{v}");
        assert!(v <= MAX_VERSION);
        assert_eq!(next_version_now(v + 10), v + 11);
    }
}
