use serde_json::json;

use super::{Key, Map, Value};

fn parse(text: &str) -> Value {
  serde_json::from_str(text).expect("valid JSON")
}

fn keys(map: &Map) -> Vec<&str> {
  map.keys().map(|key| key.as_str()).collect()
}

#[test]
fn a_value_is_at_most_32_bytes() {
  assert!(
    std::mem::size_of::<Value>() <= 32,
    "{}",
    std::mem::size_of::<Value>()
  );
  assert!(std::mem::size_of::<Map>() <= 16);
  assert_eq!(std::mem::size_of::<Key>(), 8);
}

/// The keys of each object in `records` (an array of objects), as held.
fn record_keys(records: &Value) -> Vec<Vec<&Key>> {
  records
    .as_array()
    .unwrap()
    .iter()
    .map(|record| record.as_object().unwrap().keys().collect())
    .collect()
}

fn shared(a: &[&Key], b: &[&Key]) -> bool {
  a.len() == b.len() && a.iter().zip(b).all(|(x, y)| Key::ptr_eq(x, y))
}

#[test]
fn records_of_one_shape_share_their_keys_and_a_new_shape_is_shared_from_then_on() {
  let text = r#"[
    {"id": 1, "name": "a", "address": {"city": "x", "zip": "1"}},
    {"id": 2, "name": "b", "address": {"city": "y", "zip": "2"}},
    {"name": "c", "id": 3, "address": {"zip": "3", "city": "z"}},
    {"name": "d", "id": 4, "address": {"zip": "4", "city": "w"}},
    {"name": "e", "id": 5, "extra": true, "extra": false}
  ]"#;
  let value = parse(text);
  let top = record_keys(&value);
  assert!(
    shared(&top[0], &top[1]),
    "the second record shares the first's keys"
  );
  assert!(
    !Key::ptr_eq(top[1][0], top[2][1]),
    "keys in another order are new"
  );
  assert!(
    shared(&top[2], &top[3]),
    "the new order is shared from then on"
  );
  assert!(Key::ptr_eq(top[3][0], top[4][0]) && Key::ptr_eq(top[3][1], top[4][1]));
  let nested = |i: usize| {
    value[i]["address"]
      .as_object()
      .unwrap()
      .keys()
      .collect::<Vec<_>>()
  };
  assert!(
    shared(&nested(0), &nested(1)),
    "objects nested in records too"
  );
  assert!(shared(&nested(2), &nested(3)));
  // Sharing is invisible to everything else: the same text, values and order as serde_json's.
  assert_eq!(
    value,
    serde_json::from_str::<serde_json::Value>(text).unwrap()
  );
  assert_eq!(
    serde_json::to_string(&value).unwrap(),
    serde_json::to_string(&serde_json::from_str::<serde_json::Value>(text).unwrap()).unwrap()
  );
  assert_eq!(keys(value[4].as_object().unwrap()), ["name", "id", "extra"]);
  assert_eq!(value[4]["extra"], Value::Bool(false));
}

#[test]
fn a_map_keeps_insertion_order_and_shifts_on_removal() {
  let mut map = Map::new();
  for key in ["z", "a", "m", "b"] {
    map.insert(key, Value::from(key));
  }
  assert_eq!(keys(&map), ["z", "a", "m", "b"]);
  assert_eq!(map.insert("a", Value::Null), Some(Value::from("a")));
  assert_eq!(
    keys(&map),
    ["z", "a", "m", "b"],
    "a replaced value keeps its place"
  );
  assert_eq!(map.shift_remove("a"), Some(Value::Null));
  assert_eq!(keys(&map), ["z", "m", "b"]);
  assert_eq!(map.shift_remove("a"), None);
  map.insert("a", Value::Bool(true));
  assert_eq!(keys(&map), ["z", "m", "b", "a"], "a key put back goes last");
  map.retain(|key, _| key != "m");
  assert_eq!(keys(&map), ["z", "b", "a"]);
}

#[test]
fn parsing_keeps_the_text_order_and_a_repeated_key_keeps_its_first_place() {
  let value = parse(r#"{"b": 1, "a": 2, "c": 3, "a": 4}"#);
  let map = value.as_object().unwrap();
  assert_eq!(keys(map), ["b", "a", "c"]);
  assert_eq!(map.get("a"), Some(&Value::from(4u64)));
  assert_eq!(
    serde_json::to_string(&value).unwrap(),
    r#"{"b":1,"a":4,"c":3}"#
  );
}

/// The map's entries and index agree with a model (a vector of pairs) after each step.
fn check(map: &Map, model: &[(String, u64)]) {
  assert_eq!(map.len(), model.len());
  assert_eq!(
    keys(map),
    model.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>()
  );
  for (key, n) in model {
    assert_eq!(map.get(key), Some(&Value::from(*n)), "{key}");
  }
  assert_eq!(map.get("absent"), None);
}

#[test]
fn the_index_switches_on_and_off_and_stays_correct() {
  let mut map = Map::new();
  let mut model = Vec::new();
  for i in 0..40u64 {
    map.insert(format!("k{i}"), Value::from(i));
    model.push((format!("k{i}"), i));
    check(&map, &model);
    assert_eq!(map.is_indexed(), map.len() > 32, "after inserting k{i}");
  }
  // Removal from the middle, the front and the end shifts the indexed positions.
  for key in ["k20", "k0", "k39", "k5"] {
    map.shift_remove(key);
    model.retain(|(k, _)| k != key);
    check(&map, &model);
  }
  assert!(map.is_indexed(), "kept above the lower threshold");
  // Replacing in place and re-inserting a removed key go through the index.
  map.insert("k7", Value::from(700u64));
  model.iter_mut().find(|(k, _)| k == "k7").unwrap().1 = 700;
  map.insert("k20", Value::from(20u64));
  model.push(("k20".into(), 20));
  check(&map, &model);
  map.retain(|key, _| key.len() == 3);
  model.retain(|(k, _)| k.len() == 3);
  check(&map, &model);
  while map.len() > 3 {
    let key = model.remove(1).0;
    map.shift_remove(&key);
    check(&map, &model);
  }
  assert!(!map.is_indexed());
}

#[test]
fn a_large_object_parses_indexed_and_finds_every_key() {
  let text = serde_json::to_string(
    &(0..10_000)
      .map(|i| (format!("key-{i}"), json!(i)))
      .collect::<serde_json::Map<_, _>>(),
  )
  .unwrap();
  let value = parse(&text);
  let map = value.as_object().unwrap();
  assert!(map.is_indexed());
  assert!((0..10_000).all(|i| map.get(&format!("key-{i}")) == Some(&Value::from(i as u64))));
  assert_eq!(serde_json::to_string(&value).unwrap(), text);
}

#[test]
fn text_round_trips_as_serde_json_does() {
  let texts = [
    r#"{"users":[{"id":1,"name":"user-1","tags":["beta","a string longer than twenty-four bytes"],"address":{"city":"City 1","zip":"10001"}}],"meta":{}}"#,
    r#"[null,true,false,"",[],{},"\u00e9\ud83d\ude00\n\"\\"]"#,
    r#"{"":{"":[]}}"#,
  ];
  for text in texts {
    let ours = parse(text);
    let theirs: serde_json::Value = serde_json::from_str(text).unwrap();
    assert_eq!(ours, theirs);
    assert_eq!(
      serde_json::to_string(&ours).unwrap(),
      serde_json::to_string(&theirs).unwrap()
    );
    assert_eq!(
      serde_json::to_string_pretty(&ours).unwrap(),
      serde_json::to_string_pretty(&theirs).unwrap()
    );
    assert_eq!(ours.to_string(), theirs.to_string());
  }
}

#[test]
fn numbers_are_kept_as_serde_json_keeps_them() {
  let texts = [
    "0",
    "-0",
    "18446744073709551615",
    "-9223372036854775808",
    "9223372036854775808",
    "1e400",
    "0.1",
    "2.5e-308",
    "1.7976931348623157e308",
    "5e-324",
    "123456789.123456789",
    "1.0",
    "-1.5",
    "18446744073709551616",
  ];
  for text in texts {
    let ours: Result<Value, _> = serde_json::from_str(text);
    let theirs: Result<serde_json::Value, _> = serde_json::from_str(text);
    match (ours, theirs) {
      (Ok(ours), Ok(theirs)) => {
        assert_eq!(ours, theirs, "{text}");
        assert_eq!(ours.is_u64(), theirs.is_u64(), "{text}");
        assert_eq!(ours.is_i64(), theirs.is_i64(), "{text}");
        assert_eq!(ours.is_f64(), theirs.is_f64(), "{text}");
        assert_eq!(
          ours.as_f64().map(f64::to_bits),
          theirs.as_f64().map(f64::to_bits),
          "{text}"
        );
        assert_eq!(ours.to_string(), theirs.to_string(), "{text}");
      }
      (Err(ours), Err(theirs)) => assert_eq!(ours.to_string(), theirs.to_string(), "{text}"),
      (ours, theirs) => panic!("{text}: {ours:?} against {theirs:?}"),
    }
  }
  assert_eq!(Value::from(f64::NAN), Value::Null);
  assert_ne!(
    Value::from(1u64),
    Value::from(1.0),
    "an integer is not a double, as in serde_json"
  );
}

#[test]
fn conversions_from_and_to_serde_json_round_trip() {
  let theirs = json!({"b": [1, -2, 3.5, "x", null, true, {"z": {}, "a": []}], "a": "a string longer than twenty-four bytes"});
  let ours = Value::from(theirs.clone());
  assert_eq!(ours, theirs);
  let back = serde_json::Value::from(&ours);
  assert_eq!(back, theirs);
  assert_eq!(
    serde_json::to_string(&back).unwrap(),
    serde_json::to_string(&theirs).unwrap(),
    "key order kept"
  );
}

#[test]
fn equality_ignores_key_order_as_serde_json_does() {
  assert_eq!(parse(r#"{"a":1,"b":2}"#), parse(r#"{"b":2,"a":1}"#));
  assert_ne!(parse(r#"{"a":1,"b":2}"#), parse(r#"{"a":1}"#));
  assert_ne!(parse(r#"{"a":1}"#), json!({"a": 1, "b": 2}));
}

#[test]
fn deep_nesting_parses_to_serde_jsons_limit_and_fails_past_it() {
  let nested = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
  let ours = parse(&nested(127));
  assert_eq!(ours.to_string(), nested(127));
  let too_deep = serde_json::from_str::<Value>(&nested(200)).unwrap_err();
  let theirs = serde_json::from_str::<serde_json::Value>(&nested(200)).unwrap_err();
  assert_eq!(too_deep.to_string(), theirs.to_string());
  let objects = format!("{}1{}", r#"{"a":"#.repeat(100), "}".repeat(100));
  let mut at = &parse(&objects);
  for _ in 0..100 {
    at = &at["a"];
  }
  assert_eq!(at, &Value::from(1u64));
}

#[test]
fn invalid_text_fails_with_serde_jsons_error() {
  for text in [r#"{"a":}"#, "[1,", r#"{"a" 1}"#, "nul", r#"{1:2}"#] {
    let ours = serde_json::from_str::<Value>(text).unwrap_err().to_string();
    let theirs = serde_json::from_str::<serde_json::Value>(text)
      .unwrap_err()
      .to_string();
    assert_eq!(ours, theirs, "{text}");
  }
}

#[test]
fn index_and_accessors_read_as_serde_jsons() {
  let value = Value::from(json!({"a": [1, {"b": "c"}]}));
  assert_eq!(value["a"][1]["b"].as_str(), Some("c"));
  assert!(value["x"]["y"][3].is_null());
  assert_eq!(
    value.get("a").and_then(Value::as_array).map(Vec::len),
    Some(2)
  );
  let mut value = value;
  let taken = value.get_mut("a").unwrap().take();
  assert!(taken.is_array());
  assert_eq!(value, json!({"a": null}));
}
