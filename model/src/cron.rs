//! Quartz cron expressions, as Roboconf's scheduler takes them (`0 0 8 ? * MON-FRI`):
//! seconds, minutes, hours, day of month, month, day of week and an optional year, with
//! `*`, `?`, values, ranges, lists, steps, month and day names (Quartz numbers days 1 =
//! SUN … 7 = SAT), and Quartz's `L`, `LW`, `nW` (day of month) and `nL`, `n#k` (day of
//! week). Exactly one of the two day fields is `?`, as Quartz requires. Instants are
//! computed in **UTC**, field by field (a yearly schedule answers in microseconds).

use crate::timefmt::{civil_from_days, days_from_civil, days_in_month, weekday};

/// Why an expression is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// The day-of-month rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dom {
    Any,
    Set(u64),
    Last { offset: u32 },
    LastWeekday,
    NearestWeekday(u32),
}

/// The day-of-week rule (0 = Sunday … 6 = Saturday, as bits).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dow {
    Any,
    Set(u64),
    /// The last such day of the month.
    Last(u32),
    /// The k-th such day of the month.
    Nth(u32, u32),
}

/// A parsed schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    seconds: u64,
    minutes: u64,
    hours: u64,
    months: u64,
    dom: Dom,
    dow: Dow,
    /// Years from 1970 (bit k: 1970 + k), up to 2097.
    years: u128,
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const LAST_YEAR: i64 = 2097;

fn err(field: &str, tok: &str, why: &str) -> CronError {
    CronError(format!("{field} `{tok}`: {why}"))
}

/// A value of a field: a number or a name (`names[i]` is `base + i`).
fn value(field: &str, tok: &str, names: &[&str], base: u32) -> Result<u32, CronError> {
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(tok)) {
        return Ok(base + i as u32);
    }
    tok.parse::<u32>()
        .map_err(|_| err(field, tok, "not a number or a name"))
}

/// `*`, values, ranges, lists and steps, as bits of `min..=max`.
fn set(
    field: &str,
    text: &str,
    min: u32,
    max: u32,
    names: &[&str],
    base: u32,
) -> Result<u128, CronError> {
    let mut bits = 0u128;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let s: u32 = s.parse().map_err(|_| err(field, part, "bad step"))?;
                if s == 0 {
                    return Err(err(field, part, "a step of 0"));
                }
                (r, s)
            }
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(field, a, names, base)?, value(field, b, names, base)?)
        } else {
            let v = value(field, range, names, base)?;
            // `a/n` runs from a to the end of the field.
            (v, if part.contains('/') { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return Err(err(
                field,
                part,
                &format!("out of range (from {min} to {max})"),
            ));
        }
        let mut v = lo;
        while v <= hi {
            bits |= 1u128 << (v - min);
            v += step;
        }
    }
    Ok(bits)
}

/// Parses an expression of 6 or 7 fields.
pub fn parse(expr: &str) -> Result<Schedule, CronError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if !(6..=7).contains(&fields.len()) {
        return Err(CronError(format!(
            "expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), found {}",
            fields.len()
        )));
    }
    let up: Vec<String> = fields.iter().map(|f| f.to_ascii_uppercase()).collect();
    let seconds = set("seconds", &up[0], 0, 59, &[], 0)? as u64;
    let minutes = set("minutes", &up[1], 0, 59, &[], 0)? as u64;
    let hours = set("hours", &up[2], 0, 23, &[], 0)? as u64;
    let months = set("month", &up[4], 1, 12, &MONTH_NAMES, 1)? as u64;
    let years = match up.get(6) {
        Some(y) => set("year", y, 1970, LAST_YEAR as u32, &[], 0)?,
        None => u128::MAX,
    };
    let (dom_t, dow_t) = (up[3].as_str(), up[5].as_str());
    if (dom_t == "?") == (dow_t == "?") {
        return Err(CronError(
            "give either a day of month or a day of week, and `?` for the other (Quartz does not support both)".into(),
        ));
    }
    let dom = match dom_t {
        "?" => Dom::Any,
        "L" => Dom::Last { offset: 0 },
        "LW" => Dom::LastWeekday,
        t if t.starts_with("L-") => Dom::Last {
            offset: t[2..]
                .parse()
                .ok()
                .filter(|o| *o <= 30)
                .ok_or_else(|| err("day of month", t, "bad offset"))?,
        },
        t if t.len() > 1 && t.ends_with('W') => {
            let d: u32 = t[..t.len() - 1]
                .parse()
                .ok()
                .filter(|d| (1..=31).contains(d))
                .ok_or_else(|| err("day of month", t, "expected nW with n from 1 to 31"))?;
            Dom::NearestWeekday(d)
        }
        t => Dom::Set(set("day of month", t, 1, 31, &[], 0)? as u64),
    };
    let dow = match dow_t {
        "?" => Dow::Any,
        t if t.len() > 1 && t.ends_with('L') => {
            Dow::Last(value("day of week", &t[..t.len() - 1], &DAY_NAMES, 1)?.wrapping_sub(1))
        }
        "L" => Dow::Set(1 << 6),
        t if t.contains('#') => {
            let (d, k) = t.split_once('#').unwrap_or_default();
            let d = value("day of week", d, &DAY_NAMES, 1)?;
            let k: u32 = k
                .parse()
                .ok()
                .filter(|k| (1..=5).contains(k))
                .ok_or_else(|| err("day of week", t, "expected d#k with k from 1 to 5"))?;
            if !(1..=7).contains(&d) {
                return Err(err("day of week", t, "out of range (from 1 to 7)"));
            }
            Dow::Nth(d - 1, k)
        }
        t => Dow::Set(set("day of week", t, 1, 7, &DAY_NAMES, 1)? as u64),
    };
    if let Dow::Last(d) = dow {
        if d > 6 {
            return Err(err("day of week", dow_t, "out of range (from 1 to 7)"));
        }
    }
    Ok(Schedule {
        seconds,
        minutes,
        hours,
        months,
        dom,
        dow,
        years,
    })
}

impl Schedule {
    /// Whether the schedule holds on a day (`days` since 1970-01-01).
    fn day_matches(&self, y: i64, m: u32, d: u32, days: i64) -> bool {
        let last = days_in_month(y, m);
        // Sunday = 0 as Quartz counts (1 = SUN) minus one.
        let dow = (weekday(days) + 1) % 7;
        let is_weekday = |d: u32| {
            let wd = weekday(days_from_civil(y, m, d));
            wd < 5
        };
        let dom_ok = match &self.dom {
            Dom::Any => true,
            Dom::Set(bits) => bits & (1 << (d - 1)) != 0,
            Dom::Last { offset } => last.checked_sub(*offset) == Some(d),
            Dom::LastWeekday => (1..=last).rev().find(|x| is_weekday(*x)) == Some(d),
            Dom::NearestWeekday(n) => {
                let n = (*n).min(last);
                let target = if is_weekday(n) {
                    n
                } else {
                    let wd = weekday(days_from_civil(y, m, n));
                    match (wd, n) {
                        // Saturday: Friday, or Monday when the 1st.
                        (5, 1) => 3,
                        (5, n) => n - 1,
                        // Sunday: Monday, or Friday when the last.
                        (_, n) if n == last => n - 2,
                        (_, n) => n + 1,
                    }
                };
                d == target
            }
        };
        let dow_ok = match &self.dow {
            Dow::Any => true,
            Dow::Set(bits) => bits & (1 << dow) != 0,
            Dow::Last(w) => dow == *w && d + 7 > last,
            Dow::Nth(w, k) => dow == *w && (d - 1) / 7 + 1 == *k,
        };
        dom_ok && dow_ok
    }

    /// The first instant strictly after `after_ms` (ms since the Unix epoch, UTC) that
    /// matches, in ms; `None` when none comes before 2098.
    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        let start = after_ms / 1000 + 1;
        let mut days = (start / 86_400) as i64;
        let sod = start % 86_400;
        let first = |bits: u64, from: u32, max: u32| (from..=max).find(|v| bits & (1 << v) != 0);
        let mut from = (
            (sod / 3600) as u32,
            (sod / 60 % 60) as u32,
            (sod % 60) as u32,
        );
        loop {
            let (y, m, d) = civil_from_days(days);
            if y > LAST_YEAR {
                return None;
            }
            if self.years & (1u128 << (y - 1970)) == 0 {
                // The next year.
                days = days_from_civil(y + 1, 1, 1);
                from = (0, 0, 0);
                continue;
            }
            if self.months & (1 << (m - 1)) == 0 {
                days = if m == 12 {
                    days_from_civil(y + 1, 1, 1)
                } else {
                    days_from_civil(y, m + 1, 1)
                };
                from = (0, 0, 0);
                continue;
            }
            if self.day_matches(y, m, d, days) {
                // The first time of day at or after `from`.
                let (fh, fm, fs) = from;
                for h in fh..24 {
                    if self.hours & (1 << h) == 0 {
                        continue;
                    }
                    let m0 = if h == fh { fm } else { 0 };
                    for mi in m0..60 {
                        if self.minutes & (1 << mi) == 0 {
                            continue;
                        }
                        let s0 = if h == fh && mi == fm { fs } else { 0 };
                        if let Some(s) = first(self.seconds, s0, 59) {
                            let secs = days as u64 * 86_400
                                + u64::from(h) * 3600
                                + u64::from(mi) * 60
                                + u64::from(s);
                            return Some(secs * 1000);
                        }
                    }
                }
            }
            days += 1;
            from = (0, 0, 0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(y: i64, m: u32, d: u32, h: u64, mi: u64, s: u64) -> u64 {
        (days_from_civil(y, m, d) as u64 * 86_400 + h * 3600 + mi * 60 + s) * 1000
    }

    #[test]
    fn quartz_schedules() {
        // 2023-11-18 is a Saturday.
        let s = parse("0 0 8 ? * MON-FRI").unwrap();
        assert_eq!(
            s.next_after(at(2023, 11, 18, 9, 0, 0)),
            Some(at(2023, 11, 20, 8, 0, 0))
        );
        let s = parse("*/15 * * * * ?").unwrap();
        assert_eq!(
            s.next_after(at(2023, 1, 1, 0, 0, 0)),
            Some(at(2023, 1, 1, 0, 0, 15))
        );
        assert_eq!(
            s.next_after(at(2023, 1, 1, 0, 0, 59)),
            Some(at(2023, 1, 1, 0, 1, 0))
        );
        let s = parse("0 0 0 L * ?").unwrap();
        assert_eq!(
            s.next_after(at(2024, 2, 1, 0, 0, 0)),
            Some(at(2024, 2, 29, 0, 0, 0))
        );
        // The last Friday (6) of November 2023: the 24th.
        let s = parse("0 0 12 ? * 6L").unwrap();
        assert_eq!(
            s.next_after(at(2023, 11, 1, 0, 0, 0)),
            Some(at(2023, 11, 24, 12, 0, 0))
        );
        // The first Monday (2) of December 2023: the 4th.
        let s = parse("0 0 12 ? * 2#1").unwrap();
        assert_eq!(
            s.next_after(at(2023, 11, 30, 0, 0, 0)),
            Some(at(2023, 12, 4, 12, 0, 0))
        );
        // 2023-07-15 is a Saturday: the nearest weekday is Friday the 14th.
        let s = parse("0 0 12 15W * ?").unwrap();
        assert_eq!(
            s.next_after(at(2023, 7, 1, 0, 0, 0)),
            Some(at(2023, 7, 14, 12, 0, 0))
        );
        let s = parse("0 0 0 29 2 ?").unwrap();
        assert_eq!(
            s.next_after(at(2025, 1, 1, 0, 0, 0)),
            Some(at(2028, 2, 29, 0, 0, 0))
        );
        let s = parse("0 30 6 1 JAN ? 2030").unwrap();
        assert_eq!(s.next_after(0), Some(at(2030, 1, 1, 6, 30, 0)));
        assert_eq!(s.next_after(at(2031, 1, 1, 0, 0, 0)), None);
        // Strictly after.
        let s = parse("0 0 8 * * ?").unwrap();
        assert_eq!(
            s.next_after(at(2023, 1, 1, 8, 0, 0)),
            Some(at(2023, 1, 2, 8, 0, 0))
        );
    }

    #[test]
    fn bad_expressions_say_why() {
        for bad in [
            "0 0 8 * *",
            "0 0 8 * * MON",
            "0 0 8 ? * FUNDAY",
            "60 * * ? * *",
            "0 0 25 * * ?",
            "0 0 0 ? * 9#1",
            "*/0 * * * * ?",
            "0 0 0 32W * ?",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let e = parse("0 0 25 * * ?").unwrap_err().to_string();
        assert!(e.contains("hours `25`"), "{e}");
    }

    #[test]
    fn it_agrees_with_a_second_by_second_search() {
        let mut seed = 7u64;
        let mut next = |n: u64| {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 33) % n
        };
        for _ in 0..200 {
            let expr = format!(
                "{} {} {} ? * {}",
                ["*", "0", "*/20", "5,35"][next(4) as usize],
                ["*", "0", "*/7", "10-12"][next(4) as usize],
                ["*", "0", "*/5", "9-17"][next(4) as usize],
                ["*", "MON-FRI", "SUN", "2,4"][next(4) as usize],
            );
            let s = parse(&expr).unwrap();
            let from = at(2024, 2, 27, 0, 0, 0) + next(86_400 * 3) * 1000;
            let brute = (1..=86_400 * 9u64)
                .map(|k| from / 1000 * 1000 + k * 1000)
                .find(|t| {
                    let secs = t / 1000;
                    let days = (secs / 86_400) as i64;
                    let (y, m, d) = civil_from_days(days);
                    let sod = secs % 86_400;
                    s.hours & (1 << (sod / 3600)) != 0
                        && s.minutes & (1 << (sod / 60 % 60)) != 0
                        && s.seconds & (1 << (sod % 60)) != 0
                        && s.day_matches(y, m, d, days)
                });
            assert_eq!(s.next_after(from), brute, "{expr} after {from}");
        }
    }
}
