//! `list_all_airports`: the airports the airline serves, by IATA code.

use serde_json::{json, Map, Value};

use crate::env::{Args, Db, Tool, ToolKind, ToolResult};
use crate::pyjson::dumps;

pub const TOOL: Tool = Tool {
    name: "list_all_airports",
    kind: ToolKind::Read,
    description: "List every airport the airline flies to, as a map from three-letter IATA \
                  code to the city it serves.",
    parameters,
    run,
};

fn parameters() -> Value {
    json!({"type": "object", "properties": {}, "required": []})
}

/// The network is fixed, not read from the database, exactly as in τ-bench; the order of
/// the pairs is the order of the result.
const AIRPORTS: [(&str, &str); 20] = [
    ("SFO", "San Francisco"),
    ("JFK", "New York"),
    ("LAX", "Los Angeles"),
    ("ORD", "Chicago"),
    ("DFW", "Dallas"),
    ("DEN", "Denver"),
    ("SEA", "Seattle"),
    ("ATL", "Atlanta"),
    ("MIA", "Miami"),
    ("BOS", "Boston"),
    ("PHX", "Phoenix"),
    ("IAH", "Houston"),
    ("LAS", "Las Vegas"),
    ("MCO", "Orlando"),
    ("EWR", "Newark"),
    ("CLT", "Charlotte"),
    ("MSP", "Minneapolis"),
    ("DTW", "Detroit"),
    ("PHL", "Philadelphia"),
    ("LGA", "LaGuardia"),
];

fn run(_db: &mut Db, _args: &Args) -> ToolResult {
    let map: Map<String, Value> = AIRPORTS.iter().map(|(code, city)| (code.to_string(), Value::from(*city))).collect();
    Ok(dumps(&Value::Object(map)))
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
    fn takes_no_arguments() {
        let mut data = db();
        assert_eq!(
            call(&TOOL, &mut data, json!({"city": "Boston"})).unwrap_err(),
            "Error: list_all_airports() got an unexpected argument 'city'"
        );
    }
}
