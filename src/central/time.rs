//! RFC 3339 timestamps as the events carry them, to and from milliseconds since
//! the Unix epoch (what the store sorts and compares).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Why a timestamp is not RFC 3339.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RFC 3339 date-time (like 2025-01-31T12:00:00Z): {0}")]
pub struct TimeError(&'static str);

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM)` into Unix milliseconds.
pub fn parse_rfc3339_millis(text: &str) -> Result<i64, TimeError> {
    let b = text.as_bytes();
    if b.len() < 20 {
        return Err(TimeError("too short"));
    }
    let year = digits(b, 0, 4)?;
    expect(b, 4, b'-')?;
    let month = digits(b, 5, 2)?;
    expect(b, 7, b'-')?;
    let day = digits(b, 8, 2)?;
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(TimeError("expected 'T' between date and time"));
    }
    let hour = digits(b, 11, 2)?;
    expect(b, 13, b':')?;
    let minute = digits(b, 14, 2)?;
    expect(b, 16, b':')?;
    let second = digits(b, 17, 2)?;
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err(TimeError("no such date"));
    }
    if hour > 23 || minute > 59 || second > 60 {
        return Err(TimeError("no such time of day"));
    }
    let mut at = 19;
    let mut millis = 0;
    if b[at] == b'.' {
        at += 1;
        let start = at;
        while at < b.len() && b[at].is_ascii_digit() {
            if at - start < 3 {
                millis = millis * 10 + i64::from(b[at] - b'0');
            }
            at += 1;
        }
        if at == start {
            return Err(TimeError("empty fraction of a second"));
        }
        for _ in (at - start)..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(at) {
        Some(b'Z' | b'z') if at + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if at + 6 == b.len() => {
            let hours = digits(b, at + 1, 2)?;
            expect(b, at + 3, b':')?;
            let minutes = digits(b, at + 4, 2)?;
            if hours > 23 || minutes > 59 {
                return Err(TimeError("no such UTC offset"));
            }
            let total = hours * 60 + minutes;
            if *sign == b'-' { -total } else { total }
        }
        _ => return Err(TimeError("expected Z or a +HH:MM offset at the end")),
    };
    // A leap second counts as the last second of its minute.
    let second = second.min(59);
    let days = days_from_civil(year, month, day);
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// Formats Unix milliseconds as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_millis(millis: i64) -> String {
    let time = UNIX_EPOCH + Duration::from_millis(u64::try_from(millis).unwrap_or(0));
    humantime::format_rfc3339_millis(time).to_string()
}

/// The current time in Unix milliseconds.
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn digits(b: &[u8], at: usize, len: usize) -> Result<i64, TimeError> {
    let slice = b.get(at..at + len).ok_or(TimeError("too short"))?;
    slice.iter().try_fold(0i64, |acc, &c| {
        if c.is_ascii_digit() {
            Ok(acc * 10 + i64::from(c - b'0'))
        } else {
            Err(TimeError("expected a digit"))
        }
    })
}

fn expect(b: &[u8], at: usize, want: u8) -> Result<(), TimeError> {
    match b.get(at) {
        Some(&c) if c == want => Ok(()),
        _ => Err(TimeError("misplaced separator")),
    }
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's days_from_civil: days since 1970-01-01 in the proleptic Gregorian calendar.
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_agents_send() {
        let cases = [
            ("1970-01-01T00:00:00Z", Ok(0)),
            ("1970-01-01T00:00:01.5Z", Ok(1500)),
            ("2025-01-31T12:00:00.123Z", Ok(1_738_324_800_123)),
            ("2025-01-31T14:00:00.123+02:00", Ok(1_738_324_800_123)),
            ("2025-01-31T11:30:00.123456-00:30", Ok(1_738_324_800_123)),
            ("2024-02-29t00:00:00z", Ok(1_709_164_800_000)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_rfc3339_millis(text), want, "{text}");
        }
    }

    #[test]
    fn refuses_what_is_not_rfc3339() {
        for text in [
            "",
            "2025-01-31",
            "2025-01-31T12:00:00",
            "2025-02-30T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2025-01-31T24:00:00Z",
            "2025-01-31T12:00:00.Z",
            "2025-01-31T12:00:00+0200",
            "2025-01-31T12:00:00Zjunk",
            "yesterday at noon please",
        ] {
            assert!(parse_rfc3339_millis(text).is_err(), "{text}");
        }
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_millis(1_738_324_800_123), "2025-01-31T12:00:00.123Z");
        assert_eq!(format_millis(-5), "1970-01-01T00:00:00.000Z");
    }
}
