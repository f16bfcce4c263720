//! Civil dates of the proleptic Gregorian calendar in UTC, as days since the Unix epoch: the
//! arithmetic that cron schedules (fjord-decisions) and RFC 3339 timestamps on the wire
//! (fjord-openfaas) both stand on.

/// Days since 1970-01-01 of a proleptic Gregorian date. Counts years from March, so the leap
/// day ends a year, in eras of 400 years (146,097 days).
pub fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = i64::from((month + 9) % 12);
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    // 719,468 days from 0000-03-01 to 1970-01-01.
    era * 146_097 + day_of_era - 719_468
}

/// The inverse of [`days_from_civil`].
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let days = days + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days - era * 146_097;
    let year_of_era = (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = (day_of_year - (153 * month_from_march + 2) / 5 + 1) as u32;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    } as u32;
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

const MS_PER_DAY: u64 = 86_400_000;

/// `2024-02-29T08:00:05.123Z`: an instant in Unix milliseconds as an RFC 3339 timestamp in UTC,
/// with milliseconds when it has some.
pub fn format_rfc3339_ms(at_ms: u64) -> String {
    let days = (at_ms / MS_PER_DAY) as i64;
    let of_day = at_ms % MS_PER_DAY;
    let (year, month, day) = civil_from_days(days);
    let (hour, minute, second, millis) = (
        of_day / 3_600_000,
        of_day / 60_000 % 60,
        of_day / 1_000 % 60,
        of_day % 1_000,
    );
    let fraction = if millis == 0 {
        String::new()
    } else {
        format!(".{millis:03}")
    };
    format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}{fraction}Z")
}

/// An RFC 3339 timestamp (`2024-02-29T08:00:05Z`, `2024-02-29T09:00:05.5+01:00`) as Unix
/// milliseconds; digits of the fraction past milliseconds are dropped. An instant before the
/// epoch is refused.
pub fn parse_rfc3339_ms(text: &str) -> Result<u64, String> {
    let bad = || format!("{text:?} is not an RFC 3339 time; write for example 2024-02-29T08:00:05Z");
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err(bad());
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let digits = text.get(range).ok_or_else(bad)?;
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        digits.parse().map_err(|_| bad())
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    let (hour, minute, second) = (number(11..13)?, number(14..16)?, number(17..19)?);
    let days_in_month = match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        1..=12 => 31,
        _ => return Err(bad()),
    };
    if day == 0 || day > days_in_month || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let mut rest = &text[19..];
    let mut millis = 0u64;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let padded = format!("{:0<3}", &fraction[..digits.min(3)]);
        millis = padded.parse().map_err(|_| bad())?;
        rest = &fraction[digits..];
    }
    let offset_minutes: i64 = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return Err(bad()),
            };
            let offset = &rest[1..];
            if offset.len() != 5 || offset.as_bytes()[2] != b':' {
                return Err(bad());
            }
            let hours: i64 = offset[..2].parse().map_err(|_| bad())?;
            let minutes: i64 = offset[3..].parse().map_err(|_| bad())?;
            if hours > 23 || minutes > 59 {
                return Err(bad());
            }
            sign * (hours * 60 + minutes)
        }
    };
    let days = days_from_civil(i64::from(year), month, day);
    let seconds = days * 86_400 + i64::from(hour * 3_600 + minute * 60 + second.min(59)) - offset_minutes * 60;
    let ms = u64::try_from(seconds)
        .map_err(|_| format!("{text:?} is before 1970"))?
        .checked_mul(1_000)
        .ok_or_else(bad)?;
    Ok(ms + millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_through_rfc_3339() {
        for ms in [0, 1_709_193_605_000, 1_709_193_605_123, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Ok(ms), "{ms}");
        }
        assert_eq!(format_rfc3339_ms(1_709_193_605_000), "2024-02-29T08:00:05Z");
        assert_eq!(format_rfc3339_ms(1_709_193_605_120), "2024-02-29T08:00:05.120Z");
    }

    #[test]
    fn offsets_and_fractions_are_read() {
        assert_eq!(parse_rfc3339_ms("2024-02-29T09:00:05+01:00"), Ok(1_709_193_605_000));
        assert_eq!(parse_rfc3339_ms("2024-02-29T07:30:05-00:30"), Ok(1_709_193_605_000));
        assert_eq!(parse_rfc3339_ms("2024-02-29T08:00:05.5Z"), Ok(1_709_193_605_500));
        assert_eq!(
            parse_rfc3339_ms("2024-02-29T08:00:05.123456789Z"),
            Ok(1_709_193_605_123)
        );
    }

    #[test]
    fn malformed_times_are_refused_with_an_example() {
        for text in [
            "",
            "yesterday",
            "2024-02-30T00:00:00Z",
            "2023-02-29T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01T00:00:00",
            "2024-01-01T00:00:00.Z",
            "2024-01-01T00:00:00+1:00",
            "1969-12-31T23:59:59Z",
        ] {
            let error = parse_rfc3339_ms(text).unwrap_err();
            assert!(error.contains(&format!("{text:?}")), "{text}: {error}");
        }
    }
}
