//! Dates for the commands language's `$(FORMATTED_TIME pattern)`: Java's
//! `SimpleDateFormat` patterns (`yyyy-MM-dd HH:mm:ss.SSS`, `EEE, d MMM yyyy`, quoted
//! text in `'...'`), formatted in UTC; and the calendar arithmetic (days from and to a
//! civil date) that `crate::cron` shares. Week numbers (`w`, `W`) follow ISO-8601
//! (weeks start on Monday), where Java's follow the JVM's locale.

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

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
pub(crate) fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (i64::from(m) + 9) % 12;
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date (year, month 1–12, day 1–31) of a day since 1970-01-01.
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

pub(crate) fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

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
    // 1970-01-01 was a Thursday.
    (days + 3).rem_euclid(7) as u32
}

/// Formats `epoch_ms` (UTC) with a `SimpleDateFormat` pattern.
pub fn format(pattern: &str, epoch_ms: u64) -> String {
    let ms = epoch_ms as i64;
    let days = ms.div_euclid(86_400_000);
    let in_day = ms.rem_euclid(86_400_000);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    let wd = weekday(days);
    let doy = days - days_from_civil(y, 1, 1) + 1;
    let num = |v: i64, n: usize| format!("{v:0n$}");
    let mut out = String::with_capacity(pattern.len() + 8);
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // `''` is a quote; `'text'` is literal text.
            if chars.get(i + 1) == Some(&'\'') {
                out.push('\'');
                i += 2;
                continue;
            }
            i += 1;
            while i < chars.len() {
                if chars[i] == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        out.push('\'');
                        i += 2;
                        continue;
                    }
                    break;
                }
                out.push(chars[i]);
                i += 1;
            }
            i += 1;
            continue;
        }
        if !c.is_ascii_alphabetic() {
            out.push(c);
            i += 1;
            continue;
        }
        let mut n = 1;
        while chars.get(i + n) == Some(&c) {
            n += 1;
        }
        i += n;
        let text = match c {
            'G' => "AD".to_string(),
            'y' | 'Y' if n == 2 => num(y.rem_euclid(100), 2),
            'y' | 'Y' => num(y, n),
            'M' | 'L' if n >= 4 => MONTHS[mo as usize - 1].to_string(),
            'M' | 'L' if n == 3 => MONTHS[mo as usize - 1][..3].to_string(),
            'M' | 'L' => num(i64::from(mo), n),
            'w' => num(iso_week(days), n),
            'W' => num(
                (i64::from(d) + i64::from(weekday(days_from_civil(y, mo, 1))) - 1) / 7 + 1,
                n,
            ),
            'D' => num(doy, n),
            'd' => num(i64::from(d), n),
            'F' => num((i64::from(d) - 1) / 7 + 1, n),
            'E' if n >= 4 => DAYS[wd as usize].to_string(),
            'E' => DAYS[wd as usize][..3].to_string(),
            'u' => num(i64::from(wd) + 1, n),
            'a' => if h < 12 { "AM" } else { "PM" }.to_string(),
            'H' => num(h, n),
            'k' => num(if h == 0 { 24 } else { h }, n),
            'K' => num(h % 12, n),
            'h' => num(if h % 12 == 0 { 12 } else { h % 12 }, n),
            'm' => num(mi, n),
            's' => num(s, n),
            'S' => num(milli, n),
            'z' => "UTC".to_string(),
            'Z' => "+0000".to_string(),
            'X' => "Z".to_string(),
            other => std::iter::repeat_n(other, n).collect(),
        };
        out.push_str(&text);
    }
    out
}

/// The ISO-8601 week of the year of a day.
fn iso_week(days: i64) -> i64 {
    let thursday = days - i64::from(weekday(days)) + 3;
    let (y, _, _) = civil_from_days(thursday);
    (thursday - days_from_civil(y, 1, 1)) / 7 + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: u64 = 1_700_000_000_123; // 2023-11-14T22:13:20.123Z, a Tuesday

    #[test]
    fn java_patterns() {
        assert_eq!(
            format("yyyy-MM-dd HH:mm:ss.SSS", T),
            "2023-11-14 22:13:20.123"
        );
        assert_eq!(
            format("EEE, d MMM yyyy HH:mm:ss Z", T),
            "Tue, 14 Nov 2023 22:13:20 +0000"
        );
        assert_eq!(format("EEEE MMMM yy", T), "Tuesday November 23");
        assert_eq!(format("hh 'o''clock' a", T), "10 o'clock PM");
        assert_eq!(format("yyyyMMdd'T'HHmmss", 0), "19700101T000000");
        assert_eq!(format("D w u k K z", T), "318 46 2 22 10 UTC");
        assert_eq!(format("''", 0), "'");
    }

    #[test]
    fn the_calendar_round_trips() {
        for days in [-1_000_000i64, -1, 0, 59, 365, 11_016, 19_675, 2_000_000] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
            assert!(d <= days_in_month(y, m));
        }
        assert!(is_leap(2000) && !is_leap(1900) && is_leap(2024));
        assert_eq!(weekday(0), 3);
    }
}
