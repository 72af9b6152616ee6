//! Python's `date.strftime` for the one date a render is pinned to.
//!
//! Templates such as Llama 3.2's print today's date through `strftime_now`. A data generator
//! must not depend on the day it runs, so the date is pinned (see
//! [`super::template::RenderOptions`]) and the time of day is midnight.

use anyhow::{bail, Result};

/// A calendar date (proleptic Gregorian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CalendarDate {
    pub year: i32,
    pub month: u32,
    pub day: u32,
}

const MONTHS: [&str; 12] =
    ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const WEEKDAYS: [&str; 7] = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"];

impl CalendarDate {
    /// A checked date.
    pub fn new(year: i32, month: u32, day: u32) -> Result<Self> {
        let date = Self { year, month, day };
        if !(1..=12).contains(&month) || day == 0 || day > date.days_in_month() {
            bail!("{year:04}-{month:02}-{day:02} is not a calendar date");
        }
        Ok(date)
    }

    fn is_leap(&self) -> bool {
        (self.year % 4 == 0 && self.year % 100 != 0) || self.year % 400 == 0
    }

    fn days_in_month(&self) -> u32 {
        match self.month {
            2 if self.is_leap() => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    /// Day of the year, 1-based.
    fn ordinal(&self) -> u32 {
        let before: u32 = (1..self.month).map(|m| Self { month: m, ..*self }.days_in_month()).sum();
        before + self.day
    }

    /// 0 = Monday, as Python's `weekday()`.
    fn weekday(&self) -> usize {
        // Days since 1970-01-01 (a Thursday), by the civil-from-days inverse.
        let (y, m) =
            if self.month <= 2 { (self.year as i64 - 1, self.month as i64 + 9) } else { (self.year as i64, self.month as i64 - 3) };
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let doy = (153 * m + 2) / 5 + self.day as i64 - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        (days + 3).rem_euclid(7) as usize
    }

    /// `strftime(format)` at midnight of this date. Directives Python's C library would
    /// interpret by locale are given their C-locale meaning; unknown ones are an error rather
    /// than a silent difference.
    pub fn strftime(&self, format: &str) -> Result<String> {
        // The fields are public, so the date may not have been checked yet.
        Self::new(self.year, self.month, self.day)?;
        let mut out = String::new();
        let mut chars = format.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let Some(directive) = chars.next() else { bail!("strftime format {format:?} ends with a lone %") };
            let month = MONTHS[self.month as usize - 1];
            let weekday = WEEKDAYS[self.weekday()];
            match directive {
                'Y' => out.push_str(&format!("{:04}", self.year)),
                'y' => out.push_str(&format!("{:02}", self.year.rem_euclid(100))),
                'm' => out.push_str(&format!("{:02}", self.month)),
                'd' => out.push_str(&format!("{:02}", self.day)),
                'e' => out.push_str(&format!("{:2}", self.day)),
                'j' => out.push_str(&format!("{:03}", self.ordinal())),
                'B' => out.push_str(month),
                'b' | 'h' => out.push_str(&month[..3]),
                'A' => out.push_str(weekday),
                'a' => out.push_str(&weekday[..3]),
                'u' => out.push_str(&(self.weekday() + 1).to_string()),
                'w' => out.push_str(&((self.weekday() + 1) % 7).to_string()),
                'F' => out.push_str(&format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)),
                'H' | 'M' | 'S' | 'I' => out.push_str(if directive == 'I' { "12" } else { "00" }),
                'p' => out.push_str("AM"),
                '%' => out.push('%'),
                other => bail!("strftime directive %{other} is not supported"),
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_python() {
        // Checked against Python: date(2024, 7, 26).strftime(...)
        let d = CalendarDate::new(2024, 7, 26).unwrap();
        assert_eq!(d.strftime("%d %b %Y").unwrap(), "26 Jul 2024");
        assert_eq!(d.strftime("%A, %B %e, %y (%j) %H:%M %p %%").unwrap(), "Friday, July 26, 24 (208) 00:00 AM %");
        assert_eq!(CalendarDate::new(2000, 3, 1).unwrap().strftime("%a %F %u %w").unwrap(), "Wed 2000-03-01 3 3");
        assert_eq!(CalendarDate::new(2023, 1, 1).unwrap().strftime("%a").unwrap(), "Sun");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(CalendarDate::new(2023, 2, 29).is_err());
        assert!(CalendarDate::new(2024, 13, 1).is_err());
        let unchecked = CalendarDate { year: 2024, month: 13, day: 1 };
        assert!(unchecked.strftime("%b").unwrap_err().to_string().contains("2024-13-01"));
        let d = CalendarDate::new(2024, 2, 29).unwrap();
        assert!(d.strftime("%Q").unwrap_err().to_string().contains("%Q"));
        assert!(d.strftime("50%").is_err());
    }
}
