//! Times as people read them, in UTC, worked out without a date library:
//! the time axis's labels, and the timestamps of the trader's history (on
//! the page and in its CSV files).

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

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS` (UTC).
pub fn utc_time(ms: u64) -> String {
    let (y, m, d) = civil_date(ms / 86_400_000);
    let s = ms / 1000 % 86_400;
    format!(
        "{y}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Milliseconds since the epoch in RFC 3339, UTC, to the millisecond.
pub fn rfc3339(ms: u64) -> String {
    format!("{}.{:03}Z", utc_time(ms).replacen(' ', "T", 1), ms % 1000)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc_time(0), "1970-01-01 00:00:00");
        assert_eq!(utc_time(1_700_000_000_123), "2023-11-14 22:13:20");
        assert_eq!(utc_time(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(rfc3339(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
        assert_eq!(rfc3339(5), "1970-01-01T00:00:00.005Z");
    }
}
