use super::calendar::{civil_from_days, days_from_civil, days_in_month, is_leap_year, Moment};
use super::cron::Values;
use super::*;

/// Unix milliseconds of a UTC minute (the calendar code is anchored by `the_calendar_matches_known_dates`).
fn utc(year: i64, month: u32, day: u32, hour: u32, minute: u32) -> u64 {
    let moment = Moment {
        year,
        month,
        day,
        hour,
        minute,
    };
    moment.to_minutes().expect("after 1970") * MS_PER_MINUTE
}

fn cron(text: &str) -> Cron {
    Cron::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn values(bits: Values) -> Vec<u32> {
    (0..64).filter(|&v| bits.contains(v)).collect()
}

fn window(text: &str, duration_ms: u64, min_nodes: u32) -> Window {
    Window {
        cron: cron(text),
        duration_ms,
        min_nodes,
    }
}

const HOUR_MS: u64 = 3_600_000;
const DAY_MS: u64 = 24 * HOUR_MS;

/// A small deterministic generator (xorshift64) for randomized checks; the node autoscaler's
/// tests use it too.
pub(crate) struct TestRng(pub(crate) u64);

impl TestRng {
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }

    fn pick<'a>(&mut self, options: &[&'a str]) -> &'a str {
        options[self.below(options.len() as u64) as usize]
    }
}

#[test]
fn the_calendar_matches_known_dates() {
    assert_eq!(utc(1970, 1, 1, 0, 0), 0);
    assert_eq!(utc(2000, 3, 1, 0, 0), 951_868_800_000);
    assert_eq!(utc(2024, 1, 1, 0, 0), 1_704_067_200_000);
    assert_eq!(utc(2024, 2, 29, 0, 0), 1_709_164_800_000);
    assert_eq!(utc(2100, 3, 1, 0, 0), 4_107_542_400_000);
    assert_eq!(utc(2104, 2, 29, 0, 0), 4_233_686_400_000);
    let weekday = |ms: u64| Moment::from_minutes(ms / MS_PER_MINUTE).weekday();
    assert_eq!(weekday(0), 4, "1970-01-01 was a Thursday");
    assert_eq!(weekday(utc(2000, 1, 1, 12, 0)), 6, "a Saturday");
    assert_eq!(weekday(utc(2024, 1, 1, 23, 59)), 1, "a Monday");
    // Every day from 1970 into the 2500s converts both ways and is a real date.
    let mut previous = (1969, 12, 31);
    for days in 0..200_000 {
        let (year, month, day) = civil_from_days(days);
        assert_eq!(days_from_civil(year, month, day), days);
        assert!((1..=days_in_month(year, month)).contains(&day));
        assert!((year, month, day) > previous);
        previous = (year, month, day);
    }
    assert!(is_leap_year(2000) && is_leap_year(2024) && !is_leap_year(2100) && !is_leap_year(2023));
}

#[test]
fn each_syntax_gives_its_values() {
    let c = cron("0-30/10 8-18/5 */10 */3 1-5");
    assert_eq!(values(c.minutes), [0, 10, 20, 30]);
    assert_eq!(values(c.hours), [8, 13, 18]);
    assert_eq!(values(c.days_of_month), [1, 11, 21, 31]);
    assert_eq!(values(c.months), [1, 4, 7, 10]);
    assert_eq!(values(c.days_of_week), [1, 2, 3, 4, 5]);
    let c = cron("5,10-12,59 * * * *");
    assert_eq!(values(c.minutes), [5, 10, 11, 12, 59]);
    assert_eq!(values(c.hours), (0..24).collect::<Vec<_>>());
    assert_eq!(values(c.days_of_month), (1..32).collect::<Vec<_>>());
    assert_eq!(values(c.months), (1..13).collect::<Vec<_>>());
    assert_eq!(values(c.days_of_week), (0..7).collect::<Vec<_>>());
    // A step larger than the range keeps its first value.
    assert_eq!(values(cron("*/90 */24 * * *").minutes), [0]);
    assert_eq!(values(cron("*/90 */24 * * *").hours), [0]);
    // Day-of-week: 7 is Sunday, like 0.
    assert_eq!(values(cron("* * * * 7").days_of_week), [0]);
    assert_eq!(values(cron("* * * * 5-7").days_of_week), [0, 5, 6]);
    assert_eq!(values(cron("* * * * 0,7").days_of_week), [0]);
    assert_eq!(values(cron("* * * * */2").days_of_week), [0, 2, 4, 6]);
}

#[test]
fn text_is_kept_with_single_spaces_and_round_trips() {
    let c = cron("  0   8 *\t* 1-5 ");
    assert_eq!(c.as_str(), "0 8 * * 1-5");
    assert_eq!(c.to_string(), "0 8 * * 1-5");
    assert_eq!("0 8 * * 1-5".parse::<Cron>().unwrap(), c);
    let json = serde_json::to_string(&c).unwrap();
    assert_eq!(json, "\"0 8 * * 1-5\"");
    assert_eq!(serde_json::from_str::<Cron>(&json).unwrap(), c);
    let err = serde_json::from_str::<Cron>("\"0 25 * * *\"").unwrap_err().to_string();
    assert!(err.contains("cron field hour: bad token \"25\""), "{err}");
}

#[test]
fn wrong_field_counts_are_refused() {
    for (text, found) in [("", 0), ("0 8 * *", 4), ("0 8 * * 1 2", 6), ("daily", 1)] {
        let err = Cron::parse(text).unwrap_err();
        assert_eq!(
            err,
            CronError::FieldCount {
                text: text.into(),
                found
            }
        );
        assert_eq!(err.field(), None);
        assert!(err.to_string().contains("minute hour day-of-month month day-of-week"));
    }
}

#[test]
fn bad_tokens_are_named_with_their_field() {
    use CronField::*;
    let cases = [
        ("60 * * * *", Minute, "60", "60 is outside 0-59"),
        ("99999999999 * * * *", Minute, "99999999999", "outside 0-59"),
        ("* 24 * * *", Hour, "24", "24 is outside 0-23"),
        ("* * 0 * *", DayOfMonth, "0", "0 is outside 1-31"),
        ("* * 32 * *", DayOfMonth, "32", "outside 1-31"),
        ("* * * 0 *", Month, "0", "outside 1-12"),
        ("* * * 13 *", Month, "13", "outside 1-12"),
        ("* * * * 8", DayOfWeek, "8", "outside 0-7"),
        ("* * * * mon", DayOfWeek, "mon", "\"mon\" is not a number"),
        ("a * * * *", Minute, "a", "not a number"),
        ("+5 * * * *", Minute, "+5", "not a number"),
        ("1- * * * *", Minute, "1-", "a number is missing"),
        ("-1 * * * *", Minute, "-1", "a number is missing"),
        ("1-2-3 * * * *", Minute, "1-2-3", "\"2-3\" is not a number"),
        ("*/0 * * * *", Minute, "*/0", "at least 1"),
        ("* */x * * *", Hour, "*/x", "the step \"x\" is not a whole number"),
        ("* */ * * *", Hour, "*/", "not a whole number"),
        ("5/15 * * * *", Minute, "5/15", "write 5-59/15"),
        ("10-5 * * * *", Minute, "10-5", "runs backwards"),
        ("1,,2 * * * *", Minute, "", "empty list item"),
        ("0 0 1, * *", DayOfMonth, "", "empty list item"),
        ("0 0 30 2 *", DayOfMonth, "30", "never matches"),
        ("0 0 31 4,6,9,11 *", DayOfMonth, "31", "never matches"),
        ("0 0 31 2 */2", DayOfMonth, "31", "never matches"),
    ];
    for (text, field, token, reason) in cases {
        let err = Cron::parse(text).unwrap_err();
        let CronError::Token {
            field: f,
            token: t,
            reason: r,
        } = &err
        else {
            panic!("{text}: {err}");
        };
        assert_eq!((*f, t.as_str()), (field, token), "{text}: {err}");
        assert!(r.contains(reason), "{text}: {err}");
        assert_eq!(err.field(), Some(field));
        assert!(
            err.to_string().starts_with(&format!("cron field {field}: bad token")),
            "{err}"
        );
    }
    // Possible in some month or by the other day field: accepted.
    for text in ["0 0 29 2 *", "0 0 30 2 1", "0 0 31 1-2 *", "0 0 30,31 2,4 *"] {
        cron(text);
    }
}

#[test]
fn the_day_fields_follow_vixie_cron() {
    // Both restricted: either matches. 2024-01-05 is a Friday, 2024-09-13 a Friday the 13th.
    let c = cron("0 0 13 * 5");
    assert!(c.matches(utc(2024, 9, 13, 0, 0)));
    assert!(c.matches(utc(2024, 1, 13, 0, 0)), "a Saturday the 13th");
    assert!(c.matches(utc(2024, 1, 5, 0, 0)), "a Friday the 5th");
    assert!(!c.matches(utc(2024, 1, 6, 0, 0)));
    // A day field starting with `*` is unrestricted: both must match.
    let c = cron("0 0 */2 * 1");
    assert!(c.matches(utc(2024, 1, 1, 0, 0)), "Monday the 1st");
    assert!(c.matches(utc(2024, 1, 15, 0, 0)), "Monday the 15th");
    assert!(!c.matches(utc(2024, 1, 8, 0, 0)), "Monday the 8th");
    assert!(!c.matches(utc(2024, 1, 3, 0, 0)), "Wednesday the 3rd");
    let c = cron("0 0 1 * *");
    assert!(c.matches(utc(2024, 2, 1, 0, 0)) && !c.matches(utc(2024, 2, 2, 0, 0)));
    // 0 and 7 are both Sunday (2024-01-07).
    for text in ["30 6 * * 0", "30 6 * * 7"] {
        let c = cron(text);
        assert!(c.matches(utc(2024, 1, 7, 6, 30)), "{text}");
        assert!(c.matches(utc(2024, 1, 7, 6, 30) + 59_999), "{text}: the whole minute");
        assert!(!c.matches(utc(2024, 1, 7, 6, 31)), "{text}");
        assert!(!c.matches(utc(2024, 1, 6, 6, 30)), "{text}");
    }
}

#[test]
fn next_start_is_strictly_after() {
    let weekdays = cron("0 8 * * 1-5");
    // Friday 2024-01-05 08:00 exactly: the next is Monday's.
    assert_eq!(
        next_start(&weekdays, utc(2024, 1, 5, 8, 0)),
        Some(utc(2024, 1, 8, 8, 0))
    );
    assert_eq!(
        next_start(&weekdays, utc(2024, 1, 5, 8, 0) - 1),
        Some(utc(2024, 1, 5, 8, 0))
    );
    assert_eq!(next_start(&cron("* * * * *"), 0), Some(MS_PER_MINUTE));
    assert_eq!(next_start(&cron("* * * * *"), 59_999), Some(MS_PER_MINUTE));
    assert_eq!(next_start(&cron("* * * * *"), u64::MAX - 1), None);
}

#[test]
fn next_start_across_month_and_year_ends_and_leap_days() {
    let cases = [
        // The 31st skips the shorter months.
        ("0 0 31 * *", utc(2024, 1, 31, 0, 0), utc(2024, 3, 31, 0, 0)),
        ("0 0 31 * *", utc(2024, 4, 1, 0, 0), utc(2024, 5, 31, 0, 0)),
        ("0 0 30 * *", utc(2023, 1, 31, 0, 0), utc(2023, 3, 30, 0, 0)),
        // The leap day: every four years, but not in 2100.
        ("0 12 29 2 *", utc(2023, 3, 1, 0, 0), utc(2024, 2, 29, 12, 0)),
        ("0 12 29 2 *", utc(2024, 2, 29, 12, 0), utc(2028, 2, 29, 12, 0)),
        ("0 12 29 2 *", utc(2096, 3, 1, 0, 0), utc(2104, 2, 29, 12, 0)),
        ("0 0 28-31 2 *", utc(2023, 2, 28, 0, 0), utc(2024, 2, 28, 0, 0)),
        ("0 0 28-31 2 *", utc(2024, 2, 28, 0, 0), utc(2024, 2, 29, 0, 0)),
        // The last minute of the year, and the year after.
        ("59 23 31 12 *", utc(2024, 6, 1, 0, 0), utc(2024, 12, 31, 23, 59)),
        ("59 23 31 12 *", utc(2024, 12, 31, 23, 59), utc(2025, 12, 31, 23, 59)),
        ("0 0 1 1 *", utc(2024, 12, 31, 23, 59), utc(2025, 1, 1, 0, 0)),
        // Steps and ranges together.
        ("0-30/10 8-18/5 * * *", utc(2024, 1, 1, 8, 0), utc(2024, 1, 1, 8, 10)),
        ("0-30/10 8-18/5 * * *", utc(2024, 1, 1, 8, 30), utc(2024, 1, 1, 13, 0)),
        ("0-30/10 8-18/5 * * *", utc(2024, 1, 1, 18, 30), utc(2024, 1, 2, 8, 0)),
        // Both day fields restricted: either; one starting with `*`: both.
        ("15 */6 1-7 * 1", utc(2024, 1, 1, 18, 15), utc(2024, 1, 2, 0, 15)),
        ("15 */6 1-7 * 1", utc(2024, 1, 7, 18, 15), utc(2024, 1, 8, 0, 15)),
        ("15 */6 */7 * 1", utc(2024, 1, 1, 18, 15), utc(2024, 1, 8, 0, 15)),
        ("15 */6 */7 * 1", utc(2024, 1, 29, 18, 15), utc(2024, 4, 1, 0, 15)),
        ("0 0 1 */3 *", utc(2024, 1, 1, 0, 0), utc(2024, 4, 1, 0, 0)),
        // A Friday the 13th or any 13th or any Friday.
        ("0 9 13 * 5", utc(2024, 1, 5, 9, 0), utc(2024, 1, 12, 9, 0)),
    ];
    for (text, after, expected) in cases {
        let got = next_start(&cron(text), after);
        assert_eq!(
            got.map(format_utc_minute),
            Some(format_utc_minute(expected)),
            "{text} after {}",
            format_utc_minute(after)
        );
        assert_eq!(got, Some(expected));
    }
}

#[test]
fn searches_agree_with_a_minute_by_minute_walk() {
    let minutes = ["*", "0", "59", "*/15", "10-20", "5,35", "0-30/10", "*/7"];
    let hours = ["*", "0", "23", "8-18", "*/6", "9,17", "1-22/3"];
    let days_of_month = ["*", "1", "31", "15", "1-7", "*/2", "28-31", "29", "30"];
    let months = ["*", "2", "1-6", "*/3", "12", "2,3"];
    let days_of_week = ["*", "0", "7", "1-5", "6,0", "*/2", "5"];
    let mut rng = TestRng(0x9e37_79b9_7f4a_7c15);
    let span_minutes = 3 * MINUTES_PER_DAY;
    let (from, to) = (utc(2023, 1, 1, 0, 0), utc(2026, 1, 1, 0, 0));
    let mut checked = 0;
    while checked < 150 {
        let text = format!(
            "{} {} {} {} {}",
            rng.pick(&minutes),
            rng.pick(&hours),
            rng.pick(&days_of_month),
            rng.pick(&months),
            rng.pick(&days_of_week)
        );
        let Ok(c) = Cron::parse(&text) else {
            continue;
        };
        checked += 1;
        let at = from + rng.below(to - from);
        let floor = at.saturating_sub(span_minutes * MS_PER_MINUTE);
        let walked_back = (0..=span_minutes)
            .map(|i| (at / MS_PER_MINUTE - i) * MS_PER_MINUTE)
            .find(|&t| t >= floor && c.matches(t));
        assert_eq!(c.latest_between(floor, at), walked_back, "{text} at {at}");
        let walked_forward = (1..=span_minutes)
            .map(|i| (at / MS_PER_MINUTE + i) * MS_PER_MINUTE)
            .find(|&t| c.matches(t));
        match walked_forward {
            Some(t) => assert_eq!(next_start(&c, at), Some(t), "{text} after {at}"),
            None => {
                let next = next_start(&c, at).expect("a parsed expression matches again");
                assert!(next > at + span_minutes * MS_PER_MINUTE && c.matches(next), "{text}");
            }
        }
    }
}

#[test]
fn a_window_is_active_from_its_start_for_its_duration() {
    let w = window("0 8 * * 1-5", 10 * HOUR_MS, 6);
    let windows = [w.clone()];
    // Monday 2024-01-01.
    assert_eq!(active_min(&windows, utc(2024, 1, 1, 8, 0) - 1), None);
    let active = active_min(&windows, utc(2024, 1, 1, 8, 0)).expect("active at its start");
    assert_eq!(
        active,
        ActiveWindow {
            index: 0,
            min_nodes: 6,
            start_ms: utc(2024, 1, 1, 8, 0),
            end_ms: utc(2024, 1, 1, 18, 0),
        }
    );
    assert_eq!(active_min(&windows, utc(2024, 1, 1, 18, 0) - 1), Some(active));
    assert_eq!(
        active_min(&windows, utc(2024, 1, 1, 18, 0)),
        None,
        "the end is exclusive"
    );
    assert_eq!(active_min(&windows, utc(2024, 1, 6, 9, 0)), None, "a Saturday");
    assert_eq!(active_min(&[], utc(2024, 1, 1, 9, 0)), None);
}

#[test]
fn the_largest_active_floor_wins_and_the_first_among_equals() {
    let windows = [
        window("0 8 * * *", 10 * HOUR_MS, 4),
        window("0 12 * * *", 2 * HOUR_MS, 8),
        window("30 11 * * *", 3 * HOUR_MS, 8),
    ];
    let at = |h, m| active_min(&windows, utc(2024, 1, 1, h, m)).map(|a| (a.index, a.min_nodes));
    assert_eq!(at(7, 59), None);
    assert_eq!(at(9, 0), Some((0, 4)));
    assert_eq!(at(11, 30), Some((2, 8)));
    assert_eq!(at(12, 30), Some((1, 8)), "equal floors: the first listed");
    assert_eq!(at(14, 0), Some((2, 8)));
    assert_eq!(at(14, 30), Some((0, 4)));
    assert_eq!(at(18, 0), None);
}

#[test]
fn windows_cross_midnight_month_and_year_ends() {
    let new_year = [window("0 22 31 12 *", 4 * HOUR_MS, 3)];
    assert!(active_min(&new_year, utc(2025, 1, 1, 1, 59)).is_some());
    assert!(active_min(&new_year, utc(2025, 1, 1, 2, 0)).is_none());
    // Two days from Feb 28 20:00: to Mar 1 in a leap year, to Mar 2 otherwise.
    let february = [window("0 20 28 2 *", 2 * DAY_MS, 5)];
    assert!(active_min(&february, utc(2024, 3, 1, 19, 59)).is_some());
    assert!(active_min(&february, utc(2024, 3, 1, 20, 0)).is_none());
    assert!(active_min(&february, utc(2023, 3, 2, 19, 59)).is_some());
    assert!(active_min(&february, utc(2023, 3, 2, 20, 0)).is_none());
}

#[test]
fn long_windows_and_windows_longer_than_their_period() {
    // Yearly, for 300 days: 2024-01-01 + 300 days is 2024-10-27.
    let season = [window("0 0 1 1 *", 300 * DAY_MS, 7)];
    let a = active_min(&season, utc(2024, 10, 26, 23, 59)).expect("active");
    assert_eq!(a.start_ms, utc(2024, 1, 1, 0, 0));
    assert!(active_min(&season, utc(2024, 10, 27, 0, 0)).is_none());
    // The leap day, for the longest duration: one year and a day later it ends.
    let leap = [window("0 0 29 2 *", MAX_WINDOW_MS, 2)];
    assert!(active_min(&leap, utc(2025, 2, 28, 23, 59)).is_some());
    assert!(active_min(&leap, utc(2025, 3, 1, 0, 0)).is_none());
    assert!(active_min(&leap, utc(2027, 6, 1, 0, 0)).is_none());
    // Hourly for two hours: always active, from the latest start.
    let overlapping = [window("0 * * * *", 2 * HOUR_MS, 1)];
    let a = active_min(&overlapping, utc(2024, 5, 5, 5, 5)).expect("active");
    assert_eq!(a.start_ms, utc(2024, 5, 5, 5, 0));
    // Near the epoch there is no earlier day to look at.
    assert!(active_min(&[window("0 0 * * *", HOUR_MS, 1)], 10).is_some());
    assert!(active_min(&[window("0 1 * * *", HOUR_MS, 1)], 10).is_none());
}

#[test]
fn window_durations_are_checked_and_a_zero_duration_is_never_active() {
    for bad in [0, MIN_WINDOW_MS - 1, MAX_WINDOW_MS + 1] {
        let (field, reason) = window("* * * * *", bad, 1).validate().unwrap_err();
        assert_eq!(field, "duration_ms");
        assert!(reason.contains(&bad.to_string()), "{reason}");
    }
    for good in [MIN_WINDOW_MS, MAX_WINDOW_MS] {
        assert_eq!(window("* * * * *", good, 1).validate(), Ok(()));
    }
    assert_eq!(window("* * * * *", 0, 1).active_start(utc(2024, 1, 1, 0, 0)), None);
}

#[test]
fn windows_read_from_yaml() {
    let w: Window = serde_yaml_ng::from_str("cron: \"0 8 * * 1-5\"\nduration_ms: 36000000\nmin_nodes: 6\n").unwrap();
    assert_eq!(w, window("0 8 * * 1-5", 10 * HOUR_MS, 6));
    let err = serde_yaml_ng::from_str::<Window>("cron: \"0 25 * * *\"\nduration_ms: 60000\nmin_nodes: 1\n")
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cron field hour: bad token \"25\": 25 is outside 0-23"),
        "{err}"
    );
    let err = serde_yaml_ng::from_str::<Window>("cron: \"* * * * *\"\nduration_ms: 60000\nmin_nodes: 1\nmax: 2\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown field `max`"), "{err}");
}

#[test]
fn formats_a_minute_in_utc() {
    assert_eq!(
        format_utc_minute(utc(2024, 2, 29, 8, 5) + 59_999),
        "2024-02-29 08:05 UTC"
    );
    assert_eq!(format_utc_minute(0), "1970-01-01 00:00 UTC");
}

#[test]
fn shorthands_stand_for_their_fields_and_keep_their_text() {
    for (short, fields) in [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ] {
        let parsed = cron(short);
        assert_eq!(parsed.as_str(), short);
        let long = cron(fields);
        let at = utc(2024, 3, 3, 5, 7);
        assert_eq!(next_start(&parsed, at), next_start(&long, at), "{short}");
    }
    let err = Cron::parse("@sometimes").unwrap_err();
    assert!(matches!(err, CronError::Shorthand { .. }), "{err}");
    assert!(err.to_string().contains("@daily"), "{err}");
}

#[test]
fn the_due_tick_is_the_latest_since_the_last_fired_and_never_before_the_schedule() {
    let every_minute = [cron("* * * * *")];
    let since = utc(2024, 1, 1, 10, 0) + 30_000;
    // Nothing before the schedule existed; the first tick after it is due once its minute begins.
    assert_eq!(due_tick(&every_minute, since, None, since + 1_000), None);
    let first = utc(2024, 1, 1, 10, 1);
    assert_eq!(due_tick(&every_minute, since, None, first), Some(first));
    // Fired: not due again within the same minute, due at the next.
    assert_eq!(due_tick(&every_minute, since, Some(first), first + 59_999), None);
    assert_eq!(
        due_tick(&every_minute, since, Some(first), first + 60_000),
        Some(first + 60_000)
    );
    // Ten minutes missed: only the latest fires.
    let later = first + 10 * 60_000 + 5_000;
    assert_eq!(
        due_tick(&every_minute, since, Some(first), later),
        Some(first + 10 * 60_000)
    );
    // Several crons: the latest of any.
    let two = [cron("0 * * * *"), cron("30 * * * *")];
    assert_eq!(
        due_tick(&two, 0, None, utc(2024, 1, 1, 10, 45)),
        Some(utc(2024, 1, 1, 10, 30))
    );
    assert_eq!(next_tick(&two, utc(2024, 1, 1, 10, 45)), Some(utc(2024, 1, 1, 11, 0)));
    assert_eq!(next_tick(&[], 0), None);
    assert_eq!(due_tick(&[], 0, None, u64::MAX / 2), None);
}
