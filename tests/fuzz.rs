//! A bounded fuzzer (proptest) over what a peer or a caller can feed the core: the frame decoder
//! (arbitrary bytes, mutated valid frames, any split across reads), the host's and the client's
//! message handlers, and the patch engine (arbitrary update documents on arbitrary documents).
//!
//! Properties: nothing panics; every input is accepted or refused with an error (a coded one for
//! the engine); a refused update leaves the document exactly as it was; and what a host sends
//! (welcome, ordered patches) always decodes and replays to the host's own document, however hostile
//! its input. Case counts keep the whole file to about 15 s in a debug build; multiply them with
//! `MEMSYNC_FUZZ_SCALE` for a longer run. Failures proptest finds are kept in
//! `tests/fuzz.proptest-regressions` and replayed first.

use std::sync::{Arc, Mutex};

use memsync::clock::Hlc;
use memsync::core::message::{JsonText, LogEntry, Message, RawJson};
use memsync::doc::{json, Map, Value};
use memsync::patch::{apply, apply_changes, depth, Change, Context, Update, MAX_DEPTH};
use memsync::transport::local::codec::{self, decode, encode, ProtocolError, MAX_FRAME};
use memsync::transport::local::connection::Outbox;
use memsync::Replica;
use proptest::prelude::*;
use tokio::io::AsyncWriteExt;

/// Every code the engine may reject an update with.
const ENGINE_CODES: [&str; 11] = [
  "ERR_UNKNOWN_OPERATOR",
  "ERR_BAD_OPERATOR_ARG",
  "ERR_BAD_VALUE",
  "ERR_TYPE_MISMATCH",
  "ERR_PATH_NOT_VIABLE",
  "ERR_PATH_CONFLICT",
  "ERR_EMPTY_PATH",
  "ERR_DOLLAR_FIELD",
  "ERR_POSITIONAL",
  "ERR_RENAME_INVALID",
  "ERR_OVERFLOW",
];

/// `base` cases, times `MEMSYNC_FUZZ_SCALE` when set.
fn cases(base: u32) -> ProptestConfig {
  let scale = std::env::var("MEMSYNC_FUZZ_SCALE")
    .ok()
    .and_then(|scale| scale.parse::<u32>().ok())
    .unwrap_or(1);
  ProptestConfig::with_cases(base.saturating_mul(scale))
}

/// `value` as the raw JSON the wire carries.
fn raw(value: &Value) -> RawJson {
  RawJson::to(value).expect("a Value is JSON")
}

// ---- generators ----

fn number() -> impl Strategy<Value = Value> {
  prop_oneof![
    (-3i64..4).prop_map(Value::from),
    any::<i64>().prop_map(Value::from),
    any::<u64>().prop_map(Value::from),
    prop::sample::select(vec![i64::MIN, i64::MAX, -1, 0]).prop_map(Value::from),
    prop::sample::select(vec![u64::MAX, 1 << 53, (1 << 63) + 1]).prop_map(Value::from),
    any::<f64>()
      .prop_filter("finite", |f| f.is_finite())
      .prop_map(Value::from),
    prop::sample::select(vec![0.5, -0.0, 1e308, -1e308, 5e-324, 4.5e15]).prop_map(Value::from),
  ]
}

/// Field names that mean something somewhere: operators, modifiers, query operators, `$[]`,
/// indices, keys that look like prototypes, and junk.
fn word() -> impl Strategy<Value = String> {
  prop_oneof![
    3 => prop::sample::select(vec!["a", "b", "c", "x"]),
    2 => prop::sample::select(vec!["0", "1", "2", "10", "-1", "01", "1500001"]),
    1 => prop::sample::select(vec![
      "$set", "$unset", "$inc", "$mul", "$min", "$max", "$rename", "$currentDate",
      "$setOnInsert", "$push", "$addToSet", "$pop", "$pull", "$pullAll", "$bit",
      "$each", "$position", "$slice", "$sort", "$type", "and", "or", "xor",
      "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$regex", "$options",
      "$exists", "$not", "$elemMatch", "$size", "$all", "$mod", "$and", "$or", "$nor",
      "$[]", "$", "$[x]", "$foo", "", "__proto__", "constructor", "é", "date", "timestamp",
    ]),
  ]
  .prop_map(str::to_string)
}

/// A dotted path, valid or not.
fn path() -> impl Strategy<Value = String> {
  let plain = prop_oneof![
    40 => prop::sample::select(vec!["a", "b", "c", "x", "0", "1", "2", "10"]).prop_map(str::to_string),
    1 => Just("$[]".to_string()),
  ];
  prop_oneof![
    12 => prop::collection::vec(plain, 1..5).prop_map(|parts| parts.join(".")),
    4 => prop::collection::vec(word(), 1..5).prop_map(|parts| parts.join(".")),
    1 => Just(String::new()),
    1 => prop::sample::select(vec![".a", "a.", "a..b", "$", "a.$", "a.$[]", "a.$[].$[]"])
      .prop_map(str::to_string),
  ]
}

fn leaf() -> impl Strategy<Value = Value> {
  prop_oneof![
    Just(Value::Null),
    any::<bool>().prop_map(Value::Bool),
    number(),
    word().prop_map(Value::from),
    prop::sample::select(vec!["^a", "[", "(?i)A", "\u{0}", "1", ""]).prop_map(Value::from),
  ]
}

/// Any JSON value: keys include operators and paths, so a value may also be a valid-looking
/// update argument, modifier or condition.
fn value() -> impl Strategy<Value = Value> {
  leaf().prop_recursive(4, 32, 5, |inner| {
    prop_oneof![
      prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
      prop::collection::vec((prop_oneof![word(), path()], inner), 0..5)
        .prop_map(|members| Value::Object(members.into_iter().collect())),
    ]
  })
}

fn document() -> impl Strategy<Value = Value> {
  prop::collection::vec((word(), value()), 0..6)
    .prop_map(|members| Value::Object(members.into_iter().collect()))
}

/// An update operator, or sometimes any field name (plain keys are `$set` shorthand).
fn operator() -> impl Strategy<Value = String> {
  prop_oneof![
    6 => prop::sample::select(vec![
      "$set", "$unset", "$inc", "$mul", "$min", "$max", "$rename", "$currentDate",
      "$setOnInsert", "$push", "$addToSet", "$pop", "$pull", "$pullAll", "$bit",
    ])
    .prop_map(str::to_string),
    1 => word(),
  ]
}

/// One operation: an operator, a path and an argument of the shape the operator takes (as valid
/// updates have), or of any shape.
fn operation() -> impl Strategy<Value = (String, String, Value)> {
  let typed = prop_oneof![
    (Just("$set"), value()),
    (Just("$setOnInsert"), value()),
    (Just("$unset"), Just(json!(""))),
    (Just("$inc"), number()),
    (Just("$mul"), number()),
    (Just("$min"), value()),
    (Just("$max"), value()),
    (Just("$rename"), path().prop_map(Value::from)),
    (
      Just("$currentDate"),
      prop::sample::select(vec![
        json!(true),
        json!({"$type": "date"}),
        json!({"$type": "timestamp"})
      ])
    ),
    (Just("$push"), value()),
    (
      Just("$push"),
      (
        prop::collection::vec(value(), 0..4),
        prop::option::of(prop_oneof![-3i64..4, any::<i64>()]),
        prop::option::of(prop_oneof![
          Just(json!(1)),
          Just(json!(-1)),
          path().prop_map(|p| json!({ p: -1 }))
        ]),
        prop::option::of(prop_oneof![-3i64..4, any::<i64>()]),
      )
        .prop_map(|(each, position, sort, slice)| {
          let mut spec = Map::new();
          spec.insert("$each", json!(each));
          if let Some(position) = position {
            spec.insert("$position", json!(position));
          }
          if let Some(sort) = sort {
            spec.insert("$sort", sort);
          }
          if let Some(slice) = slice {
            spec.insert("$slice", json!(slice));
          }
          Value::Object(spec)
        }),
    ),
    (
      Just("$addToSet"),
      prop_oneof![
        value(),
        prop::collection::vec(value(), 0..4).prop_map(|each| json!({ "$each": each }))
      ]
    ),
    (
      Just("$pop"),
      prop::sample::select(vec![json!(1), json!(-1)])
    ),
    (Just("$pull"), value()),
    (
      Just("$pull"),
      (
        prop::sample::select(vec![
          "$gte", "$lt", "$ne", "$in", "$nin", "$exists", "$size", "$type", "$regex"
        ]),
        value()
      )
        .prop_map(|(condition, arg)| json!({ condition: arg })),
    ),
    (
      Just("$pullAll"),
      prop::collection::vec(value(), 0..4).prop_map(Value::Array)
    ),
    (
      Just("$bit"),
      (
        prop::sample::select(vec!["and", "or", "xor"]),
        prop_oneof![any::<i64>(), -3i64..4]
      )
        .prop_map(|(op, n)| json!({ op: n })),
    ),
  ];
  prop_oneof![
    16 => (typed, path()).prop_map(|((operator, arg), path)| (operator.to_string(), path, arg)),
    4 => (operator(), path(), value()),
    1 => (
      prop::sample::select(vec!["$set", "$push", "$addToSet", "$max", "$setOnInsert"]),
      path(),
      deep()
    )
      .prop_map(|(operator, path, arg)| (operator.to_string(), path, arg)),
  ]
}

/// A value nesting around the document limit ([`MAX_DEPTH`]) and the 128 levels a decoder takes.
fn deep() -> impl Strategy<Value = Value> {
  (90usize..130, any::<bool>()).prop_map(|(levels, arrays)| {
    (0..levels).fold(json!(1), |inner, _| {
      if arrays {
        json!([inner])
      } else {
        json!({ "x": inner })
      }
    })
  })
}

/// An update document: mostly operations merged by operator, sometimes anything at all (an
/// operator's argument that is not an object, a value that is not an update).
fn update() -> impl Strategy<Value = Value> {
  prop_oneof![
    8 => prop::collection::vec(operation(), 1..4).prop_map(|operations| {
      let mut update = Map::new();
      for (operator, path, arg) in operations {
        if !update.contains_key(&operator) {
          update.insert(operator.as_str(), json!({}));
        }
        if let Some(Value::Object(fields)) = update.get_mut(&operator) {
          fields.insert(path, arg);
        }
      }
      Value::Object(update)
    }),
    1 => prop::collection::vec((operator(), value()), 0..3)
      .prop_map(|ops| Value::Object(ops.into_iter().collect())),
    1 => value(),
  ]
}

fn hlc() -> impl Strategy<Value = Hlc> {
  prop_oneof![
    (0u64..5, 0u32..3),
    (any::<u64>(), any::<u32>()),
    Just((u64::MAX, u32::MAX)),
    Just((1_700_000_000_000, 0)),
  ]
  .prop_map(|(ms, counter)| Hlc { ms, counter })
}

fn log_entry() -> impl Strategy<Value = LogEntry> {
  (any::<u64>(), 0u64..4, 0u64..6, hlc(), update()).prop_map(
    |(version, origin, seq, hlc, update)| LogEntry {
      version,
      origin,
      seq,
      hlc,
      update: raw(&update),
    },
  )
}

/// A change list, valid or not, as a hostile host would send it.
fn changes() -> impl Strategy<Value = Value> {
  let keys = prop::collection::vec(
    prop_oneof![
      word().prop_map(Value::from),
      (0u64..4).prop_map(Value::from)
    ],
    0..4,
  );
  let change = prop_oneof![
    (keys.clone(), value()).prop_map(|(path, value)| json!(["s", path, value])),
    keys.clone().prop_map(|path| json!(["u", path])),
    (
      keys.clone(),
      prop_oneof![0u64..4, any::<u64>()],
      prop_oneof![0u64..4, any::<u64>()],
      prop::collection::vec(value(), 0..3)
    )
      .prop_map(|(path, start, delete, items)| json!(["p", path, start, delete, items])),
    (keys.clone(), keys).prop_map(|(from, to)| json!(["m", from, to])),
    value(),
  ];
  prop::collection::vec(change, 0..5).prop_map(Value::Array)
}

fn message() -> impl Strategy<Value = Message> {
  prop_oneof![
    (any::<u32>(), any::<u32>(), any::<u64>(), any::<u64>()).prop_map(
      |(protocol, pid, origin, version)| Message::Hello {
        protocol,
        pid,
        origin,
        version,
        peer: Default::default()
      }
    ),
    (
      any::<u64>(),
      document(),
      prop::collection::vec((any::<u64>(), any::<u64>()), 0..3)
    )
      .prop_map(|(version, data, applied)| Message::Welcome {
        protocol: 1,
        host_pid: 1,
        version,
        data: JsonText::from(&raw(&data)),
        applied
      }),
    ".*".prop_map(|reason| Message::Refused { reason, code: None }),
    (0u64..6, hlc(), update()).prop_map(|(seq, hlc, update)| Message::Patch {
      seq,
      hlc,
      update: raw(&update)
    }),
    (any::<u64>(), 0u64..4, 0u64..6, hlc(), update(), changes()).prop_map(
      |(version, origin, seq, hlc, update, changes)| Message::Ordered {
        version,
        origin,
        seq,
        hlc,
        update: JsonText::from(update.to_string()),
        changes: JsonText::from(changes.to_string())
      }
    ),
    (0u64..6, ".*", ".*").prop_map(|(seq, code, message)| Message::Rejected { seq, code, message }),
    prop::collection::vec(log_entry(), 0..3).prop_map(|entries| Message::Catchup { entries }),
  ]
}

fn framed(message: &Message) -> Vec<u8> {
  let mut out = Vec::new();
  encode(message, &mut out).expect("generated messages are small");
  out
}

/// A change to a valid frame: a flipped, inserted or removed byte, a cut, or a new length.
#[derive(Debug, Clone)]
enum Mutation {
  Flip(usize, u8),
  Insert(usize, u8),
  Remove(usize),
  Cut(usize),
  Length(u32),
}

fn mutation() -> impl Strategy<Value = Mutation> {
  prop_oneof![
    (any::<usize>(), 1u8..=255).prop_map(|(at, bits)| Mutation::Flip(at, bits)),
    (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert(at, byte)),
    any::<usize>().prop_map(Mutation::Remove),
    any::<usize>().prop_map(Mutation::Cut),
    prop_oneof![any::<u32>(), 0u32..64].prop_map(Mutation::Length),
  ]
}

fn mutate(bytes: &mut Vec<u8>, mutation: &Mutation) {
  let len = bytes.len().max(1);
  match *mutation {
    Mutation::Flip(at, bits) => {
      if let Some(byte) = bytes.get_mut(at % len) {
        *byte ^= bits;
      }
    }
    Mutation::Insert(at, byte) => bytes.insert(at % (bytes.len() + 1), byte),
    Mutation::Remove(at) => {
      if !bytes.is_empty() {
        bytes.remove(at % len);
      }
    }
    Mutation::Cut(at) => bytes.truncate(at % len),
    Mutation::Length(length) => {
      if bytes.len() >= 4 {
        bytes[..4].copy_from_slice(&length.to_be_bytes());
      }
    }
  }
}

// ---- checks ----

/// Decodes `bytes`, checking what any result must satisfy; returns the messages decoded before
/// the end, an incomplete frame, or an error.
fn decode_all(bytes: &[u8]) -> (Vec<Message>, Result<(), ProtocolError>) {
  let mut messages = Vec::new();
  let mut offset = 0;
  loop {
    match decode(&bytes[offset..]) {
      Ok(Some((message, consumed))) => {
        assert!(consumed >= 4 && consumed <= bytes.len() - offset);
        assert!(consumed - 4 <= MAX_FRAME);
        // What decodes encodes again, and decodes to the same message.
        let again = framed(&message);
        assert_eq!(decode(&again), Ok(Some((message.clone(), again.len()))));
        messages.push(message);
        offset += consumed;
      }
      Ok(None) => return (messages, Ok(())),
      Err(err) => return (messages, Err(err)),
    }
  }
}

/// An outbox whose bytes land in a buffer the test reads, instead of a socket.
fn capture() -> (Arc<Outbox>, Arc<Mutex<Vec<u8>>>) {
  let bytes = Arc::new(Mutex::new(Vec::new()));
  let sink = bytes.clone();
  let outbox = Outbox::new(
    Some(Box::new(move |chunk: &[u8]| {
      sink.lock().unwrap().extend_from_slice(chunk);
      Ok(chunk.len())
    })),
    usize::MAX,
  );
  (outbox, bytes)
}

/// The messages written to a captured outbox since the last call; every byte must be a whole
/// frame that decodes.
fn frames(bytes: &Mutex<Vec<u8>>) -> Vec<Message> {
  let bytes = std::mem::take(&mut *bytes.lock().unwrap());
  let (messages, result) = decode_all(&bytes);
  assert_eq!(result, Ok(()), "a frame the replica sent does not decode");
  let length: usize = messages.iter().map(|message| framed(message).len()).sum();
  assert_eq!(length, bytes.len(), "whole frames only");
  messages
}

fn welcome_data(message: &Message) -> Value {
  match message {
    Message::Welcome { data, .. } => {
      serde_json::from_str(data.get()).expect("a welcome's data parses")
    }
    other => panic!("expected a welcome, got {other:?}"),
  }
}

/// The document a host holds, read as a joining client would: from its welcome, which must
/// decode.
fn host_data(host: &Replica) -> Value {
  let (outbox, bytes) = capture();
  assert!(
    host.attach_client(u64::MAX, u64::MAX, outbox.clone(), codec::welcome),
    "a host welcomes"
  );
  outbox.flush();
  host.detach_client(u64::MAX);
  welcome_data(&frames(&bytes)[0])
}

/// What the host emits and what a replica of the same start makes of it.
fn assert_host_consistent(host: &Replica, replica: &Value, events: &str) {
  let data = host_data(host);
  assert!(data.is_object(), "the document stays an object: {data}");
  assert!(
    depth(&data) <= MAX_DEPTH,
    "the document nests {} levels",
    depth(&data)
  );
  assert_eq!(
    &data, replica,
    "a client replaying the ordered changes differs"
  );
  serde_json::from_str::<Value>(events).expect("the events for JS are JSON");
}

// ---- properties ----

proptest! {
  #![proptest_config(cases(4000))]

  /// Arbitrary bytes: decoded, incomplete or refused, never a panic.
  #[test]
  fn decoder_takes_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
    let _ = decode_all(&bytes);
  }

  /// Arbitrary bytes behind a plausible header.
  #[test]
  fn decoder_takes_arbitrary_payloads(payload in prop::collection::vec(any::<u8>(), 0..64)) {
    let mut bytes = (payload.len() as u32).to_be_bytes().to_vec();
    bytes.extend(payload);
    let _ = decode_all(&bytes);
  }

  /// Arbitrary JSON behind a header: a message or InvalidMessage, never InvalidJson.
  #[test]
  fn decoder_takes_arbitrary_json(payload in value()) {
    let text = serde_json::to_vec(&payload).unwrap();
    let mut bytes = (text.len() as u32).to_be_bytes().to_vec();
    bytes.extend(text);
    let (_, result) = decode_all(&bytes);
    prop_assert!(!matches!(result, Err(ProtocolError::InvalidJson(_))), "{result:?}");
  }
}

proptest! {
  #![proptest_config(cases(2000))]

  /// The engine on arbitrary updates and documents: Ok, or a coded error that changed nothing.
  /// An applied update replays from its change list, is undone by its undo list, and keeps the
  /// document within the nesting limit.
  #[test]
  fn engine_takes_arbitrary_updates(
    doc in document(),
    update in update(),
    now_ms in prop_oneof![Just(1_714_564_800_000i64), any::<i64>()],
  ) {
    let ctx = Context { now_ms };
    let mut applied = doc.clone();
    match apply(&mut applied, &update, &ctx) {
      Ok(changes) => {
        let mut replica = doc.clone();
        prop_assert_eq!(apply_changes(&mut replica, &changes), Ok(()));
        prop_assert_eq!(&replica, &applied);
        prop_assert!(depth(&applied) <= MAX_DEPTH.max(depth(&doc)));
        let wire = serde_json::to_string(&changes).unwrap();
        let back: Vec<Change> = serde_json::from_str(&wire).unwrap();
        prop_assert_eq!(back, changes);
        let parsed = Update::parse(&update).unwrap();
        let mut undone = doc.clone();
        let (_, undo) = parsed.apply_with_undo(&mut undone, &ctx).unwrap();
        prop_assert_eq!(&undone, &applied);
        prop_assert_eq!(apply_changes(&mut undone, &undo), Ok(()));
        prop_assert_eq!(&undone, &doc);
      }
      Err(err) => {
        prop_assert!(ENGINE_CODES.contains(&err.kind.code()), "{}", err.kind.code());
        prop_assert!(!err.message.is_empty());
        prop_assert_eq!(&applied, &doc, "a refused update changed the document");
      }
    }
  }
}

proptest! {
  #![proptest_config(cases(1000))]

  /// Valid frames, mutated: whatever the damage, the decoder answers.
  #[test]
  fn decoder_takes_mutated_frames(
    messages in prop::collection::vec(message(), 1..3),
    mutations in prop::collection::vec(mutation(), 1..4),
  ) {
    let mut bytes: Vec<u8> = messages.iter().flat_map(framed).collect();
    for mutation in &mutations {
      mutate(&mut bytes, mutation);
    }
    let _ = decode_all(&bytes);
  }

  /// Change lists from a hostile host: applied or refused, never a panic.
  #[test]
  fn replicas_take_arbitrary_change_lists(doc in document(), changes in changes()) {
    if let Ok(changes) = serde_json::from_value::<Vec<Change>>(serde_json::Value::from(&changes)) {
      let mut doc = doc;
      let _ = apply_changes(&mut doc, &changes);
    }
  }
}

proptest! {
  #![proptest_config(cases(300))]

  /// A host fed arbitrary client messages (patches of any update, clock and sequence; catch-ups
  /// of any entries) never panics; every frame it sends decodes, rejections go to the sender, and
  /// a client that replays the ordered changes holds the host's document.
  #[test]
  fn host_takes_arbitrary_client_messages(
    doc in document(),
    messages in prop::collection::vec(
      prop_oneof![
        3 => (0u64..3, 0u64..6, hlc(), update()).prop_map(|(origin, seq, hlc, update)| (origin, Message::Patch { seq, hlc, update: raw(&update) })),
        1 => prop::collection::vec(log_entry(), 0..3).prop_map(|entries| (0, Message::Catchup { entries })),
      ],
      1..12,
    ),
    own in prop::collection::vec(update(), 0..3),
  ) {
    let host = Replica::new("fuzz", doc.clone(), 99).unwrap();
    host.become_host();
    let (to_client, from_host) = capture();
    prop_assert!(host.attach_client(1, 1, to_client.clone(), codec::welcome));
    to_client.flush();
    let mut welcomed = frames(&from_host).into_iter();
    let mut replica = welcome_data(&welcomed.next().unwrap());
    prop_assert_eq!(&replica, &doc);
    let (reply, replies) = capture();
    let mut events = String::from("[]");
    for (i, (origin, message)) in messages.into_iter().enumerate() {
      prop_assert!(host.host_receive(origin, vec![message], &*reply).is_ok());
      // The host's own patches, interleaved.
      if let Some(update) = own.get(i) {
        let text = serde_json::to_string(update).unwrap();
        if let Ok(drained) = host.patch(&text) {
          events = drained;
        }
      }
      host.flush();
      for message in frames(&from_host) {
        let Message::Ordered { changes, .. } = message else {
          panic!("a client receives ordered patches only: {message:?}");
        };
        let changes: Vec<Change> = serde_json::from_str(changes.get()).unwrap();
        prop_assert_eq!(apply_changes(&mut replica, &changes), Ok(()));
      }
      for message in frames(&replies) {
        let Message::Rejected { code, .. } = message else {
          panic!("the sender receives rejections only: {message:?}");
        };
        prop_assert!(ENGINE_CODES.contains(&code.as_str()) || code == "ERR_STALE_WRITE", "{}", code);
      }
    }
    assert_host_consistent(&host, &replica, &events);
    serde_json::from_str::<Value>(&host.drain()).unwrap();
  }

  /// A client fed an arbitrary welcome and arbitrary host messages never panics: each batch is
  /// applied or refused (and the caller reconnects), and its events stay JSON.
  #[test]
  fn client_takes_arbitrary_host_messages(
    data in document(),
    applied in prop::collection::vec((0u64..4, 0u64..6), 0..3),
    batches in prop::collection::vec(prop::collection::vec(message(), 1..4), 1..4),
    own in prop::collection::vec(update(), 0..3),
  ) {
    let client = Replica::new("fuzz", json!({}), 1).unwrap();
    for update in &own {
      let _ = client.patch(&serde_json::to_string(update).unwrap());
    }
    let (to_host, sent) = capture();
    let _ = client.client_welcome(7, JsonText::from(&raw(&data)), applied, to_host);
    for batch in batches {
      let _ = client.client_receive(batch);
      for update in &own {
        let _ = client.patch(&serde_json::to_string(update).unwrap());
      }
    }
    client.flush();
    // What it sends the host decodes too.
    for message in frames(&sent) {
      prop_assert!(matches!(message, Message::Patch { .. } | Message::Catchup { .. }), "{:?}", message);
    }
    serde_json::from_str::<Value>(&client.drain()).unwrap();
  }
}

proptest! {
  #![proptest_config(cases(300))]

  /// The connection's reader yields the same messages, then the same error, however the bytes
  /// are split across reads.
  #[test]
  fn reader_is_independent_of_how_bytes_arrive(
    messages in prop::collection::vec(message(), 0..4),
    garbage in prop::option::of(prop::collection::vec(any::<u8>(), 1..12)),
    splits in prop::collection::vec(1usize..40, 1..20),
  ) {
    let mut bytes: Vec<u8> = messages.iter().flat_map(framed).collect();
    bytes.extend(garbage.iter().flatten());
    let (expected, end) = decode_all(&bytes);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (got, failed) = runtime.block_on(async {
      let (mut writer, reader) = tokio::io::duplex(64);
      let feed = tokio::spawn(async move {
        let mut rest = &bytes[..];
        for split in splits.iter().cycle() {
          if rest.is_empty() {
            break;
          }
          let (chunk, tail) = rest.split_at((*split).min(rest.len()));
          writer.write_all(chunk).await.unwrap();
          rest = tail;
        }
      });
      let mut reader = memsync::transport::local::connection::FrameReader::new(reader);
      let mut got = Vec::new();
      let failed = loop {
        match reader.read_message().await {
          Ok(Some(message)) => got.push(message),
          Ok(None) => break false,
          Err(_) => break true,
        }
      };
      feed.abort();
      (got, failed)
    });
    prop_assert_eq!(got, expected);
    // A trailing incomplete frame is a truncation error at the end of the stream.
    prop_assert_eq!(failed, end.is_err() || garbage.is_some());
  }
}
