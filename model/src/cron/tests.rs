//! Tests of the cron expressions: Quartz's forms, refusals that say why, and a
//! second-by-second search as the reference for `next_after`.

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
fn day_of_month_specials() {
    // The last weekday: 2023-09-30 is a Saturday, so Friday the 29th.
    let s = parse("0 0 0 LW * ?").unwrap();
    assert_eq!(
        s.next_after(at(2023, 9, 1, 0, 0, 0)),
        Some(at(2023, 9, 29, 0, 0, 0))
    );
    // Three days before the last: 2024-02-26.
    let s = parse("0 0 0 L-3 * ?").unwrap();
    assert_eq!(
        s.next_after(at(2024, 2, 1, 0, 0, 0)),
        Some(at(2024, 2, 26, 0, 0, 0))
    );
    // 2023-07-01 is a Saturday: the nearest weekday in July is Monday the 3rd.
    let s = parse("0 0 0 1W * ?").unwrap();
    assert_eq!(
        s.next_after(at(2023, 6, 30, 0, 0, 0)),
        Some(at(2023, 7, 3, 0, 0, 0))
    );
    // 2023-04-30 is a Sunday and the last day: Friday the 28th.
    let s = parse("0 0 0 30W * ?").unwrap();
    assert_eq!(
        s.next_after(at(2023, 4, 1, 0, 0, 0)),
        Some(at(2023, 4, 28, 0, 0, 0))
    );
    // A Sunday mid-month: Monday. 2023-10-15 is a Sunday.
    let s = parse("0 0 0 15W * ?").unwrap();
    assert_eq!(
        s.next_after(at(2023, 10, 1, 0, 0, 0)),
        Some(at(2023, 10, 16, 0, 0, 0))
    );
    // Lists and steps of days: the 1st and the 15th; every 10 days from the 5th.
    let s = parse("0 0 0 1,15 * ?").unwrap();
    assert_eq!(
        s.next_after(at(2023, 10, 2, 0, 0, 0)),
        Some(at(2023, 10, 15, 0, 0, 0))
    );
    let s = parse("0 0 0 5/10 * ?").unwrap();
    assert_eq!(
        s.next_after(at(2023, 10, 26, 0, 0, 0)),
        Some(at(2023, 11, 5, 0, 0, 0))
    );
}

#[test]
fn names_wrapping_ranges_and_years() {
    let s = parse("0 0 0 ? jan,Mar-apr sun").unwrap();
    // 2023-03-05 is the first Sunday of March.
    assert_eq!(
        s.next_after(at(2023, 2, 1, 0, 0, 0)),
        Some(at(2023, 3, 5, 0, 0, 0))
    );
    // FRI-MON wraps: 2023-11-14 is a Tuesday, the next is Friday the 17th.
    let s = parse("0 0 9 ? * FRI-MON").unwrap();
    assert_eq!(
        s.next_after(at(2023, 11, 14, 0, 0, 0)),
        Some(at(2023, 11, 17, 9, 0, 0))
    );
    assert_eq!(
        s.next_after(at(2023, 11, 19, 9, 0, 0)),
        Some(at(2023, 11, 20, 9, 0, 0))
    );
    // 22-2 wraps past midnight.
    let s = parse("0 0 22-2 * * ?").unwrap();
    assert_eq!(
        s.next_after(at(2023, 1, 1, 3, 0, 0)),
        Some(at(2023, 1, 1, 22, 0, 0))
    );
    assert_eq!(
        s.next_after(at(2023, 1, 1, 23, 0, 0)),
        Some(at(2023, 1, 2, 0, 0, 0))
    );
    // Years: a list, a step, the last one.
    let s = parse("0 0 0 1 1 ? 2030,2040/20").unwrap();
    assert_eq!(
        s.next_after(at(2031, 1, 1, 0, 0, 0)),
        Some(at(2040, 1, 1, 0, 0, 0))
    );
    assert_eq!(
        s.next_after(at(2060, 1, 1, 0, 0, 0)),
        Some(at(2080, 1, 1, 0, 0, 0))
    );
    assert_eq!(s.next_after(0), Some(at(2030, 1, 1, 0, 0, 0)));
    let s = parse("0 0 0 31 12 ? 2099").unwrap();
    assert_eq!(s.next_after(0), Some(at(2099, 12, 31, 0, 0, 0)));
    assert_eq!(s.next_after(at(2099, 12, 31, 0, 0, 0)), None);
    // Nothing after 2099 even without a year field.
    let s = parse("0 0 0 1 1 ?").unwrap();
    assert_eq!(s.next_after(at(2099, 1, 1, 0, 0, 0)), None);
    assert_eq!(s.next_after(u64::MAX), None);
}

#[test]
fn schedules_that_never_fire_end_quickly() {
    let started = std::time::Instant::now();
    for expr in ["0 0 0 30 2 ?", "0 0 0 31 4,6,9,11 ?", "0 0 0 ? 2 1#5 2027"] {
        assert_eq!(parse(expr).unwrap().next_after(0), None, "{expr}");
    }
    // Yearly: a few hundred steps, not a second-by-second walk.
    let s = parse("59 59 23 31 12 ?").unwrap();
    let mut t = 0;
    for year in 1970..=2099 {
        t = s.next_after(t).unwrap();
        assert_eq!(t, at(year, 12, 31, 23, 59, 59));
    }
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn bad_expressions_say_why() {
    for (bad, says) in [
        ("0 0 8 * *", "[year]), found 5"),
        ("0 0 8 * * ? 2030 x", "found 8"),
        ("", "found 0"),
        ("0 0 8 * * MON", "both a day-of-week AND a day-of-month"),
        ("0 0 8 ? * ?", "`?` can only be specified"),
        (
            "0 0 8 ? * FUNDAY",
            "day-of-week: `FUNDAY`: not a number or a name",
        ),
        ("0 0 8 ? JANUARY *", "month: `JANUARY`"),
        ("? 0 8 ? * *", "seconds: `?`: `?` is only allowed"),
        ("60 * * ? * *", "seconds: `60`: out of range (from 0 to 59)"),
        ("0 0 25 * * ?", "hours: `25`: out of range"),
        ("0 0 0 0 * ?", "day-of-month: `0`: out of range"),
        ("0 0 0 ? 13 *", "month: `13`"),
        ("0 0 0 ? * 8", "day-of-week: `8`"),
        ("0 0 0 ? * 0", "day-of-week: `0`"),
        ("0 0 0 ? * 9#1", "day-of-week: `9`"),
        ("0 0 0 ? * 2#6", "expected d#k"),
        ("0 0 0 ? * 8L", "day-of-week: `8`"),
        ("*/0 * * * * ?", "the step must be from 1 to 60"),
        ("0/4294967295 * * * * ?", "the step must be"),
        ("1/99999999999999999999 * * * * ?", "the step must be"),
        ("0 0 0 32W * ?", "expected nW"),
        ("0 0 0 L-31 * ?", "expected L-n"),
        ("0 0 0 1,L * ?", "day-of-month: `L`"),
        (
            "0 0 0 1 1 ? 1969",
            "year: `1969`: out of range (from 1970 to 2099)",
        ),
        ("0 0 0 1 1 ? 2100", "year: `2100`"),
        ("0 0 0 1 1 ? 2050-2040", "the range ends before it starts"),
        ("0 0 0 1- 1 ?", "a value is missing"),
        ("0 0 0 1 1 ? 99999999999", "out of range"),
        ("0 0 0 ,, 1 ?", "a value is missing"),
        ("0 0 0 1 1 ? é", "not a number"),
    ] {
        let e = parse(bad).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(says), "{bad}: {e}");
    }
}

#[test]
fn arbitrary_text_never_panics() {
    let alphabet: Vec<char> = "0123456789*?,-/#LW LWMONJANsat\u{e9}".chars().collect();
    let mut seed = 11u64;
    let mut next = |n: usize| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as usize % n
    };
    for _ in 0..20_000 {
        let expr: String = (0..6 + next(20))
            .map(|_| alphabet.get(next(alphabet.len())).copied().unwrap_or(' '))
            .collect();
        let after = next(4_102_444_800) as u64 * 1000;
        if let Ok(s) = parse(&expr) {
            let _ = s.next_after(after);
        }
    }
}

#[test]
fn it_agrees_with_a_second_by_second_search() {
    let mut seed = 7u64;
    let mut next = |n: u64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) % n
    };
    const WINDOW: u64 = 86_400 * 9;
    for _ in 0..300 {
        let days = if next(2) == 0 {
            format!(
                "? * {}",
                ["*", "MON-FRI", "SUN", "2,4", "6L", "2#3", "SAT-MON"][next(7) as usize]
            )
        } else {
            format!(
                "{} * ?",
                ["*", "1-15", "L", "15W", "LW", "*/3", "28-3", "1W"][next(8) as usize]
            )
        };
        let expr = format!(
            "{} {} {} {days}",
            ["*", "0", "*/20", "5,35", "58-2"][next(5) as usize],
            ["*", "0", "*/7", "10-12"][next(4) as usize],
            ["*", "0", "*/5", "9-17", "23"][next(5) as usize],
        );
        let s = parse(&expr).unwrap();
        // Any second of 2024 and 2025 (2024 is a leap year).
        let from = at(2024, 1, 1, 0, 0, 0) + next(86_400 * 731) * 1000 + next(1000);
        // Each day's verdict once (the search below is second by second).
        let mut day_ok = (i64::MIN, false);
        let brute = (1..=WINDOW).map(|k| (from / 1000 + k) * 1000).find(|t| {
            let secs = t / 1000;
            let days = (secs / 86_400) as i64;
            if day_ok.0 != days {
                let (y, m, d) = civil_from_days(days);
                day_ok = (days, s.day_matches(y, m, d, days));
            }
            let sod = secs % 86_400;
            day_ok.1
                && s.hours & (1 << (sod / 3600)) != 0
                && s.minutes & (1 << (sod / 60 % 60)) != 0
                && s.seconds & (1 << (sod % 60)) != 0
        });
        let Some(brute) = brute else {
            let found = s.next_after(from).unwrap();
            assert!(found > from + WINDOW * 1000, "{expr} after {from}");
            continue;
        };
        assert_eq!(s.next_after(from), Some(brute), "{expr} after {from}");
    }
}
