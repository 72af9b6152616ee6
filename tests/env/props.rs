//! Random arguments and damaged data thrown at every tool: no panic, and every failure is an
//! `Error: ` string.

use std::path::Path;
use std::sync::LazyLock;

use apigen_mt::env::{data, domain, Args, Db, Env};
use proptest::prelude::*;
use serde_json::{json, Value};

static FIXTURE: LazyLock<Db> = LazyLock::new(|| {
    let retail = domain("retail").unwrap();
    data::load_dir(retail, &Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/retail")).unwrap()
});

fn fixture() -> Db {
    FIXTURE.clone()
}

/// Strings that hit real records often enough to reach the deep code paths.
fn id_string() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "#R8800101",
            "#R8800102",
            "#R8800103",
            "#R8800201",
            "#R8800202",
            "#R8800203",
            "#R8800204",
            "7101000001",
            "7101000002",
            "7101000003",
            "7102000001",
            "7102000002",
            "7102000003",
            "7103000001",
            "7103000002",
            "7104000001",
            "5201000001",
            "5201000002",
            "mira_okafor_1187",
            "tomas_lindqvist_5520",
            "gift_card_9920113",
            "gift_card_5521870",
            "gift_card_5521871",
            "credit_card_4410021",
            "paypal_3319054",
            "no longer needed",
            "ordered by mistake",
            "1 + 2",
            "(3 * 4.5) / 0",
            "2 ** 2 ** 2 ** 2",
            "",
        ])
        .prop_map(str::to_string),
        "[0-9+*/(). -]{0,24}",
        ".{0,12}",
    ]
}

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        id_string().prop_map(Value::from),
    ];
    leaf.prop_recursive(2, 8, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec(("[a-z_]{1,8}", inner), 0..3).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Arguments shaped like the tool's own parameters, with occasional wrong types and extras.
fn arguments(names: Vec<String>) -> impl Strategy<Value = Args> {
    let value = prop_oneof![
        4 => id_string().prop_map(Value::from),
        3 => prop::collection::vec(id_string(), 0..4).prop_map(|v| json!(v)),
        1 => any_json(),
    ];
    let extra = prop::option::weighted(0.1, ("[a-z]{1,6}", any_json()));
    (prop::collection::vec((any::<bool>(), value), names.len()), extra).prop_map(move |(values, extra)| {
        let mut args = Args::new();
        for (name, (present, v)) in names.iter().zip(values) {
            if present || names.len() < 2 {
                args.insert(name.clone(), v);
            }
        }
        if let Some((k, v)) = extra {
            args.insert(k, v);
        }
        args
    })
}

fn tool_and_arguments() -> impl Strategy<Value = (String, Args)> {
    let retail = domain("retail").unwrap();
    let tools: Vec<(String, Vec<String>)> = retail
        .tools
        .iter()
        .map(|t| {
            let schema = (t.parameters)();
            let names = schema["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default();
            (t.name.to_string(), names)
        })
        .collect();
    prop::sample::select(tools).prop_flat_map(|(name, params)| (Just(name), arguments(params)))
}

fn assert_well_formed(result: &Result<String, String>) {
    if let Err(e) = result {
        assert!(e.starts_with("Error: "), "error without the prefix: {e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 600, ..ProptestConfig::default() })]

    #[test]
    fn random_calls_never_panic((name, args) in tool_and_arguments()) {
        let retail = domain("retail").unwrap();
        let tool = retail.tool(&name).unwrap();
        // Through the schema check, as agents call tools ...
        let mut db = fixture();
        assert_well_formed(&tool.call(&mut db, &args));
        // ... and straight into the tool, which must not trust its arguments either.
        let mut db = fixture();
        assert_well_formed(&(tool.run)(&mut db, &args));
    }

    #[test]
    fn damaged_data_gives_errors_not_panics(
        damage in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of(any_json())), 1..4),
        calls in prop::collection::vec(tool_and_arguments(), 1..4),
    ) {
        let mut db = fixture();
        for (index, replacement) in damage {
            damage_one(&mut db, index, replacement);
        }
        let retail = domain("retail").unwrap();
        let mut env = Env::new(retail, db);
        for (name, args) in calls {
            let action = apigen_mt::env::Action { name, kwargs: args };
            assert_well_formed(&env.step(&action));
        }
    }
}

/// Removes, or replaces with `replacement`, one value chosen among every location in the data.
fn damage_one(db: &mut Db, index: prop::sample::Index, replacement: Option<Value>) {
    let mut root = Value::Object(std::mem::take(db));
    let mut pointers = Vec::new();
    collect_pointers(&root, String::new(), &mut pointers);
    let pointer = index.get(&pointers).clone();
    if let Some((parent, last)) = pointer.rsplit_once('/') {
        let target = if parent.is_empty() { Some(&mut root) } else { root.pointer_mut(parent) };
        match (target, replacement) {
            (Some(Value::Object(map)), None) => {
                map.shift_remove(last);
            }
            (Some(Value::Object(map)), Some(v)) => {
                map.insert(last.to_string(), v);
            }
            (Some(Value::Array(items)), r) => {
                if let Ok(i) = last.parse::<usize>() {
                    match r {
                        None => {
                            items.remove(i);
                        }
                        Some(v) => items[i] = v,
                    }
                }
            }
            _ => {}
        }
    }
    if let Value::Object(map) = root {
        *db = map;
    }
}

fn collect_pointers(value: &Value, path: String, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                // Keys here contain no '/' or '~', so no escaping is needed.
                let child = format!("{path}/{k}");
                out.push(child.clone());
                collect_pointers(v, child, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let child = format!("{path}/{i}");
                out.push(child.clone());
                collect_pointers(v, child, out);
            }
        }
        _ => {}
    }
}
