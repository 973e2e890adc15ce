//! The time axis's labels, in UTC, worked out without a date library.

use crate::candles::Interval;

/// Time labels: `HH:MM` within a day, `MM-DD` for daily candles (UTC).
pub fn time_label(ms: f64, interval: Interval) -> String {
    let ms = ms.max(0.0) as u64;
    if interval == Interval::D1 {
        let (_, m, d) = civil_date(ms / 86_400_000);
        format!("{m:02}-{d:02}")
    } else {
        let minutes = ms / 60_000 % 1440;
        format!("{:02}:{:02}", minutes / 60, minutes % 60)
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_date(days: u64) -> (i64, u32, u32) {
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}
