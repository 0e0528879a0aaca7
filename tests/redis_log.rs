//! The Redis transport's parts against a real `redis-server` and `redis-sentinel` (Debian's
//! packages; a test says so and passes when they are not installed): the ordering script
//! (versions, dedupe, gaps, the protocol check, NOSCRIPT) and reaching the primary.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use memsync::doc::json;
use memsync::transport::redis::address::Target;
use memsync::transport::redis::bridge::{start, Durability, Running, Shared};
use memsync::transport::redis::connect::primary;
use memsync::transport::redis::log::{chain_after, read_after, Keys, Orderer, Placed, Proposal};
use memsync::transport::redis::snapshot::Compaction;
use memsync::Replica;
use std::sync::Arc;

/// A `redis-server` on a free loopback port, persistence off, killed when dropped.
struct Server {
  child: Child,
  port: u16,
}

impl Drop for Server {
  fn drop(&mut self) {
    let _ = self.child.kill();
    let _ = self.child.wait();
  }
}

fn free_port() -> u16 {
  TcpListener::bind("127.0.0.1:0")
    .unwrap()
    .local_addr()
    .unwrap()
    .port()
}

fn server() -> Option<Server> {
  let port = free_port();
  let child = Command::new("redis-server")
    .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
    .args(["--save", "", "--appendonly", "no"])
    .stdout(Stdio::null())
    .spawn();
  match child {
    Ok(child) => Some(Server { child, port }),
    Err(err) => {
      eprintln!("redis-server cannot run ({err}): apt-get install redis-server");
      None
    }
  }
}

/// A sentinel watching the server on `primary` as `master` (quorum 1), its config in `dir`.
fn sentinel(primary: u16, master: &str, dir: &tempfile::TempDir) -> Option<Server> {
  let port = free_port();
  let config = dir.path().join(format!("sentinel-{port}.conf"));
  std::fs::write(
    &config,
    format!("port {port}\nbind 127.0.0.1\nsentinel monitor {master} 127.0.0.1 {primary} 1\n"),
  )
  .unwrap();
  let child = Command::new("redis-sentinel")
    .arg(&config)
    .stdout(Stdio::null())
    .spawn();
  match child {
    Ok(child) => Some(Server { child, port }),
    Err(err) => {
      eprintln!("redis-sentinel cannot run ({err}): apt-get install redis-sentinel");
      None
    }
  }
}

async fn connect(server: &Server) -> redis::aio::MultiplexedConnection {
  let client = redis::Client::open(format!("redis://127.0.0.1:{}", server.port)).unwrap();
  let deadline = Instant::now() + Duration::from_secs(10);
  loop {
    match client.get_multiplexed_async_connection().await {
      Ok(connection) => return connection,
      Err(err) if Instant::now() > deadline => panic!("redis-server did not listen: {err}"),
      Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
    }
  }
}

fn proposal(origin: u64, seq: u64, payload: &[u8]) -> Proposal<'_> {
  Proposal {
    origin,
    seq,
    skips_gap: false,
    payload,
  }
}

#[tokio::test]
async fn a_batch_gets_consecutive_versions_resends_are_dropped_and_gaps_reported() {
  let Some(server) = server() else { return };
  let mut connection = connect(&server).await;
  let keys = Keys::of("jobs");
  let orderer = Orderer::default();
  // Origins above 2^53 must survive the script's numbers.
  let big = u64::MAX - 1;
  let placed = orderer
    .order(
      &mut connection,
      &keys,
      &[
        proposal(big, 1, b"a1"),
        proposal(7, 1, b"b1"),
        proposal(big, 2, b"a2"),
        proposal(big, 2, b"a2 again"),
        proposal(7, 3, b"b3"),
        proposal(7, 4, b"b4"),
      ],
    )
    .await
    .unwrap()
    .placed;
  assert_eq!(
    placed,
    [
      Placed::Ordered(1),
      Placed::Ordered(2),
      Placed::Ordered(3),
      Placed::Duplicate,
      Placed::Gap { last: 1 },
      Placed::Gap { last: 1 },
    ]
  );
  // The resubmission from last + 1, after a resend of what is ordered already.
  let placed = orderer
    .order(
      &mut connection,
      &keys,
      &[
        proposal(7, 1, b"b1"),
        proposal(7, 2, b"b2"),
        proposal(7, 3, b"b3"),
      ],
    )
    .await
    .unwrap()
    .placed;
  assert_eq!(
    placed,
    [Placed::Duplicate, Placed::Ordered(4), Placed::Ordered(5)]
  );
  let entries = read_after(&mut connection, &keys, 0, 10).await.unwrap();
  let mut chain = String::new();
  for entry in &entries {
    chain = chain_after(&chain, entry.origin, entry.seq);
    assert_eq!(entry.chain, chain, "each entry chains the ones before it");
  }
  let entries: Vec<_> = entries
    .into_iter()
    .skip(2)
    .map(|entry| (entry.version, entry.origin, entry.seq, entry.payload))
    .collect();
  let entry = |version, origin, seq, payload: &[u8]| (version, origin, seq, payload.to_vec());
  assert_eq!(
    entries,
    [
      entry(3, big, 2, b"a2"),
      entry(4, 7, 2, b"b2"),
      entry(5, 7, 3, b"b3"),
    ]
  );
  assert_eq!(read_after(&mut connection, &keys, 5, 10).await.unwrap(), []);
  // Patches 4 and 5 of origin 7 are lost for good: 6 skips the gap, 7 follows it.
  let skipping = Proposal {
    skips_gap: true,
    ..proposal(7, 6, b"b6")
  };
  let placed = orderer
    .order(
      &mut connection,
      &keys,
      &[skipping, proposal(7, 7, b"b7"), proposal(7, 5, b"b5 late")],
    )
    .await
    .unwrap()
    .placed;
  assert_eq!(
    placed,
    [Placed::Ordered(6), Placed::Ordered(7), Placed::Duplicate]
  );
}

#[tokio::test]
async fn another_protocol_is_refused_and_a_flushed_script_is_loaded_again() {
  let Some(server) = server() else { return };
  let mut connection = connect(&server).await;
  let keys = Keys::of("proto");
  let orderer = Orderer::default();
  let placed = orderer
    .order(&mut connection, &keys, &[proposal(1, 1, b"x")])
    .await
    .unwrap();
  assert_eq!(placed.placed, [Placed::Ordered(1)]);
  assert_eq!(placed.head, 1);
  // What a failover to a server that never saw the script looks like.
  let _: () = redis::cmd("SCRIPT")
    .arg("FLUSH")
    .query_async(&mut connection)
    .await
    .unwrap();
  let placed = orderer
    .order(&mut connection, &keys, &[proposal(1, 2, b"y")])
    .await
    .unwrap();
  assert_eq!(placed.placed, [Placed::Ordered(2)]);
  let empty = orderer.order(&mut connection, &keys, &[]).await.unwrap();
  assert_eq!(
    (empty.placed, empty.head),
    (vec![], 2),
    "an empty batch tells the head"
  );
  let _: () = redis::cmd("HSET")
    .arg(&keys.head)
    .arg("protocol")
    .arg(99)
    .query_async(&mut connection)
    .await
    .unwrap();
  let err = orderer
    .order(&mut connection, &keys, &[proposal(1, 3, b"z")])
    .await
    .unwrap_err();
  assert!(
    err.to_string().contains("written with protocol 99"),
    "{err}"
  );
}

#[test]
fn the_keys_of_an_object_share_one_hash_tag_that_its_name_cannot_cut_short() {
  let keys = Keys::of("a}b{c");
  let tag = &keys.log[..=keys.log.find('}').unwrap()];
  assert_eq!(tag, "{ms:a%7Db%7Bc}");
  assert_eq!(keys.log, format!("{tag}:log"));
  assert_eq!(keys.origins, format!("{tag}:origins"));
  assert_eq!(keys.head, format!("{tag}:head"));
}

#[tokio::test]
async fn the_primary_is_reached_directly_or_through_a_sentinel_and_failures_hide_the_password() {
  let Some(server) = server() else { return };
  let dir = tempfile::tempdir().unwrap();
  let Some(watcher) = sentinel(server.port, "main", &dir) else {
    return;
  };
  // Both listen before they are asked.
  drop(connect(&server).await);
  drop(connect(&watcher).await);
  let keys = Keys::of("reached");
  let direct = Target::parse(&format!("redis://127.0.0.1:{}", server.port)).unwrap();
  let (mut connection, _) = primary(&direct, &keys).await.unwrap();
  let pong: String = redis::cmd("PING")
    .query_async(&mut connection)
    .await
    .unwrap();
  assert_eq!(pong, "PONG");
  let dead = free_port();
  let through = Target::parse(&format!(
    "redis+sentinel://:hunter2@127.0.0.1:{dead},127.0.0.1:{}/main",
    watcher.port
  ))
  .unwrap();
  let err = primary(&through, &keys).await.map(|_| ()).unwrap_err();
  // The password is for the data node, whose server has none: AUTH fails there.
  assert!(err.contains(":***@") && !err.contains("hunter2"), "{err}");
  let through = Target::parse(&format!(
    "redis+sentinel://127.0.0.1:{dead},127.0.0.1:{}/main",
    watcher.port
  ))
  .unwrap();
  let (mut connection, node) = primary(&through, &keys).await.unwrap();
  assert_eq!(node.port, server.port, "the sentinel names the server");
  let _: () = redis::cmd("SET")
    .arg("k")
    .arg("v")
    .query_async(&mut connection)
    .await
    .unwrap();
  let unknown = Target::parse(&format!(
    "redis+sentinel://127.0.0.1:{}/other",
    watcher.port
  ))
  .unwrap();
  let err = primary(&unknown, &keys).await.map(|_| ()).unwrap_err();
  assert!(err.contains("knows no master 'other'"), "{err}");
}

fn shared(server: &Server, compaction: Compaction) -> Shared {
  Shared {
    target: Target::parse(&format!("redis://127.0.0.1:{}", server.port)).unwrap(),
    durability: Durability::Primary,
    compaction,
  }
}

/// Two "machines" (a bridge replica each) on one server, each proposing 100 patches.
async fn two_bridges(
  server: &Server,
  name: &str,
  compaction: Compaction,
) -> Vec<(u64, Arc<Replica>, Running)> {
  let shared = shared(server, compaction);
  drop(connect(server).await);
  let mut machines = Vec::new();
  for origin in [11, 22] {
    let replica = Arc::new(Replica::new(name, json!({ "n": 0, "by": [] }), origin).unwrap());
    let running = start(&replica, &shared).await.unwrap();
    machines.push((origin, replica, running));
  }
  for round in 0..100 {
    for (origin, replica, _) in &machines {
      let update = json!({ "$inc": { "n": 1 }, "$push": { "by": format!("{origin}:{round}") } });
      replica.patch(&update.to_string()).unwrap();
    }
  }
  machines
}

/// Waits until every machine reached `version`, then checks that they hold the same document
/// with each machine's 100 patches once, in its order.
async fn converged(machines: &[(u64, Arc<Replica>, Running)], version: u64) {
  let deadline = Instant::now() + Duration::from_secs(10);
  while machines
    .iter()
    .any(|(_, replica, _)| replica.version() < version || replica.read("n") != Some(json!(200)))
  {
    assert!(
      Instant::now() < deadline,
      "the machines did not converge within 10 s: {:?}",
      machines
        .iter()
        .map(|(_, replica, _)| (replica.version(), replica.read("n")))
        .collect::<Vec<_>>()
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
  let [(_, a, _), (_, b, _)] = machines else {
    unreachable!()
  };
  assert_eq!(
    a.read(""),
    b.read(""),
    "the same document, in the same order"
  );
  let by = a.read("by").unwrap();
  for origin in [11, 22] {
    let mine: Vec<&str> = by
      .as_array()
      .unwrap()
      .iter()
      .filter_map(|who| {
        who
          .as_str()
          .filter(|who| who.starts_with(&format!("{origin}:")))
      })
      .collect();
    let expected: Vec<String> = (0..100).map(|round| format!("{origin}:{round}")).collect();
    assert_eq!(mine, expected, "each machine's patches once, in its order");
  }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_machines_bridged_through_one_redis_converge_on_every_patch() {
  let Some(server) = server() else { return };
  let machines = two_bridges(&server, "shared", Compaction::default()).await;
  converged(&machines, 200).await;
  assert_eq!(machines[0].1.version(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_lost_the_last_entries_the_bridges_join_again_and_propose_them_again() {
  let Some(server) = server() else { return };
  let machines = two_bridges(&server, "lossy", Compaction::default()).await;
  converged(&machines, 200).await;
  // What a failover to a replica 80 entries behind leaves: the log, the head and each origin's
  // progress as of version 120.
  let mut connection = connect(&server).await;
  let keys = Keys::of("lossy");
  let kept = read_after(&mut connection, &keys, 0, 120).await.unwrap();
  let mut pipe = redis::pipe();
  for version in 121..=200 {
    pipe
      .cmd("XDEL")
      .arg(&keys.log)
      .arg(format!("0-{version}"))
      .ignore();
  }
  pipe.cmd("XSETID").arg(&keys.log).arg("0-120").ignore();
  pipe
    .cmd("HSET")
    .arg(&keys.head)
    .arg("version")
    .arg(120)
    .arg("chain")
    .arg(&kept.last().unwrap().chain)
    .ignore();
  pipe.cmd("DEL").arg(&keys.origins).ignore();
  for entry in &kept {
    pipe
      .cmd("HSET")
      .arg(&keys.origins)
      .arg(entry.origin.to_string())
      .arg(entry.seq)
      .ignore();
  }
  let () = pipe.query_async(&mut connection).await.unwrap();
  // The lost patches come back once, from the bridges that keep them; the versions count them
  // again after the 120 the log kept.
  let deadline = Instant::now() + Duration::from_secs(10);
  loop {
    let head: u64 = redis::cmd("HGET")
      .arg(&keys.head)
      .arg("version")
      .query_async(&mut connection)
      .await
      .unwrap();
    if head >= 200 {
      break;
    }
    assert!(
      Instant::now() < deadline,
      "the lost patches were not proposed again: head {head}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
  converged(&machines, 200).await;
  let head = read_after(&mut connection, &keys, 120, 1000).await.unwrap();
  assert_eq!(head.len(), 80, "each lost patch proposed again once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_machine_that_joins_after_compaction_starts_from_the_snapshot_and_a_broken_one_is_refused(
) {
  let Some(server) = server() else { return };
  let compaction = Compaction {
    every_entries: 50,
    every_ms: 60_000,
    keep_entries: 20,
    keep_ms: 0,
  };
  let machines = two_bridges(&server, "compacted", compaction).await;
  converged(&machines, 200).await;
  let mut connection = connect(&server).await;
  let keys = Keys::of("compacted");
  // A bridge snapshots on its once-a-second check; the log before it is trimmed.
  let deadline = Instant::now() + Duration::from_secs(10);
  let snapshot_version = loop {
    let version: Option<u64> = redis::cmd("HGET")
      .arg(&keys.snapshot)
      .arg("version")
      .query_async(&mut connection)
      .await
      .unwrap();
    let first = read_after(&mut connection, &keys, 0, 1).await.unwrap();
    match (version, first.first()) {
      (Some(version), Some(first)) if version == 200 && first.version > 1 => break version,
      _ => assert!(
        Instant::now() < deadline,
        "no snapshot at 200 and trimmed log within 10 s: {version:?}"
      ),
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
  };
  let first = read_after(&mut connection, &keys, 0, 1).await.unwrap()[0].version;
  assert_eq!(
    first,
    snapshot_version - compaction.keep_entries + 1,
    "20 entries kept before it"
  );
  // The log no longer starts at the base: a joiner can only start from the snapshot.
  let joiner = Arc::new(Replica::new("compacted", json!({ "other": true }), 33).unwrap());
  let _running = start(&joiner, &shared(&server, compaction)).await.unwrap();
  assert_eq!(joiner.version(), 200);
  assert_eq!(joiner.read(""), machines[0].1.read(""));
  joiner.patch(r#"{"$inc":{"n":1}}"#).unwrap();
  let deadline = Instant::now() + Duration::from_secs(10);
  while machines
    .iter()
    .any(|(_, replica, _)| replica.version() < 201)
  {
    assert!(
      Instant::now() < deadline,
      "the joiner's patch did not arrive"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
  }
  assert_eq!(machines[0].1.read("n"), Some(json!(201)));
  // A snapshot that does not parse: a new machine refuses to join, and says why.
  let () = redis::cmd("SET")
    .arg(keys.chunk(snapshot_version, 0))
    .arg("{not json")
    .query_async(&mut connection)
    .await
    .unwrap();
  let refused = Arc::new(Replica::new("compacted", json!({}), 44).unwrap());
  let err = start(&refused, &shared(&server, compaction))
    .await
    .map(|_| ())
    .unwrap_err();
  assert!(
    err
      .to_string()
      .contains("snapshot at version 200 does not parse"),
    "{err}"
  );
}

#[tokio::test]
async fn a_clock_two_seconds_off_redis_is_warned_of_and_one_in_step_is_not() {
  use memsync::clock::{now_ms, Time};
  let Some(server) = server() else { return };
  drop(connect(&server).await);
  let warnings = |offset_ms: u64| {
    let server = &server;
    async move {
      let time = Time::from_fn(move || now_ms() + offset_ms);
      let replica = Arc::new(Replica::with_time("skewed", json!({}), offset_ms + 1, time).unwrap());
      let _running = start(&replica, &shared(server, Compaction::default()))
        .await
        .unwrap();
      replica.drain()
    }
  };
  let ahead = warnings(2_000).await;
  assert!(
    ahead.contains(r#""warn",2,"MEMSYNC_CLOCK_SKEW","this machine's clock is"#)
      && ahead.contains("ms ahead of Redis's"),
    "{ahead}"
  );
  assert!(!warnings(0).await.contains("MEMSYNC_CLOCK_SKEW"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_document_loaded_from_a_file_gives_way_to_the_log_and_seeds_only_a_new_object() {
  let Some(server) = server() else { return };
  let machines = two_bridges(&server, "filed", Compaction::default()).await;
  converged(&machines, 200).await;
  // What options.file gives a host at start: another document, at a version of its own.
  let from_file = Arc::new(Replica::new("filed", json!({}), 33).unwrap());
  from_file.seed(json!({ "n": 999, "by": [] }), 7);
  let _running = start(&from_file, &shared(&server, Compaction::default()))
    .await
    .unwrap();
  assert_eq!(from_file.version(), 200);
  assert_eq!(from_file.read(""), machines[0].1.read(""));
  let fresh = Arc::new(Replica::new("filed-new", json!({}), 44).unwrap());
  fresh.seed(json!({ "n": 999 }), 7);
  let _fresh = start(&fresh, &shared(&server, Compaction::default()))
    .await
    .unwrap();
  assert_eq!(
    fresh.read("n"),
    Some(json!(999)),
    "the file seeds an object Redis does not hold"
  );
}

/// Waits until `replica`'s events for JS include `event`.
async fn heard(replica: &Replica, event: &str) {
  let deadline = Instant::now() + Duration::from_secs(10);
  let mut events = String::new();
  while !has_event(&events, event) {
    assert!(
      Instant::now() < deadline,
      "no {event} within 10 s: {events}"
    );
    tokio::time::sleep(Duration::from_millis(10)).await;
    events.push_str(&replica.drain());
  }
}

/// Whether drained text holds `event`, given as its tokens (`"g",1,2`), whole: it starts and ends
/// at a token's edge (`"g",1,23` does not hold `"g",1,2`).
fn has_event(events: &str, event: &str) -> bool {
  events.match_indices(event).any(|(at, _)| {
    let before = events[..at].chars().next_back();
    let after = events[at + event.len()..].chars().next();
    matches!(before, Some(',' | '[')) && matches!(after, Some(',' | ']'))
  })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lock_holds_on_every_machine_and_a_joiner_from_a_snapshot_knows_who_holds_it() {
  use memsync::clock::Hlc;
  let Some(server) = server() else { return };
  let compaction = Compaction {
    every_entries: 5,
    every_ms: 60_000,
    keep_entries: 2,
    keep_ms: 0,
  };
  let shared = shared(&server, compaction);
  drop(connect(&server).await);
  let mut machines = Vec::new();
  for origin in [11, 22] {
    let replica = Arc::new(Replica::new("locked", json!({ "n": 0 }), origin).unwrap());
    let running = start(&replica, &shared).await.unwrap();
    machines.push((replica, running));
  }
  let [(a, _), (b, _)] = &machines[..] else {
    unreachable!()
  };
  let lock = |replica: &Replica, id: u64, ms: u64| {
    let since = Hlc { ms, counter: 0 };
    let effects = replica.exchange().lock(id, "k".into(), since, 0);
    replica.apply(effects, true);
  };
  lock(a, 1, 1);
  heard(a, r#""g",1,1"#).await;
  lock(b, 2, 2);
  for _ in 0..10 {
    a.patch(r#"{"$inc":{"n":1}}"#).unwrap();
  }
  // A snapshot after the lock entries, and the log trimmed behind it.
  let mut connection = connect(&server).await;
  let keys = Keys::of("locked");
  let deadline = Instant::now() + Duration::from_secs(10);
  loop {
    let first = read_after(&mut connection, &keys, 0, 1).await.unwrap();
    if first.first().is_some_and(|first| first.version > 3) {
      break;
    }
    assert!(Instant::now() < deadline, "no trimmed log within 10 s");
    tokio::time::sleep(Duration::from_millis(50)).await;
  }
  let joiner = Arc::new(Replica::new("locked", json!({}), 33).unwrap());
  let _running = start(&joiner, &shared).await.unwrap();
  let table = joiner.exchange().lock_state();
  assert_eq!(table, a.exchange().lock_state());
  assert_eq!(table.len(), 1);
  assert_eq!(table[0].holder.map(|ticket| ticket.owner), Some(11));
  assert_eq!(table[0].waiting.len(), 1, "machine 22's request waits");
  assert!(!has_event(&b.drain(), r#""g",1,2"#));
  let effects = a.exchange().unlock(1, 0);
  a.apply(effects, true);
  heard(b, r#""g",1,2"#).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_local_host_gets_the_rules_state_every_bridge_has_from_the_snapshot_and_the_log() {
  use memsync::transport::redis::bridge::state_at;
  let Some(server) = server() else { return };
  for (name, compaction) in [
    ("from-base", Compaction::default()),
    (
      "from-snapshot",
      Compaction {
        every_entries: 50,
        every_ms: 60_000,
        keep_entries: 20,
        keep_ms: 0,
      },
    ),
  ] {
    let machines = two_bridges(&server, name, compaction).await;
    converged(&machines, 200).await;
    let mut connection = connect(&server).await;
    let keys = Keys::of(name);
    let (_, progress) = machines[0].1.log_state().unwrap();
    assert!(
      !progress.write_times.is_empty(),
      "the window of the $inc and $push"
    );
    let (computed, locks) = state_at(&mut connection, &keys, name, 200)
      .await
      .unwrap()
      .expect("the log can tell");
    let sorted = |mut progress: memsync::core::order::Progress| {
      progress.applied.sort_unstable();
      progress.write_times.sort();
      progress
    };
    assert_eq!(sorted(computed), sorted(progress), "{name}");
    assert!(locks.is_empty());
  }
}
