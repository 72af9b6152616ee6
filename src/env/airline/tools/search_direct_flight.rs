//! `search_direct_flight`: nonstop flights between two airports that can be booked on a date.

use serde_json::{json, Map, Value};

use crate::env::lookup::{arg_str, field, field_obj, table};
use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

pub const TOOL: Tool = Tool {
    name: "search_direct_flight",
    kind: ToolKind::Read,
    description: "Find nonstop flights from one airport to another that are open for booking \
                  on a given day. Each result carries the flight's schedule together with that \
                  day's remaining seats and prices per cabin.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({
        "type": "object",
        "properties": {
            "origin": {"type": "string", "description": "Departure airport as a three-letter IATA code, for example 'BOS'."},
            "destination": {"type": "string", "description": "Arrival airport as a three-letter IATA code, for example 'SEA'."},
            "date": {"type": "string", "description": "Day of departure as 'YYYY-MM-DD', for example '2024-05-20'."}
        },
        "required": ["origin", "destination", "date"]
    })
}

/// A JSON list, in the flights table's order, of every flight from `origin` to `destination`
/// whose status on `date` is `available`.
fn run(db: &mut Db, args: &Args) -> ToolResult {
    let origin = arg_str(args, "origin")?;
    let destination = arg_str(args, "destination")?;
    let date = arg_str(args, "date")?;
    let mut results = Vec::new();
    for (number, flight) in table(db, "flights")? {
        let what = format!("flight {number}");
        if field(flight, "origin", &what)? != origin || field(flight, "destination", &what)? != destination {
            continue;
        }
        let Some(day) = field_obj(flight, "dates", &what)?.get(date) else { continue };
        if field(day, "status", &what)? == "available" {
            results.push(Value::Object(flight_on_day(flight, day, &what)?));
        }
    }
    Ok(dumps(&Value::Array(results)))
}

/// A flight's record without its `dates`, updated with one day's entry (Python's
/// `dict.update`: keys already present keep their place).
pub(crate) fn flight_on_day(flight: &Value, day: &Value, what: &str) -> Result<Map<String, Value>, String> {
    let not_object = || format!("Error: malformed data: {what} is not an object");
    let mut result: Map<String, Value> = flight
        .as_object()
        .ok_or_else(not_object)?
        .iter()
        .filter(|(k, _)| k.as_str() != "dates")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (key, value) in day.as_object().ok_or_else(not_object)? {
        result.insert(key.clone(), value.clone());
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::TOOL;
    use crate::env::airline::fixture::{call, db};
    use crate::env::airline::golden;
    use serde_json::json;

    #[test]
    fn matches_tau_bench() {
        golden::check(TOOL.name);
    }

    #[test]
    fn malformed_flight_records_are_errors() {
        let mut data = db();
        data["flights"]["HAT901"] = json!("not a flight");
        let err = call(&TOOL, &mut data, json!({"origin": "BOS", "destination": "ORD", "date": "2024-05-20"})).unwrap_err();
        assert_eq!(err, "Error: malformed data: flight HAT901 has no 'origin'");
        data["flights"]["HAT901"] = json!({"origin": "BOS"});
        let err = call(&TOOL, &mut data, json!({"origin": "BOS", "destination": "ORD", "date": "2024-05-20"})).unwrap_err();
        assert_eq!(err, "Error: malformed data: flight HAT901 has no 'destination'");
    }
}
