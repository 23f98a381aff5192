//! Dates for the commands language's `$(FORMATTED_TIME pattern)`: Java's
//! `SimpleDateFormat` patterns (`yyyy-MM-dd HH:mm:ss.SSS`, `EEE, d MMM yyyy`, quoted
//! text in `'...'`), formatted in UTC and in English; and the calendar arithmetic (days
//! from and to a civil date, weekdays) that `crate::cron` shares.
//!
//! The letters, as Java's, their form set by how many there are: `G` (`AD`); `y` (`yy`:
//! two digits, otherwise the whole year); `M`/`L` (`M`, `MM`: the number; `MMM`: `Jan`;
//! `MMMM` and more: `January`); `D` day of the year, `d` of the month, `F` day of the week
//! in the month (1 for days 1–7); `E` (`EEE` and fewer: `Mon`; `EEEE` and more:
//! `Monday`); `u` (1 = Monday … 7 = Sunday); `a` (`AM`/`PM`); `H` 0–23, `k` 1–24, `K`
//! 0–11, `h` 1–12; `m`, `s`, `S` (milliseconds); `z` (`UTC`), `Z` (`+0000`), `X` (`Z`).
//! Week numbers follow ISO-8601, where Java's follow the JVM's locale: `w` is the ISO
//! week, `Y` its year, and `W` the week of the month with weeks starting on Monday
//! (week 1 holds the 1st). Numbers are zero-padded to the count of letters.
//!
//! Text in single quotes is literal and `''` is a quote (inside quoted text too); any
//! character but an ASCII letter is literal. Java refuses the other ASCII letters and an
//! unterminated quote (the commands validator reports both: `CMD_INVALID_DATE_PATTERN`);
//! here such letters are written as they are, and an open quote runs to the end.

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Days since 1970-01-01 of a civil date (proleptic Gregorian). Total: the year is
/// clamped to ±10¹², the month to 1–12 and the day to 1–31.
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = y.clamp(-1_000_000_000_000, 1_000_000_000_000);
    let (m, d) = (i64::from(m.clamp(1, 12)), i64::from(d.clamp(1, 31)));
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month 1–12, day 1–31) of a day since 1970-01-01. Total: the
/// day is clamped to ±3·10¹⁴ (far beyond any instant a `u64` of milliseconds holds).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z.clamp(-300_000_000_000_000, 300_000_000_000_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    // In range by construction: 1–31 and 1–12.
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(crate) fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

/// The days of month `m` (1–12) of year `y`.
pub(crate) fn days_in_month(y: i64, m: u32) -> u32 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The day of the week of a day since 1970-01-01: 0 = Monday … 6 = Sunday.
pub(crate) fn weekday(days: i64) -> u32 {
    // 1970-01-01 was a Thursday (3).
    u32::try_from((days.rem_euclid(7) + 3) % 7).unwrap_or(0)
}

/// An instant's UTC fields.
struct Fields {
    days: i64,
    year: i64,
    month: u32,
    day: u32,
    /// 0 = Monday … 6 = Sunday.
    weekday: u32,
    day_of_year: i64,
    hour: i64,
    minute: i64,
    second: i64,
    millis: i64,
}

impl Fields {
    fn of(epoch_ms: u64) -> Fields {
        // At most 2.2·10¹¹ days: always an i64.
        let days = i64::try_from(epoch_ms / 86_400_000).unwrap_or(i64::MAX);
        let in_day = i64::try_from(epoch_ms % 86_400_000).unwrap_or(0);
        let (year, month, day) = civil_from_days(days);
        Fields {
            days,
            year,
            month,
            day,
            weekday: weekday(days),
            day_of_year: days - days_from_civil(year, 1, 1) + 1,
            hour: in_day / 3_600_000,
            minute: in_day / 60_000 % 60,
            second: in_day / 1000 % 60,
            millis: in_day % 1000,
        }
    }
}

/// Formats `epoch_ms` (milliseconds since the Unix epoch) in UTC with a
/// `SimpleDateFormat` pattern (see the module documentation).
pub fn format(pattern: &str, epoch_ms: u64) -> String {
    let t = Fields::of(epoch_ms);
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut chars = pattern.chars().peekable();
    let mut quoted = false;
    while let Some(c) = chars.next() {
        if c == '\'' {
            // `''` is a quote, in quoted text too; a lone `'` opens or closes it.
            if chars.next_if_eq(&'\'').is_some() {
                out.push('\'');
            } else {
                quoted = !quoted;
            }
        } else if quoted || !c.is_ascii_alphabetic() {
            out.push(c);
        } else {
            let mut count = 1usize;
            while chars.next_if_eq(&c).is_some() {
                count = count.saturating_add(1);
            }
            field(&mut out, c, count, &t);
        }
    }
    out
}

/// Writes the field of `count` letters `letter`.
fn field(out: &mut String, letter: char, count: usize, t: &Fields) {
    let number = match letter {
        'y' | 'Y' if count == 2 => {
            let year = if letter == 'Y' {
                iso_week(t.days).1
            } else {
                t.year
            };
            return pad(out, year.rem_euclid(100), 2);
        }
        'y' => t.year,
        'Y' => iso_week(t.days).1,
        'M' | 'L' if count >= 3 => return name(out, &MONTHS, t.month.saturating_sub(1), count),
        'M' | 'L' => i64::from(t.month),
        'w' => iso_week(t.days).0,
        'W' => {
            let first = weekday(days_from_civil(t.year, t.month, 1));
            (i64::from(t.day) + i64::from(first) - 1) / 7 + 1
        }
        'D' => t.day_of_year,
        'd' => i64::from(t.day),
        'F' => (i64::from(t.day) - 1) / 7 + 1,
        'E' => return name(out, &DAYS, t.weekday, count),
        'u' => i64::from(t.weekday) + 1,
        'H' => t.hour,
        'k' if t.hour == 0 => 24,
        'k' => t.hour,
        'K' => t.hour % 12,
        'h' if t.hour % 12 == 0 => 12,
        'h' => t.hour % 12,
        'm' => t.minute,
        's' => t.second,
        'S' => t.millis,
        _ => {
            let text = match letter {
                'G' => "AD",
                'a' if t.hour < 12 => "AM",
                'a' => "PM",
                'z' => "UTC",
                'Z' => "+0000",
                'X' => "Z",
                other => return out.extend(std::iter::repeat_n(other, count)),
            };
            return out.push_str(text);
        }
    };
    pad(out, number, count);
}

/// A month or day name, cut to three letters below a count of 4.
fn name(out: &mut String, names: &[&str], index: u32, count: usize) {
    let full = usize::try_from(index)
        .ok()
        .and_then(|i| names.get(i))
        .copied()
        .unwrap_or_default();
    let take = if count >= 4 { usize::MAX } else { 3 };
    out.extend(full.chars().take(take));
}

/// `v` zero-padded to `width` digits.
fn pad(out: &mut String, v: i64, width: usize) {
    let digits = v.unsigned_abs().to_string();
    if v < 0 {
        out.push('-');
    }
    out.extend(std::iter::repeat_n('0', width.saturating_sub(digits.len())));
    out.push_str(&digits);
}

/// The ISO-8601 week of the year of a day, and the year it belongs to (the last days
/// of December may be in week 1 of the next year, the first days of January in the
/// last week of the previous one).
fn iso_week(days: i64) -> (i64, i64) {
    let thursday = days - i64::from(weekday(days)) + 3;
    let (y, _, _) = civil_from_days(thursday);
    ((thursday - days_from_civil(y, 1, 1)) / 7 + 1, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000_123; // 2023-11-14T22:13:20.123Z, a Tuesday
    const DAY: u64 = 86_400_000;

    #[test]
    fn java_patterns() {
        assert_eq!(
            format("yyyy-MM-dd HH:mm:ss.SSS", 0),
            "1970-01-01 00:00:00.000"
        );
        assert_eq!(
            format("yyyy-MM-dd HH:mm:ss.SSS", T),
            "2023-11-14 22:13:20.123"
        );
        assert_eq!(
            format("EEE, d MMM yyyy HH:mm:ss Z", T),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(format("EEEE MMMM yy G", T), "Tuesday November 23 AD");
        assert_eq!(format("yyyyMMdd'T'HHmmss", 0), "19700101T000000");
        assert_eq!(
            format("yyyy-MM-dd'T'HH:mm:ss.SSSX", T),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(format("D w u k K z", T), "318 46 2 22 10 UTC");
    }

    #[test]
    fn quoted_text() {
        assert_eq!(format("hh 'o''clock' a", T), "10 o'clock PM");
        assert_eq!(format("''", 0), "'");
        assert_eq!(format("'yyyy' yyyy", T), "yyyy 2023");
        assert_eq!(format("'it''s' HH''mm", T), "it's 22'13");
        // An open quote runs to the end.
        assert_eq!(format("HH 'mm", T), "22 mm");
        assert_eq!(format("", T), "");
        assert_eq!(format("[HH]/(mm) é ü", T), "[22]/(13) é ü");
    }

    #[test]
    fn counts_pad_numbers_and_choose_text() {
        assert_eq!(format("y yy yyy yyyy yyyyy", T), "2023 23 2023 2023 02023");
        assert_eq!(
            format("M MM MMM MMMM MMMMM L LLL", 0),
            "1 01 Jan January January 1 Jan"
        );
        assert_eq!(format("d dd ddd", 0), "1 01 001");
        assert_eq!(format("S SS SSS SSSS", 5), "5 05 005 0005");
        assert_eq!(format("S", 999), "999");
        assert_eq!(
            format("E EE EEE EEEE EEEEE", 0),
            "Thu Thu Thu Thursday Thursday"
        );
        assert_eq!(format("D DDD", T), "318 318");
        assert_eq!(format("F", T), "2");
        // 2023-11-19, a Sunday, is day 7; the 21st is the third Tuesday.
        assert_eq!(format("u", T + 5 * DAY), "7");
        assert_eq!(format("F EEE", T + 7 * DAY), "3 Tue");
    }

    #[test]
    fn hours_of_each_clock() {
        let midnight = T - T % DAY;
        assert_eq!(format("H k K h a", midnight), "0 24 0 12 AM");
        let noon = midnight + DAY / 2;
        assert_eq!(format("H k K h a", noon), "12 12 0 12 PM");
        assert_eq!(format("HH kk KK hh a", T), "22 22 10 10 PM");
        assert_eq!(format("h a", midnight + 3_600_000), "1 AM");
    }

    #[test]
    fn weeks_are_iso() {
        // 2023-11-14: ISO week 46; November 1st is a Wednesday, so the 14th is in the
        // third week of the month.
        assert_eq!(format("w ww W YYYY", T), "46 46 3 2023");
        // 2024-12-30 (a Monday) is in week 1 of 2025.
        let dec30 = days_from_civil(2024, 12, 30) as u64 * DAY;
        assert_eq!(format("yyyy w YYYY YY", dec30), "2024 1 2025 25");
        // 2021-01-01 (a Friday) is in week 53 of 2020.
        let jan1 = days_from_civil(2021, 1, 1) as u64 * DAY;
        assert_eq!(format("yyyy w YYYY W", jan1), "2021 53 2020 1");
        // 1970-01-01 (a Thursday) is in week 1.
        assert_eq!(format("w W", 0), "1 1");
    }

    #[test]
    fn other_letters_are_written_as_they_are() {
        assert_eq!(format("q QQ b", T), "q QQ b");
        assert_eq!(format("zzzz ZZ XXX", T), "UTC +0000 Z");
    }

    #[test]
    fn no_input_panics() {
        let far = format("yyyy-MM-dd HH:mm:ss.SSS EEE w W D F u Y", u64::MAX);
        assert!(far.starts_with("584556019-04-03 14:25:51.615"), "{far}");
        assert_eq!(format(&"y".repeat(10_000), 0).len(), 10_000);
        assert_eq!(format(&"'".repeat(9_999), 0), "'".repeat(4_999));
        for ms in [0, 1, DAY - 1, DAY, T, u64::MAX / 2, u64::MAX - 1] {
            let all = format("GyYMLwWDdFEuaHkKhmsSzZX '' 'x", ms);
            assert!(all.starts_with("AD"), "{all}");
        }
    }

    #[test]
    fn the_calendar_round_trips() {
        for days in [-1_000_000i64, -1, 0, 59, 365, 11_016, 19_675, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d <= days_in_month(y, m));
        }
        // Every day of 1900–2100, one after the other.
        let mut days = days_from_civil(1900, 1, 1);
        for y in 1900..=2100 {
            for m in 1..=12 {
                for d in 1..=days_in_month(y, m) {
                    assert_eq!(civil_from_days(days), (y, m, d));
                    assert_eq!(days_from_civil(y, m, d), days);
                    days += 1;
                }
            }
        }
        assert!(is_leap(2000) && !is_leap(1900) && is_leap(2024) && !is_leap(2023));
        assert_eq!(weekday(0), 3);
        assert_eq!(weekday(-1), 2);
        // Extremes are clamped, not overflowed.
        let _ = (civil_from_days(i64::MAX), civil_from_days(i64::MIN));
        let _ = (
            days_from_civil(i64::MAX, 99, 99),
            days_from_civil(i64::MIN, 0, 0),
        );
        let _ = (weekday(i64::MAX), weekday(i64::MIN));
    }
}
