//! `search_onestop_flight`: two-leg itineraries with one connection, bookable from a date.

use serde_json::{json, Value};

use super::search_direct_flight::flight_on_day;
use crate::env::airline::py::{key_error, repr_str};
use crate::env::lookup::{arg_str, field, field_obj, field_str, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

pub const TOOL: Tool = Tool {
    name: "search_onestop_flight",
    kind: ToolKind::Read,
    description: "Find itineraries from one airport to another with exactly one connection, \
                  leaving on a given day. Each result is a pair of legs, each with its schedule, \
                  that day's seats and prices per cabin, and the date the leg flies.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "origin": {"type": "string", "description": "Departure airport as a three-letter IATA code, for example 'JFK'."},
            "destination": {"type": "string", "description": "Final arrival airport as a three-letter IATA code, for example 'SEA'."},
            "date": {"type": "string", "description": "Day the first leg departs, as 'YYYY-MM-DD', for example '2024-05-20'."}
        },
        "required": ["origin", "destination", "date"]
    })
}

/// A JSON list of `[first_leg, second_leg]` pairs, following τ-bench's search exactly,
/// including its quirks:
/// - when the first leg lands the next day (`+1` in its arrival time), the second leg's date
///   is `2024-05-{day + 1}` with the day read from the last two characters of `date` and not
///   zero-padded; if those characters are not an integer the result is Python's
///   `Error: invalid literal for int() with base 10: '..'` (ASCII digits only);
/// - a connection is kept only if the first leg's arrival time sorts no later than the second
///   leg's departure time, compared as strings;
/// - the second leg's seats and prices are those of `date`, not of its own date, so when it
///   does not fly on `date` the search fails with τ-bench's `Error: '<date>'` (a `KeyError`).
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let origin = arg_str(args, "origin")?;
    let destination = arg_str(args, "destination")?;
    let date = arg_str(args, "date")?;
    let flights = table(db, "flights")?;
    let mut results = Vec::new();
    for (first_number, first) in flights {
        let first_what = format!("flight {first_number}");
        if field(first, "origin", &first_what)? != origin {
            continue;
        }
        for (second_number, second) in flights {
            let second_what = format!("flight {second_number}");
            if field(second, "destination", &second_what)? != destination
                || field(first, "destination", &first_what)? != field(second, "origin", &second_what)?
            {
                continue;
            }
            let arrival = field_str(first, "scheduled_arrival_time_est", &first_what)?;
            let second_date =
                if arrival.contains("+1") { format!("2024-05-{}", python_int(last_two_chars(date))? + 1) } else { date.to_string() };
            let departure = field_str(second, "scheduled_departure_time_est", &second_what)?;
            if arrival > departure {
                continue;
            }
            let first_dates = field_obj(first, "dates", &first_what)?;
            let second_dates = field_obj(second, "dates", &second_what)?;
            let (Some(first_day), Some(second_day)) = (first_dates.get(date), second_dates.get(&second_date)) else {
                continue;
            };
            if field(first_day, "status", &first_what)? != "available" || field(second_day, "status", &second_what)? != "available" {
                continue;
            }
            let mut leg1 = flight_on_day(first, first_day, &first_what)?;
            leg1.insert("date".into(), Value::from(date));
            let day_of_search = second_dates.get(date).ok_or_else(|| key_error(date))?;
            let mut leg2 = flight_on_day(second, day_of_search, &second_what)?;
            leg2.insert("date".into(), Value::from(second_date));
            results.push(json!([leg1, leg2]));
        }
    }
    Ok(dumps(&Value::Array(results)))
}

/// Python's `s[-2:]`: the last two characters.
fn last_two_chars(s: &str) -> &str {
    match s.char_indices().rev().nth(1) {
        Some((i, _)) => &s[i..],
        None => s,
    }
}

/// Python's `int(s)` for base 10 with ASCII digits: surrounding whitespace, an optional sign,
/// digits with single underscores between them.
fn python_int(s: &str) -> Result<i64, String> {
    let invalid = || format!("Error: invalid literal for int() with base 10: {}", repr_str(s));
    let trimmed = s.trim_matches(|c: char| c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c));
    let (negative, digits) = match trimmed.as_bytes().first() {
        Some(b'-') => (true, &trimmed[1..]),
        Some(b'+') => (false, &trimmed[1..]),
        _ => (false, trimmed),
    };
    let well_formed = !digits.is_empty()
        && !digits.starts_with('_')
        && !digits.ends_with('_')
        && !digits.contains("__")
        && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !well_formed {
        return Err(invalid());
    }
    let value: i64 = digits.replace('_', "").parse().map_err(|_| invalid())?;
    Ok(if negative { -value } else { value })
}

#[cfg(test)]
mod tests {
    use super::TOOL;
    use crate::env::airline::fixture::{call, db};
    use crate::env::airline::golden;
    use serde_json::json;

    use super::{last_two_chars, python_int};

    #[test]
    fn matches_tau_bench() {
        golden::check(TOOL.name);
    }

    #[test]
    fn day_parsing_follows_python_int() {
        assert_eq!(last_two_chars("2024-05-20"), "20");
        assert_eq!(last_two_chars("é9x"), "9x");
        assert_eq!(last_two_chars("5"), "5");
        assert_eq!(python_int("07"), Ok(7));
        assert_eq!(python_int(" 7"), Ok(7));
        assert_eq!(python_int("+1"), Ok(1));
        assert_eq!(python_int("-3"), Ok(-3));
        assert_eq!(python_int("1_0"), Ok(10));
        assert_eq!(python_int("_1").unwrap_err(), "Error: invalid literal for int() with base 10: '_1'");
        assert_eq!(python_int("").unwrap_err(), "Error: invalid literal for int() with base 10: ''");
        assert_eq!(python_int("- 1").unwrap_err(), "Error: invalid literal for int() with base 10: '- 1'");
    }

    #[test]
    fn unpadded_next_day_misses_early_dates() {
        // HAT903 lands the next day; from the 5th the connection would fly on "2024-05-6",
        // which no flight has, so nothing is found, as in τ-bench.
        let mut data = db();
        let dates = data["flights"]["HAT903"]["dates"].as_object_mut().unwrap();
        let day = dates["2024-05-20"].clone();
        dates.insert("2024-05-05".into(), day.clone());
        data["flights"]["HAT902"]["dates"].as_object_mut().unwrap().insert("2024-05-06".into(), day);
        let out = call(&TOOL, &mut data, json!({"origin": "BOS", "destination": "SEA", "date": "2024-05-05"})).unwrap();
        assert_eq!(out, "[]");
    }
}
