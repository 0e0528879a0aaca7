//! Tests of the engine: the table cases in `testdata/*.json`, properties (proptest), and checks
//! that cost follows the change.

use std::cmp::Ordering;
use std::fs;
use std::path::PathBuf;

use proptest::prelude::*;
use serde::Deserialize;

use crate::doc::{json, Map, Value};

use super::compare::compare_numbers;
use super::*;

/// One update of the operations of `ops` (a later operand of one field replaces an earlier):
/// random updates of several operators.
pub(crate) fn merged(ops: Vec<Value>) -> Value {
  let mut merged = Map::new();
  for op in ops {
    for (name, fields) in op.as_object().into_iter().flatten() {
      if !merged.contains_key(name) {
        merged.insert(name.clone(), json!({}));
      }
      if let Some(Value::Object(entry)) = merged.get_mut(name) {
        for (field, value) in fields.as_object().into_iter().flatten() {
          entry.insert(field.clone(), value.clone());
        }
      }
    }
  }
  Value::Object(merged)
}

/// 2024-05-01T12:00:00.000Z, the clock of every table case that does not set `now`.
const NOW_MS: i64 = 1_714_564_800_000;

/// One table case: `expect` (the resulting document) or `error` (a code, plus an optional
/// `message` substring).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
  name: String,
  doc: Value,
  update: Value,
  #[serde(default)]
  expect: Option<Value>,
  #[serde(default)]
  error: Option<String>,
  #[serde(default)]
  message: Option<String>,
  /// The exact change list in its wire form.
  #[serde(default)]
  changes: Option<Value>,
  /// Numbers must also agree on integer vs double.
  #[serde(default)]
  strict: bool,
  /// The clock, when the case is about `$currentDate`.
  #[serde(default)]
  now: Option<i64>,
}

/// Deep equality ignoring object key order; numbers by value, and by kind too when `strict`.
fn same(a: &Value, b: &Value, strict: bool) -> bool {
  match (a, b) {
    (Value::Number(x), Value::Number(y)) => {
      compare_numbers(x, y) == Ordering::Equal && (!strict || x.is_f64() == y.is_f64())
    }
    (Value::Array(x), Value::Array(y)) => {
      x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q, strict))
    }
    (Value::Object(x), Value::Object(y)) => {
      x.len() == y.len()
        && x
          .iter()
          .all(|(key, p)| y.get(key).is_some_and(|q| same(p, q, strict)))
    }
    _ => a == b,
  }
}

/// Exact equality, key order and number representation included.
fn identical(a: &Value, b: &Value) -> bool {
  serde_json::to_string(a).ok() == serde_json::to_string(b).ok()
}

/// Runs one case; `Err` describes the failure.
fn run_case(case: &Case) -> Result<(), String> {
  let ctx = Context {
    now_ms: case.now.unwrap_or(NOW_MS),
  };
  let mut doc = case.doc.clone();
  let result = apply(&mut doc, &case.update, &ctx);
  match (&case.expect, &case.error, result) {
    (Some(expect), None, Ok(changes)) => {
      if !same(&doc, expect, case.strict) {
        return Err(format!("got {doc}, expected {expect}"));
      }
      let mut replica = case.doc.clone();
      apply_changes(&mut replica, &changes).map_err(|e| format!("replay failed: {e}"))?;
      if !identical(&replica, &doc) {
        return Err(format!("replay gave {replica}, engine gave {doc}"));
      }
      let wire = serde_json::to_value(&changes).map_err(|e| e.to_string())?;
      let back: Vec<Change> = serde_json::from_value(wire.clone()).map_err(|e| e.to_string())?;
      if back != changes {
        return Err(format!("serde roundtrip changed {wire}"));
      }
      if let Some(expected) = &case.changes {
        if &wire != expected {
          return Err(format!("changes {wire}, expected {expected}"));
        }
      }
      Ok(())
    }
    (None, Some(code), Err(err)) => {
      if err.kind.code() != code {
        return Err(format!(
          "error {} ({}), expected {code}",
          err.kind.code(),
          err.message
        ));
      }
      if let Some(part) = &case.message {
        if !err.message.contains(part.as_str()) {
          return Err(format!("message {:?} lacks {part:?}", err.message));
        }
      }
      if !identical(&doc, &case.doc) {
        return Err(format!("failed update changed the document to {doc}"));
      }
      Ok(())
    }
    (_, _, Ok(changes)) => Err(format!(
      "succeeded with {doc} and changes {}",
      serde_json::to_string(&changes).unwrap_or_default()
    )),
    (_, _, Err(err)) => Err(format!("failed: {} {}", err.kind.code(), err.message)),
  }
}

#[test]
fn table_cases() {
  let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/patch/testdata");
  let mut files: Vec<PathBuf> = fs::read_dir(&dir)
    .expect("testdata directory")
    .map(|entry| entry.expect("directory entry").path())
    .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
    .collect();
  files.sort();
  let mut failures = Vec::new();
  let mut count = 0;
  for file in &files {
    let text = fs::read_to_string(file).expect("readable test file");
    let cases: Vec<Case> =
      serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
    for case in &cases {
      count += 1;
      assert!(
        case.expect.is_some() != case.error.is_some(),
        "{stem}: {}: needs exactly one of expect and error",
        case.name
      );
      if let Err(why) = run_case(case) {
        failures.push(format!("{stem}: {}: {why}", case.name));
      }
    }
  }
  println!("{count} table cases in {} files", files.len());
  assert!(
    failures.is_empty(),
    "{} of {count} cases failed:\n{}",
    failures.len(),
    failures.join("\n")
  );
}

#[test]
fn wire_form_example() {
  let mut doc = json!({"n": 1});
  let changes = apply(&mut doc, &json!({"$inc": {"n": 1}}), &Context::default()).unwrap();
  assert_eq!(
    serde_json::to_string(&changes).unwrap(),
    r#"[["s",["n"],2]]"#
  );
  let all = vec![
    Change::Set {
      path: vec![Key::Field("a".into()), Key::Index(0)],
      value: json!({"x": [1.5]}),
    },
    Change::Unset {
      path: vec![Key::Field("0".into())],
    },
    Change::Splice {
      path: vec![Key::Field("a".into())],
      start: 2,
      delete: 1,
      insert: vec![json!(null), json!("s")],
    },
    Change::Move {
      from: vec![Key::Field("a".into())],
      to: vec![Key::Field("b".into()), Key::Field("c".into())],
    },
  ];
  let text = serde_json::to_string(&all).unwrap();
  assert_eq!(
    text,
    r#"[["s",["a",0],{"x":[1.5]}],["u",["0"]],["p",["a"],2,1,[null,"s"]],["m",["a"],["b","c"]]]"#
  );
  assert_eq!(serde_json::from_str::<Vec<Change>>(&text).unwrap(), all);
}

#[test]
fn malformed_wire_changes_are_rejected() {
  for bad in [
    r#"["x",["a"]]"#,
    r#"["s",["a"]]"#,
    r#"["u",["a"],1]"#,
    r#"["p",["a"],-1,0,[]]"#,
    r#"["s",[1.5],1]"#,
    r#"["s",[-1],1]"#,
    r#"{"s":1}"#,
    r#"[]"#,
  ] {
    assert!(
      serde_json::from_str::<Change>(bad).is_err(),
      "{bad} was accepted"
    );
  }
}

#[test]
fn apply_changes_reports_misfits_instead_of_panicking() {
  let field = |name: &str| Key::Field(name.to_string());
  let cases = [
    (
      json!({"a": 1}),
      Change::Unset {
        path: vec![field("b")],
      },
    ),
    (
      json!({"a": 1}),
      Change::Set {
        path: vec![field("a"), field("b")],
        value: json!(1),
      },
    ),
    (
      json!({"a": [1]}),
      Change::Splice {
        path: vec![field("a")],
        start: 1,
        delete: 1,
        insert: vec![],
      },
    ),
    (
      json!({"a": [1]}),
      Change::Splice {
        path: vec![field("a")],
        start: usize::MAX,
        delete: 2,
        insert: vec![],
      },
    ),
    (
      json!({"a": {}}),
      Change::Splice {
        path: vec![field("a")],
        start: 0,
        delete: 0,
        insert: vec![],
      },
    ),
    (
      json!({"a": []}),
      Change::Set {
        path: vec![field("a"), Key::Index(2_000_000)],
        value: json!(1),
      },
    ),
    (
      json!({"a": []}),
      Change::Set {
        path: vec![field("a"), field("x")],
        value: json!(1),
      },
    ),
    (
      json!({"a": 1}),
      Change::Move {
        from: vec![field("x")],
        to: vec![field("y")],
      },
    ),
    (json!({"a": 1}), Change::Unset { path: vec![] }),
  ];
  for (doc, change) in cases {
    let mut replica = doc.clone();
    assert!(
      apply_changes(&mut replica, std::slice::from_ref(&change)).is_err(),
      "{change:?} applied to {doc}"
    );
  }
}

#[test]
fn change_paths() {
  let from = vec![Key::Field("a".into())];
  let to = vec![Key::Field("b".into())];
  let moved = Change::Move {
    from: from.clone(),
    to: to.clone(),
  };
  assert_eq!(moved.path(), to.as_slice());
  assert_eq!(moved.paths().collect::<Vec<_>>(), vec![&from[..], &to[..]]);
  let set = Change::Set {
    path: from.clone(),
    value: json!(1),
  };
  assert_eq!(set.paths().collect::<Vec<_>>(), vec![&from[..]]);
}

#[test]
fn targets_and_emptiness() {
  let update = Update::parse(&json!({
    "$set": {"a": 1},
    "$inc": {"b.c": 1},
    "$rename": {"d": "e.f"},
    "$push": {"g.$[]": 1},
    "$setOnInsert": {"h": 1}
  }))
  .unwrap();
  let targets: Vec<(&str, bool)> = update.targets().map(|t| (t.path, t.overwrites)).collect();
  assert_eq!(
    targets,
    vec![
      ("a", true),
      ("b.c", false),
      ("d", true),
      ("e.f", true),
      ("g.$[]", false),
      ("h", true)
    ]
  );
  assert!(!update.is_empty());
  for empty in [
    json!({}),
    json!({"$set": {}}),
    json!({"$set": {}, "$unset": {}}),
    json!({"$setOnInsert": {"a": 1}}),
  ] {
    assert!(Update::parse(&empty).unwrap().is_empty(), "{empty}");
  }
  assert!(!Update::parse(&json!({"a": 1})).unwrap().is_empty());
}

#[test]
fn errors_display_their_message_and_code() {
  let err = apply(&mut json!({}), &json!({"$foo": {}}), &Context::default()).unwrap_err();
  assert_eq!(err.kind, ErrorKind::UnknownOperator);
  assert_eq!(err.kind.code(), "ERR_UNKNOWN_OPERATOR");
  assert_eq!(err.to_string(), err.message);
  let codes = [
    (ErrorKind::UnknownOperator, "ERR_UNKNOWN_OPERATOR"),
    (ErrorKind::BadOperatorArg, "ERR_BAD_OPERATOR_ARG"),
    (ErrorKind::BadValue, "ERR_BAD_VALUE"),
    (ErrorKind::TypeMismatch, "ERR_TYPE_MISMATCH"),
    (ErrorKind::PathNotViable, "ERR_PATH_NOT_VIABLE"),
    (ErrorKind::PathConflict, "ERR_PATH_CONFLICT"),
    (ErrorKind::EmptyPath, "ERR_EMPTY_PATH"),
    (ErrorKind::DollarField, "ERR_DOLLAR_FIELD"),
    (ErrorKind::Positional, "ERR_POSITIONAL"),
    (ErrorKind::RenameInvalid, "ERR_RENAME_INVALID"),
    (ErrorKind::Overflow, "ERR_OVERFLOW"),
  ];
  for (kind, code) in codes {
    assert_eq!(kind.code(), code);
  }
}

#[test]
fn iso_dates_match_js_to_json() {
  for (ms, text) in [
    (0, "1970-01-01T00:00:00.000Z"),
    (-1, "1969-12-31T23:59:59.999Z"),
    (NOW_MS, "2024-05-01T12:00:00.000Z"),
    (951_782_400_000, "2000-02-29T00:00:00.000Z"),
    (1_709_251_199_999, "2024-02-29T23:59:59.999Z"),
    (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
    (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
    (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
    (-62_167_219_200_001, "-000001-12-31T23:59:59.999Z"),
    (8_640_000_000_000_000, "+275760-09-13T00:00:00.000Z"),
  ] {
    assert_eq!(plan::iso_date(ms), text, "{ms}");
  }
  // No overflow at the extremes.
  plan::iso_date(i64::MIN);
  plan::iso_date(i64::MAX);
}

#[test]
fn padding_up_to_the_limit() {
  let mut doc = json!({"a": []});
  let update = json!({"$set": {"a.1500000": 1}});
  let changes = apply(&mut doc, &update, &Context::default()).unwrap();
  assert_eq!(changes.len(), 1);
  assert_eq!(doc["a"].as_array().map(Vec::len), Some(1_500_001));
  let mut doc = json!({"a": [0]});
  let err = apply(
    &mut doc,
    &json!({"$set": {"a.1500002.b": 1}}),
    &Context::default(),
  )
  .unwrap_err();
  assert_eq!(err.kind, ErrorKind::BadValue);
  assert_eq!(doc, json!({"a": [0]}));
}

#[test]
fn push_cost_follows_the_change() {
  let mut doc = json!({"a": (0..100_000).collect::<Vec<i64>>(), "b": 1});
  let update = Update::parse(&json!({"$push": {"a": 7}})).unwrap();
  let ctx = Context::default();
  for i in 0..10_000 {
    let changes = update.apply(&mut doc, &ctx).unwrap();
    assert_eq!(
      changes,
      vec![Change::Splice {
        path: vec![Key::Field("a".into())],
        start: 100_000 + i,
        delete: 0,
        insert: vec![json!(7)],
      }]
    );
  }
  assert_eq!(doc["a"].as_array().map(Vec::len), Some(110_000));
  // $pop on the same array is one small Splice too.
  let changes = apply(&mut doc, &json!({"$pop": {"a": 1}}), &ctx).unwrap();
  assert!(
    matches!(&changes[..], [Change::Splice { start: 109_999, delete: 1, insert, .. }] if insert.is_empty())
  );
}

#[test]
fn set_cost_follows_the_change() {
  // About 10 MB of object: 100,000 fields of 100-character strings.
  let big: Map = (0..100_000)
    .map(|i| (format!("f{i}"), Value::from("x".repeat(100))))
    .collect();
  let mut doc = json!({"big": big, "n": 0});
  let ctx = Context::default();
  for i in 0..1_000 {
    let changes = apply(
      &mut doc,
      &json!({"$set": {"big.f500": i}, "$inc": {"n": 1}}),
      &ctx,
    )
    .unwrap();
    assert_eq!(changes.len(), 2);
    let wire = serde_json::to_string(&changes).unwrap();
    assert!(wire.len() < 64, "{wire}");
  }
  assert_eq!(doc["big"].as_object().map(|m| m.len()), Some(100_000));
  assert_eq!(doc["n"], json!(1_000));
  // Key order is kept: the updated field did not move to the end.
  assert_eq!(
    doc["big"]
      .as_object()
      .and_then(|m| m.keys().position(|k| k == "f500")),
    Some(500)
  );
}

#[test]
fn scattered_pull_applies_in_one_pass() {
  // Every other element goes: 50,000 Splices, which one by one would move ~2.5e9 elements.
  let original = json!({"a": (0..100_000).collect::<Vec<i64>>()});
  let mut doc = original.clone();
  let changes = apply(
    &mut doc,
    &json!({"$pull": {"a": {"$mod": [2, 0]}}}),
    &Context::default(),
  )
  .unwrap();
  assert_eq!(changes.len(), 50_000);
  assert_eq!(doc["a"].as_array().map(Vec::len), Some(50_000));
  assert_eq!(doc["a"][0], json!(1));
  let mut replica = original;
  apply_changes(&mut replica, &changes).unwrap();
  assert!(identical(&replica, &doc));
}

#[test]
fn removal_runs_are_checked() {
  let splice = |start, delete| Change::Splice {
    path: vec![Key::Field("a".into())],
    start,
    delete,
    insert: vec![],
  };
  let mut doc = json!({"a": [1, 2, 3]});
  assert!(apply_changes(&mut doc, &[splice(3, 1), splice(0, 1)]).is_err());
  assert!(apply_changes(&mut doc, &[splice(usize::MAX, 2), splice(0, 1)]).is_err());
  assert_eq!(doc, json!({"a": [1, 2, 3]}));
  // Not descending: applied one after the other.
  apply_changes(&mut doc, &[splice(0, 1), splice(1, 1)]).unwrap();
  assert_eq!(doc, json!({"a": [2]}));
}

#[test]
fn unset_keeps_key_order() {
  let mut doc = json!({"a": 1, "b": 2, "c": 3});
  apply(&mut doc, &json!({"$unset": {"b": ""}}), &Context::default()).unwrap();
  assert_eq!(serde_json::to_string(&doc).unwrap(), r#"{"a":1,"c":3}"#);
}

#[test]
fn large_updates_report_conflicts_alike() {
  // Past a dozen operations, conflicts are found through a sorted set instead of pair by pair;
  // both must report the same first conflict.
  let cases = [
    (
      json!({"a.b": 1, "a": 1}),
      Some("'a' would create a conflict at 'a'"),
    ),
    (
      json!({"a": 1, "a.b.c": 1}),
      Some("'a.b.c' would create a conflict at 'a'"),
    ),
    (
      json!({"a.b.c": 1, "a.b": 1, "a": 1}),
      Some("'a.b' would create a conflict at 'a.b'"),
    ),
    (
      json!({"x.y": 1, "x!": 1, "x.y.z": 1}),
      Some("'x.y.z' would create a conflict at 'x.y'"),
    ),
    (
      json!({"x!": 1, "x": 1, "x.y": 1}),
      Some("'x.y' would create a conflict at 'x'"),
    ),
    (json!({"a.1": 1, "a.01": 1, "ab": 1, "a!": 1}), None),
  ];
  for (paths, conflict) in cases {
    for fillers in [0, 20] {
      let mut set: Map = (0..fillers).map(|i| (format!("f{i}"), json!(i))).collect();
      set.extend(paths.as_object().cloned().unwrap_or_default());
      let update = json!({"$set": set, "$rename": {"r": "q.r"}});
      match (Update::parse(&update), conflict) {
        (Ok(_), None) => {}
        (Err(err), Some(message)) => {
          assert_eq!(err.kind, ErrorKind::PathConflict);
          assert!(err.message.ends_with(message), "{}", err.message);
        }
        (result, _) => panic!("{paths} with {fillers} more: {result:?}"),
      }
    }
  }
  // A $rename's target takes part too.
  let mut set: Map = (0..20).map(|i| (format!("f{i}"), json!(i))).collect();
  set.insert("q", json!(1));
  let err = Update::parse(&json!({"$set": set, "$rename": {"r": "q.r"}})).unwrap_err();
  assert!(err
    .message
    .ends_with("'q.r' would create a conflict at 'q'"));
}

// ---- properties ----

fn leaf() -> impl Strategy<Value = Value> {
  prop_oneof![
    Just(Value::Null),
    any::<bool>().prop_map(Value::Bool),
    (-3i64..4).prop_map(Value::from),
    prop::sample::select(vec![0.5, -1.5, 2.0, 1e300]).prop_map(Value::from),
    prop::sample::select(vec![i64::MAX, i64::MIN]).prop_map(Value::from),
    prop::sample::select(vec!["a", "b", ""]).prop_map(Value::from),
  ]
}

fn key() -> impl Strategy<Value = String> {
  prop::sample::select(vec!["a", "b", "c", "0", "1"]).prop_map(str::to_string)
}

fn value() -> impl Strategy<Value = Value> {
  leaf().prop_recursive(3, 24, 4, |inner| {
    prop_oneof![
      prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
      prop::collection::vec((key(), inner), 0..4)
        .prop_map(|members| Value::Object(members.into_iter().collect())),
    ]
  })
}

fn document() -> impl Strategy<Value = Value> {
  prop::collection::vec((key(), value()), 0..5)
    .prop_map(|members| Value::Object(members.into_iter().collect()))
}

fn path() -> impl Strategy<Value = String> {
  // `$[]` is rare: most paths through generated documents do not meet an array there.
  let part = prop_oneof![
    19 => prop::sample::select(vec!["a", "b", "c", "0", "1", "3", "x"]),
    1 => Just("$[]"),
  ];
  prop::collection::vec(part, 1..4).prop_map(|parts| parts.join("."))
}

fn number() -> impl Strategy<Value = Value> {
  prop_oneof![
    (-2i64..3).prop_map(Value::from),
    Just(Value::from(1.5)),
    Just(Value::from(i64::MAX)),
    Just(Value::from(1e308)),
    Just(Value::from("1")),
  ]
}

/// One operator with its argument for one path.
fn operation() -> impl Strategy<Value = (String, String, Value)> {
  let op = prop_oneof![
    value().prop_map(|v| ("$set", v)),
    value().prop_map(|v| ("$setOnInsert", v)),
    Just(("$unset", json!(""))),
    number().prop_map(|v| ("$inc", v)),
    number().prop_map(|v| ("$mul", v)),
    value().prop_map(|v| ("$min", v)),
    value().prop_map(|v| ("$max", v)),
    path().prop_map(|p| ("$rename", Value::from(p))),
    prop::sample::select(vec![json!(true), json!({"$type": "timestamp"})])
      .prop_map(|v| ("$currentDate", v)),
    value().prop_map(|v| ("$push", v)),
    (
      prop::collection::vec(value(), 0..3),
      prop::option::of(-3i64..4),
      prop::option::of(prop::sample::select(vec![
        json!(1),
        json!(-1),
        json!({"a": 1})
      ])),
      prop::option::of(-3i64..4)
    )
      .prop_map(|(each, position, sort, slice)| {
        let mut spec = Map::new();
        spec.insert("$each", Value::Array(each));
        if let Some(p) = position {
          spec.insert("$position", json!(p));
        }
        if let Some(s) = sort {
          spec.insert("$sort", s);
        }
        if let Some(s) = slice {
          spec.insert("$slice", json!(s));
        }
        ("$push", Value::Object(spec))
      }),
    value().prop_map(|v| ("$addToSet", v)),
    prop::collection::vec(value(), 0..3).prop_map(|each| ("$addToSet", json!({"$each": each}))),
    prop::sample::select(vec![json!(1), json!(-1)]).prop_map(|v| ("$pop", v)),
    value().prop_map(|v| ("$pull", v)),
    (-2i64..3).prop_map(|n| ("$pull", json!({"$gte": n}))),
    leaf().prop_map(|v| ("$pull", json!({"a": v}))),
    prop::collection::vec(leaf(), 0..3).prop_map(|v| ("$pullAll", Value::Array(v))),
    (
      prop::sample::select(vec!["and", "or", "xor"]),
      prop::sample::select(vec![json!(5), json!(-1), json!(u64::MAX)])
    )
      .prop_map(|(op, n)| ("$bit", json!({ op: n }))),
  ];
  (op, path()).prop_map(|((name, arg), path)| (name.to_string(), path, arg))
}

fn update() -> impl Strategy<Value = Value> {
  prop::collection::vec(operation(), 1..4).prop_map(|ops| {
    let mut update = Map::new();
    for (name, path, arg) in ops {
      if !update.contains_key(&name) {
        update.insert(name.as_str(), json!({}));
      }
      if let Some(Value::Object(fields)) = update.get_mut(&name) {
        fields.insert(path, arg);
      }
    }
    Value::Object(update)
  })
}

proptest! {
  #![proptest_config(ProptestConfig::with_cases(3000))]

  /// Replaying the change list reproduces the engine's result exactly, a failed update leaves
  /// the document exactly as it was, and the change list survives its wire form.
  #[test]
  fn replay_atomicity_and_wire_roundtrip(doc in document(), update in update()) {
    let original = doc.clone();
    let mut doc = doc;
    match apply(&mut doc, &update, &Context { now_ms: NOW_MS }) {
      Ok(changes) => {
        let mut replica = original.clone();
        prop_assert_eq!(apply_changes(&mut replica, &changes), Ok(()));
        prop_assert!(identical(&replica, &doc), "replica {} vs engine {}", replica, doc);
        let text = serde_json::to_string(&changes).unwrap();
        let back: Vec<Change> = serde_json::from_str(&text).unwrap();
        prop_assert_eq!(back, changes);
      }
      Err(_) => prop_assert!(identical(&doc, &original), "changed to {}", doc),
    }
  }

  /// A compacted change list of several updates in a row gives the same document as the whole
  /// list, and touches a parent or child of every path the whole list touches.
  #[test]
  fn compacted_changes_replay_alike(doc in document(), updates in prop::collection::vec(update(), 1..6)) {
    let ctx = Context { now_ms: NOW_MS };
    let original = doc.clone();
    let mut doc = doc;
    let mut all = Vec::new();
    for update in &updates {
      if let Ok(changes) = apply(&mut doc, update, &ctx) {
        all.extend(changes);
      }
    }
    let compacted = compact(all.clone());
    prop_assert!(compacted.len() <= all.len());
    let mut replica = original;
    prop_assert_eq!(apply_changes(&mut replica, &compacted), Ok(()));
    prop_assert!(identical(&replica, &doc), "compacted {} vs all {}", replica, doc);
    for change in &all {
      for path in change.paths() {
        let covered = compacted.iter().flat_map(Change::paths).any(|kept| path.starts_with(kept) || kept.starts_with(path));
        prop_assert!(covered, "{:?} lost its notification", path);
      }
    }
  }

  /// Applying the same update twice in a row is the same as the engine's replay on a replica
  /// that is one update behind (changes are relative to the state they were planned on).
  #[test]
  fn sequential_updates_replay(doc in document(), first in update(), second in update()) {
    let ctx = Context { now_ms: NOW_MS };
    let mut doc = doc;
    let mut replica = doc.clone();
    for update in [&first, &second] {
      if let Ok(changes) = apply(&mut doc, update, &ctx) {
        prop_assert_eq!(apply_changes(&mut replica, &changes), Ok(()));
      }
      prop_assert!(identical(&replica, &doc));
    }
  }
}

/// `{"x": {"x": ... {"x": 1}}}`, nesting `levels` levels.
fn nested(levels: usize) -> Value {
  (0..levels).fold(json!(1), |inner, _| json!({ "x": inner }))
}

/// A value deeper than this could not reach other replicas: the frames that carry it would exceed
/// the JSON decoder's recursion limit, and clients could never join again.
#[test]
fn no_update_nests_the_document_deeper_than_the_limit() {
  let ctx = Context { now_ms: NOW_MS };
  let mut doc = json!({ "list": [] });
  let at_limit = json!({ "$set": { "a": nested(MAX_DEPTH - 1) } });
  assert!(apply(&mut doc, &at_limit, &ctx).is_ok());
  assert_eq!(depth(&doc), MAX_DEPTH);
  for update in [
    json!({ "$set": { "b": nested(MAX_DEPTH) } }),
    json!({ "$set": { "a.x": nested(MAX_DEPTH - 1) } }),
    json!({ "$setOnInsert": { "z": 1 }, "$max": { "m": nested(MAX_DEPTH) } }),
    json!({ "$min": { "m": nested(MAX_DEPTH) } }),
    json!({ "$push": { "list": nested(MAX_DEPTH - 1) } }),
    json!({ "$push": { "n.new": { "$each": [1, nested(MAX_DEPTH - 2)] } } }),
    json!({ "$addToSet": { "list": nested(MAX_DEPTH - 1) } }),
    json!({ "$rename": { "a": "c.d" } }),
  ] {
    let before = doc.clone();
    let err = apply(&mut doc, &update, &ctx).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadValue, "{update}: {err}");
    assert!(err.message.contains("101 levels deep"), "{err}");
    assert_eq!(doc, before, "{update} changed the document");
    let Err(undo_err) = Update::parse(&update)
      .unwrap()
      .apply_with_undo(&mut doc, &ctx)
    else {
      panic!("{update} applied with undo");
    };
    assert_eq!(undo_err, err);
  }
  // Writing at the limit, or replacing a deep value by a shallow one, is fine.
  assert!(apply(
    &mut doc,
    &json!({ "$set": { "a.x": nested(MAX_DEPTH - 2) } }),
    &ctx
  )
  .is_ok());
  assert!(apply(&mut doc, &json!({ "$rename": { "a": "c" } }), &ctx).is_ok());
  assert_eq!(depth(&doc), MAX_DEPTH);
}

/// Values an update carries but never writes count too: the update itself travels between
/// processes, inside frames that must stay decodable.
#[test]
fn no_update_nests_deeper_than_an_update_may() {
  let ctx = Context { now_ms: NOW_MS };
  let mut doc = json!({ "list": [] });
  assert_eq!(
    depth(&json!({ "$set": { "a": nested(MAX_DEPTH - 1) } })),
    MAX_UPDATE_DEPTH - 1
  );
  let widest = json!({ "$push": { "list": { "$each": [nested(MAX_DEPTH - 2)] } } });
  assert_eq!(depth(&widest), MAX_UPDATE_DEPTH);
  assert!(
    apply(&mut doc, &widest, &ctx).is_ok(),
    "an update at the limit that fits the document"
  );
  for update in [
    json!({ "$setOnInsert": { "a": nested(MAX_DEPTH + 1) } }),
    json!({ "$pull": { "list": { "$in": [nested(MAX_DEPTH - 1)] } } }),
    json!({ "$set": { "a": nested(MAX_DEPTH + 1) } }),
  ] {
    let err = Update::parse(&update).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadValue);
    assert!(err.message.contains("103 levels deep"), "{err}");
  }
}

#[test]
fn depth_counts_containers() {
  assert_eq!(depth(&json!(1)), 0);
  assert_eq!(depth(&json!({})), 1);
  assert_eq!(depth(&json!([])), 1);
  assert_eq!(depth(&json!({ "a": 1, "b": [[], { "c": null }] })), 3);
  assert_eq!(depth(&nested(7)), 7);
}

#[test]
fn a_burst_of_counter_sets_compacts_to_the_last() {
  let set = |path: &str, n: i64| Change::Set {
    path: path.split('.').map(|k| Key::Field(k.into())).collect(),
    value: json!(n),
  };
  let burst: Vec<Change> = (1..=100)
    .map(|n| set("n", n))
    .chain([set("m", 1)])
    .collect();
  assert_eq!(compact(burst), vec![set("n", 100), set("m", 1)]);
  // The merged Set keeps the place of the first: keys are created in the same order.
  let merged = vec![set("a", 1), set("z", 0), set("a", 2)];
  assert_eq!(compact(merged), vec![set("a", 2), set("z", 0)]);
  // A change to a parent in between keeps the earlier write: the parent it wrote into differs.
  let unset_parent = Change::Unset {
    path: vec![Key::Field("a".into())],
  };
  let kept = vec![set("a.b", 1), unset_parent.clone(), set("a.b", 2)];
  assert_eq!(compact(kept.clone()), kept);
}
