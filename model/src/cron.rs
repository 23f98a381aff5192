//! Quartz cron expressions, as Roboconf's scheduler takes them (`0 0 8 ? * MON-FRI`):
//! [`parse`] reads seconds, minutes, hours, day of month, month, day of week and an
//! optional year (1970–2099), with `*`, `?`, values, ranges (`a-b`, wrapping around like
//! Quartz's: `FRI-MON`, `22-2`; not for years), lists, steps (`*/n`, `a/n`, `a-b/n`),
//! month and day names in any case (Quartz numbers days 1 = SUN … 7 = SAT), and Quartz's
//! `L`, `L-n`, `LW`, `nW` (day of month) and `L`, `nL`, `n#k` (day of week). Exactly one
//! of the two day fields is `?`, as Quartz requires. [`Schedule::next_after`] computes
//! instants in **UTC**, field by field (a yearly schedule answers in microseconds), up to
//! the end of 2099.

use crate::timefmt::{civil_from_days, days_from_civil, days_in_month, weekday};

/// Why an expression is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct CronError(String);

/// The day-of-month rule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dom {
    Any,
    /// Bit `d - 1` for day `d`.
    Set(u64),
    /// `L` (offset 0) or `L-n`: the last day of the month, or `n` days before it.
    Last {
        offset: u32,
    },
    /// `LW`: the last weekday (Monday to Friday) of the month.
    LastWeekday,
    /// `nW`: the weekday nearest to day `n`, in the same month.
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
    /// Bit `m - 1` for month `m`.
    months: u64,
    dom: Dom,
    dow: Dow,
    /// Bit `y - 1970` of word `(y - 1970) / 64`, for the years 1970 to [`LAST_YEAR`].
    years: [u64; 3],
}

const MONTH_NAMES: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAY_NAMES: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];
const FIRST_YEAR: i64 = 1970;
/// The last year a schedule may name and fire in (as the year field of Quartz's
/// documentation: 1970–2099).
pub const LAST_YEAR: i64 = 2099;

fn err(field: &str, tok: &str, why: &str) -> CronError {
    CronError(format!("{field}: `{tok}`: {why}"))
}

/// One field's bounds and names (`names[i]` is `min + i`).
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
    /// Whether a range may wrap around (`FRI-MON`, `22-2`): every field but the year.
    wraps: bool,
}

const SECONDS: Field = Field::plain("seconds", 0, 59);
const MINUTES: Field = Field::plain("minutes", 0, 59);
const HOURS: Field = Field::plain("hours", 0, 23);
const DAY_OF_MONTH: Field = Field::plain("day-of-month", 1, 31);
const MONTH: Field = Field {
    names: &MONTH_NAMES,
    ..Field::plain("month", 1, 12)
};
const DAY_OF_WEEK: Field = Field {
    names: &DAY_NAMES,
    ..Field::plain("day-of-week", 1, 7)
};
const YEAR: Field = Field {
    wraps: false,
    // Both bounds are small positive constants.
    ..Field::plain("year", FIRST_YEAR as u32, LAST_YEAR as u32)
};

impl Field {
    const fn plain(name: &'static str, min: u32, max: u32) -> Field {
        Field {
            name,
            min,
            max,
            names: &[],
            wraps: true,
        }
    }

    /// A value: a number or a name, within the bounds.
    fn value(&self, tok: &str) -> Result<u32, CronError> {
        let named = self
            .names
            .iter()
            .position(|n| n.eq_ignore_ascii_case(tok))
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| self.min + i);
        let v = match named {
            Some(v) => v,
            None if tok == "?" => {
                return Err(err(
                    self.name,
                    tok,
                    "`?` is only allowed in the day-of-month and day-of-week fields",
                ))
            }
            None if tok.is_empty() => return Err(err(self.name, tok, "a value is missing")),
            None if !tok.bytes().all(|b| b.is_ascii_digit()) => {
                let what = if self.names.is_empty() {
                    "not a number"
                } else {
                    "not a number or a name"
                };
                return Err(err(self.name, tok, what));
            }
            None => tok.parse::<u32>().unwrap_or(u32::MAX),
        };
        if v < self.min || v > self.max {
            return Err(err(
                self.name,
                tok,
                &format!("out of range (from {} to {})", self.min, self.max),
            ));
        }
        Ok(v)
    }

    /// `*`, values, ranges, lists and steps: the values they name.
    fn values(&self, text: &str) -> Result<Vec<u32>, CronError> {
        let span = self.max - self.min + 1;
        let mut out = Vec::new();
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => {
                    let step = s
                        .parse::<u32>()
                        .ok()
                        .filter(|s| (1..=span).contains(s))
                        .ok_or_else(|| {
                            err(
                                self.name,
                                part,
                                &format!("the step must be from 1 to {span}"),
                            )
                        })?;
                    (r, step)
                }
                None => (part, 1),
            };
            let (lo, hi) = if range == "*" {
                (self.min, self.max)
            } else if let Some((a, b)) = range.split_once('-') {
                (self.value(a)?, self.value(b)?)
            } else {
                let v = self.value(range)?;
                // `a/n` runs from a to the end of the field.
                (v, if part.contains('/') { self.max } else { v })
            };
            let hi = match (lo <= hi, self.wraps) {
                (true, _) => hi,
                // Wraps around: `22-2` is 22, 23, 0, 1, 2.
                (false, true) => hi + span,
                (false, false) => {
                    return Err(err(self.name, part, "the range ends before it starts"))
                }
            };
            let mut v = lo;
            while v <= hi {
                out.push(self.min + (v - self.min) % span);
                v = v.saturating_add(step);
            }
        }
        Ok(out)
    }

    /// The values as bits (bit `v - min` for `v`); at most 64 values.
    fn bits(&self, text: &str) -> Result<u64, CronError> {
        let values = self.values(text)?;
        Ok(values.iter().fold(0, |bits, v| {
            bits | 1u64.checked_shl(v - self.min).unwrap_or(0)
        }))
    }
}

/// Parses an expression of 6 or 7 fields, separated by whitespace: seconds, minutes,
/// hours, day-of-month, month, day-of-week and an optional year.
pub fn parse(expr: &str) -> Result<Schedule, CronError> {
    let fields: Vec<String> = expr
        .split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect();
    let (sec, min, hour, dom_t, month, dow_t, year) = match fields.as_slice() {
        [a, b, c, d, e, f] => (a, b, c, d, e, f, None),
        [a, b, c, d, e, f, g] => (a, b, c, d, e, f, Some(g)),
        _ => {
            return Err(CronError(format!(
                "expected 6 or 7 fields (seconds minutes hours day-of-month month day-of-week [year]), found {}",
                fields.len()
            )))
        }
    };
    let seconds = SECONDS.bits(sec)?;
    let minutes = MINUTES.bits(min)?;
    let hours = HOURS.bits(hour)?;
    let months = MONTH.bits(month)?;
    let years = match year {
        Some(y) => YEAR.values(y)?.iter().fold([0u64; 3], |mut bits, y| {
            let k = y - YEAR.min;
            if let Some(word) = bits.get_mut((k / 64) as usize) {
                *word |= 1 << (k % 64);
            }
            bits
        }),
        None => [u64::MAX; 3],
    };
    match (dom_t.as_str(), dow_t.as_str()) {
        ("?", "?") => {
            return Err(CronError(
                "`?` can only be specified for the day-of-month -OR- the day-of-week".into(),
            ))
        }
        (d, w) if d != "?" && w != "?" => {
            return Err(CronError(format!(
                "support for specifying both a day-of-week AND a day-of-month parameter is not implemented (`{d}` and `{w}`: give `?` for one of them)"
            )))
        }
        _ => {}
    }
    let dom = match dom_t.as_str() {
        "?" => Dom::Any,
        "L" => Dom::Last { offset: 0 },
        "LW" => Dom::LastWeekday,
        t if t.starts_with("L-") => Dom::Last {
            offset: t
                .get(2..)
                .and_then(|o| o.parse().ok())
                .filter(|o| (1..=30).contains(o))
                .ok_or_else(|| err("day-of-month", t, "expected L-n with n from 1 to 30"))?,
        },
        t if t.len() > 1 && t.ends_with('W') => {
            let n = t.strip_suffix('W').unwrap_or(t);
            let n = n
                .parse()
                .ok()
                .filter(|d| (1..=31).contains(d))
                .ok_or_else(|| err("day-of-month", t, "expected nW with n from 1 to 31"))?;
            Dom::NearestWeekday(n)
        }
        t => Dom::Set(DAY_OF_MONTH.bits(t)?),
    };
    let dow = match dow_t.as_str() {
        "?" => Dow::Any,
        // `L` alone is the last day of the week: Saturday.
        "L" => Dow::Set(1 << 6),
        t if t.ends_with('L') => {
            Dow::Last(DAY_OF_WEEK.value(t.strip_suffix('L').unwrap_or(t))? - 1)
        }
        t if t.contains('#') => {
            let (d, k) = t.split_once('#').unwrap_or_default();
            let d = DAY_OF_WEEK.value(d)?;
            let k = k
                .parse()
                .ok()
                .filter(|k| (1..=5).contains(k))
                .ok_or_else(|| err("day-of-week", t, "expected d#k with k from 1 to 5"))?;
            Dow::Nth(d - 1, k)
        }
        t => Dow::Set(DAY_OF_WEEK.bits(t)?),
    };
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
    /// Whether the year field allows `y`.
    fn year_allowed(&self, y: i64) -> bool {
        let Some(k) = y
            .checked_sub(FIRST_YEAR)
            .and_then(|k| u32::try_from(k).ok())
        else {
            return false;
        };
        let word = usize::try_from(k / 64).ok().and_then(|w| self.years.get(w));
        word.is_some_and(|w| w & (1 << (k % 64)) != 0)
    }

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
    /// matches, in ms (a whole second); `None` when none comes before the year 2100.
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
            if !self.year_allowed(y) {
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
mod tests;
