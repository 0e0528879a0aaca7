//! Benchmarks of the patch engine: parse + apply of an update given as a document value.
//! The ids are read by a script from `target/criterion/patch/<id>/new/estimates.json`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use memsync::doc::{json, Map, Value};
use memsync::patch::{apply, Context};

const CTX: Context = Context {
  now_ms: 1_714_564_800_000,
};

/// `$push` of one element onto an array of `len`: timed in rounds of `ROUND` pushes, after each
/// of which the array is cut back (untimed), so its length stays within `len..len + ROUND`.
fn push_onto(
  c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
  id: &str,
  len: usize,
) {
  const ROUND: u64 = 100;
  let update = json!({"$push": {"items": {"id": 1, "tag": "new"}}});
  let mut doc = json!({"items": (0..len).map(|i| json!({"id": i})).collect::<Vec<_>>(), "n": 0});
  c.bench_function(id, |b| {
    b.iter_custom(|iters| {
      let mut total = Duration::ZERO;
      let mut left = iters;
      while left > 0 {
        let round = left.min(ROUND);
        if let Some(items) = doc.get_mut("items").and_then(Value::as_array_mut) {
          items.truncate(len);
        }
        let start = Instant::now();
        for _ in 0..round {
          black_box(apply(&mut doc, black_box(&update), &CTX).ok());
        }
        total += start.elapsed();
        left -= round;
      }
      total
    })
  });
}

/// A realistic document: a user profile with nested settings, arrays of scalars and documents.
fn profile() -> Value {
  json!({
    "_id": "u-1842",
    "name": {"first": "Ada", "last": "Lovelace"},
    "email": "ada@example.com",
    "visits": 41,
    "score": 12.5,
    "best": 90,
    "worst": 12,
    "tags": ["admin", "beta", "dark-mode"],
    "history": [
      {"at": "2024-04-30T10:00:00.000Z", "page": "/home"},
      {"at": "2024-04-30T10:05:00.000Z", "page": "/settings"},
      {"at": "2024-04-30T10:09:00.000Z", "page": "/billing"}
    ],
    "settings": {"theme": "dark", "lang": "en", "notifications": {"email": true, "sms": false}},
    "legacyField": "old",
    "flags": [1, 2, 3, 4, 5, 6, 7, 8]
  })
}

fn patch(c: &mut Criterion) {
  let mut group = c.benchmark_group("patch");

  let fields: Map = (0..1_000).map(|i| (format!("f{i}"), json!(i))).collect();
  let mut wide = Value::Object(fields);
  let inc = json!({"$inc": {"f500": 1}});
  group.bench_function("inc_1000_fields", |b| {
    b.iter(|| black_box(apply(&mut wide, black_box(&inc), &CTX).ok()))
  });

  let nested = json!({"a": {"b": {"c": {"d": 0, "e": "x"}, "f": [1, 2, 3]}, "g": true}, "h": 1});
  let set = json!({"$set": {"a.b.c.d": 42}});
  group.bench_function("set_nested", |b| {
    // A fresh copy each time (untimed): setting the value already there would be a no-op.
    b.iter_batched_ref(
      || nested.clone(),
      |doc| black_box(apply(doc, black_box(&set), &CTX).ok()),
      BatchSize::SmallInput,
    )
  });

  push_onto(&mut group, "push_100k", 100_000);
  push_onto(&mut group, "push_1k", 1_000);

  let mixed = json!({
    "$set": {"settings.theme": "light"},
    "$unset": {"legacyField": ""},
    "$inc": {"visits": 1},
    "$mul": {"score": 1.5},
    "$min": {"worst": 3},
    "$max": {"best": 97},
    "$push": {"history": {"at": "2024-05-01T12:00:00.000Z", "page": "/home"}},
    "$addToSet": {"tags": "early-adopter"},
    "$pull": {"flags": {"$gte": 6}},
    "$rename": {"email": "contact.email"}
  });
  let base = profile();
  group.bench_function("mixed_10", |b| {
    b.iter_batched_ref(
      || base.clone(),
      |doc| black_box(apply(doc, black_box(&mixed), &CTX).ok()),
      BatchSize::SmallInput,
    )
  });

  // The product's hot path: a tiny update on a small document, parse included.
  let mut small = json!({"n": 0, "x": 1});
  let inc_n = json!({"$inc": {"n": 1}});
  group.bench_function("inc_small", |b| {
    b.iter(|| black_box(apply(&mut small, black_box(&inc_n), &CTX).ok()))
  });

  let mut user = json!({"user": {"name": "a", "age": 3}, "n": 0});
  let names = [
    json!({"$set": {"user.name": "b"}}),
    json!({"$set": {"user.name": "c"}}),
  ];
  let mut turn = 0;
  group.bench_function("set_small", |b| {
    // Alternating values, so that every set writes.
    b.iter(|| {
      turn ^= 1;
      black_box(apply(&mut user, black_box(&names[turn]), &CTX).ok())
    })
  });

  group.finish();
}

criterion_group!(benches, patch);
criterion_main!(benches);
