//! Property tests: any arguments, well-typed or not, give `Ok` or an `Error: ` string, never a
//! panic, whether they go through the schema check (`Tool::call`) or straight to `run`.

use proptest::prelude::*;
use serde_json::{Map, Value};

use super::fixture;
use crate::env::Args;

/// Words that hit the fixture's records and the tools' keys, so random calls often get past
/// the first lookup.
const WORDS: &[&str] = &[
    "ivy_moreau_101",
    "omar_castillo_202",
    "lena_park_303",
    "QX7P2A",
    "LM3K9Z",
    "TR8W4N",
    "HATHAT",
    "HAT901",
    "HAT902",
    "HAT903",
    "HAT904",
    "HAT905",
    "HAT906",
    "BOS",
    "ORD",
    "SEA",
    "JFK",
    "2024-05-20",
    "2024-05-21",
    "2024-05-22",
    "2024-05-ab",
    "economy",
    "business",
    "basic_economy",
    "yes",
    "no",
    "one_way",
    "credit_card_1100001",
    "gift_card_1100002",
    "certificate_1100003",
    "gift_card_1100004",
    "flight_number",
    "date",
    "payment_id",
    "amount",
    "first_name",
    "last_name",
    "dob",
    "",
];

fn word() -> impl Strategy<Value = String> {
    prop_oneof![4 => proptest::sample::select(WORDS).prop_map(str::to_string), 1 => ".{0,6}"]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-3i64..300).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e3f64..1e3).prop_map(Value::from),
        proptest::num::f64::NORMAL.prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), number(), word().prop_map(Value::String)];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            proptest::collection::vec((word(), inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// A value that fits `schema` (so it passes the schema check and reaches the tool's logic),
/// with nested objects sometimes missing or gaining keys, as the check allows.
fn typed_value(schema: &Value) -> BoxedStrategy<Value> {
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => match schema.get("enum").and_then(Value::as_array) {
            Some(options) if !options.is_empty() => {
                prop_oneof![3 => proptest::sample::select(options.clone()), 1 => word().prop_map(Value::String)].boxed()
            }
            _ => word().prop_map(Value::String).boxed(),
        },
        Some("integer") => {
            prop_oneof![(-3i64..300).prop_map(Value::from), any::<i64>().prop_map(Value::from), any::<u64>().prop_map(Value::from)].boxed()
        }
        Some("number") => number().boxed(),
        Some("array") => {
            let items = schema.get("items").map(typed_value).unwrap_or_else(|| json_value().boxed());
            proptest::collection::vec(items, 0..4).prop_map(Value::Array).boxed()
        }
        Some("object") => {
            let props: Vec<(String, BoxedStrategy<Value>)> =
                schema["properties"].as_object().map(|p| p.iter().map(|(k, v)| (k.clone(), typed_value(v))).collect()).unwrap_or_default();
            let (names, values): (Vec<String>, Vec<BoxedStrategy<Value>>) = props.into_iter().unzip();
            let present = proptest::collection::vec(prop_oneof![9 => Just(true), 1 => Just(false)], names.len());
            (values, present, proptest::option::weighted(0.1, (word(), json_value())))
                .prop_map(move |(values, present, extra)| {
                    let mut map: Map<String, Value> =
                        names.iter().zip(values).zip(present).filter(|(_, keep)| *keep).map(|((k, v), _)| (k.clone(), v)).collect();
                    if let Some((k, v)) = extra {
                        map.insert(k, v);
                    }
                    Value::Object(map)
                })
                .boxed()
        }
        _ => json_value().boxed(),
    }
}

/// Arguments for a tool with parameter schema `params`: well-typed most of the time, otherwise
/// with parameters dropped, given values of any type, or joined by an undeclared one.
fn arguments(params: &Value) -> BoxedStrategy<Args> {
    let typed = typed_value(params).prop_map(|v| v.as_object().cloned().unwrap_or_default());
    let names: Vec<String> = params["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
    let n = names.len();
    let untyped = (proptest::collection::vec((any::<bool>(), json_value()), n), proptest::option::of((word(), json_value()))).prop_map(
        move |(values, extra)| {
            let mut args: Args = names.iter().zip(values).filter(|(_, (keep, _))| *keep).map(|(k, (_, v))| (k.clone(), v)).collect();
            if let Some((k, v)) = extra {
                args.insert(k, v);
            }
            args
        },
    );
    prop_oneof![3 => typed, 1 => untyped].boxed()
}

fn every_tool_with_arguments() -> impl Strategy<Value = (usize, Args)> {
    let strategies: Vec<_> =
        super::domain().tools.iter().enumerate().map(|(i, tool)| arguments(&(tool.parameters)()).prop_map(move |args| (i, args))).collect();
    proptest::strategy::Union::new(strategies)
}

fn assert_clean(result: &Result<String, String>) -> Result<(), TestCaseError> {
    if let Err(e) = result {
        prop_assert!(e.starts_with("Error: "), "error without the Error: prefix: {e}");
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_calls_never_panic((index, args) in every_tool_with_arguments()) {
        let tools = super::domain().tools;
        let tool = &tools[index];
        let mut db = fixture::db();
        assert_clean(&tool.call(&mut db, &args))?;
        let mut db = fixture::db();
        assert_clean(&(tool.run)(&mut db, &args))?;
    }

    #[test]
    fn random_call_sequences_never_panic(calls in proptest::collection::vec(every_tool_with_arguments(), 1..6)) {
        let tools = super::domain().tools;
        let mut db = fixture::db();
        for (index, args) in calls {
            assert_clean(&tools[index].call(&mut db, &args))?;
        }
    }
}
