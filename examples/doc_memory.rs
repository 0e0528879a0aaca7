//! What the document's 10 MB object costs as `serde_json::Value` (`preserve_order`) and as
//! `memsync::doc::Value`: bytes and blocks held after a parse, parse time, serialization time;
//! the median of 5 runs each. The object is the one `bench/fixtures/sync-peer.mjs` `generate`
//! builds for 1e7 bytes. The numbers are in docs/design/compact-document.md.
//!
//! ```sh
//! cargo run --release --no-default-features --example doc_memory
//! ```
//! runs each representation in a process of its own (`-- serde_json` or `-- doc` runs one).
//! (`--no-default-features`: an executable cannot link the napi binding, napi-rs#1099.)

#[cfg(not(feature = "napi"))]
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Serialize};

/// Counts what is held: bytes asked for, blocks, and the bytes of glibc's chunks
/// (`malloc_usable_size` plus its 8-byte header). Not with the binding, whose build allocates
/// with jemalloc (src/lib.rs).
#[cfg(not(feature = "napi"))]
struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static BLOCKS: AtomicUsize = AtomicUsize::new(0);
static CHUNKS: AtomicUsize = AtomicUsize::new(0);

#[cfg(not(feature = "napi"))]
fn chunk(ptr: *mut u8) -> usize {
  // SAFETY: `ptr` is a live block from the system allocator (glibc's malloc).
  unsafe { libc::malloc_usable_size(ptr.cast()) + 8 }
}

// SAFETY: every call is passed on to `System`; the counters only observe.
#[cfg(not(feature = "napi"))]
unsafe impl GlobalAlloc for Counting {
  unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
    // SAFETY: the caller's contract, passed on.
    let ptr = unsafe { System.alloc(layout) };
    if !ptr.is_null() {
      BYTES.fetch_add(layout.size(), Relaxed);
      BLOCKS.fetch_add(1, Relaxed);
      CHUNKS.fetch_add(chunk(ptr), Relaxed);
    }
    ptr
  }

  unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
    BYTES.fetch_sub(layout.size(), Relaxed);
    BLOCKS.fetch_sub(1, Relaxed);
    CHUNKS.fetch_sub(chunk(ptr), Relaxed);
    // SAFETY: the caller's contract, passed on.
    unsafe { System.dealloc(ptr, layout) }
  }
}

#[cfg(not(feature = "napi"))]
#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The JSON text of `generate(bytes)` in sync-peer.mjs, byte for byte.
fn generate(bytes: usize) -> String {
  fn record(i: u64) -> String {
    // JS prints (i * 7919) % 1000 / 10 as an integer when it is one, else as the shortest
    // round-trip decimal, which is what Rust's Display of an f64 prints too.
    let tenths = (i * 7919) % 1000;
    let score = if tenths.is_multiple_of(10) {
      (tenths / 10).to_string()
    } else {
      (tenths as f64 / 10.0).to_string()
    };
    format!(
      r#"{{"id":{i},"name":"user-{i}","email":"user{i}@example.com","active":{},"score":{score},"tags":["beta","group-{}"],"address":{{"city":"City {}","zip":"{}"}}}}"#,
      i.is_multiple_of(3),
      i % 17,
      i % 100,
      10000 + (i % 90000)
    )
  }
  let count = bytes.div_ceil(record(100_000).len() + 1);
  let users: Vec<String> = (0..count as u64).map(record).collect();
  format!(
    r#"{{"meta":{{"generated":{count}}},"users":[{}]}}"#,
    users.join(",")
  )
}

fn median(mut times: Vec<Duration>) -> Duration {
  times.sort();
  times[times.len() / 2]
}

struct Row {
  bytes: usize,
  blocks: usize,
  chunks: usize,
  first: Duration,
  parse: Duration,
  serialize: Duration,
}

fn measure<T: DeserializeOwned + Serialize>(text: &str) -> Row {
  // Sized ahead, so that no push inside a measurement allocates.
  let mut held = Vec::with_capacity(5);
  let mut parses = Vec::with_capacity(5);
  let mut serializations = Vec::with_capacity(5);
  for _ in 0..5 {
    let (bytes, blocks, chunks) = (
      BYTES.load(Relaxed),
      BLOCKS.load(Relaxed),
      CHUNKS.load(Relaxed),
    );
    let start = Instant::now();
    let value: T = serde_json::from_str(text).expect("the generated text is JSON");
    parses.push(start.elapsed());
    held.push((
      BYTES.load(Relaxed) - bytes,
      BLOCKS.load(Relaxed) - blocks,
      CHUNKS.load(Relaxed) - chunks,
    ));
    let start = Instant::now();
    let out = serde_json::to_string(&value).expect("a value serializes");
    serializations.push(start.elapsed());
    assert_eq!(out.len(), text.len(), "the text round trips");
  }
  // What glibc hands out for a request depends on which freed chunks it reuses, so the chunks'
  // bytes vary a little from run to run; what was asked for does not.
  let (bytes, blocks, _) = held[0];
  assert!(
    held.iter().all(|h| (h.0, h.1) == (bytes, blocks)),
    "every parse asks for the same"
  );
  let mut chunks: Vec<usize> = held.iter().map(|h| h.2).collect();
  chunks.sort();
  let chunks = chunks[chunks.len() / 2];
  Row {
    bytes,
    blocks,
    chunks,
    first: parses[0],
    parse: median(parses),
    serialize: median(serializations),
  }
}

/// Measures one representation (`serde_json` or `doc`) in this process, or with no argument
/// each in a process of its own, so that each first parse starts from fresh pages.
fn main() {
  if cfg!(feature = "napi") {
    eprintln!("doc_memory counts through the system allocator: run it with --no-default-features");
    std::process::exit(2);
  }
  let text = generate(10_000_000);
  match std::env::args().nth(1).as_deref() {
    None => {
      println!(
        "text: {} bytes ({:.2} MiB)",
        text.len(),
        text.len() as f64 / MIB
      );
      // The first parse takes fresh pages from the kernel, as a joining process's does; the later
      // ones reuse what the one before freed.
      println!("| value | held | blocks | glibc chunks | first parse | parse | serialize |");
      println!("|---|---|---|---|---|---|---|");
      let me = std::env::current_exe().expect("the example's own path");
      for which in ["serde_json", "doc"] {
        let status = std::process::Command::new(&me)
          .arg(which)
          .status()
          .expect("runs itself");
        assert!(status.success(), "{which}: {status}");
      }
    }
    Some("serde_json") => print(
      "serde_json::Value",
      measure::<serde_json::Value>(&text),
      &text,
    ),
    Some("doc") => print("doc::Value", measure::<memsync::doc::Value>(&text), &text),
    Some(other) => panic!("unknown representation {other}: serde_json or doc"),
  }
}

const MIB: f64 = 1024.0 * 1024.0;

fn print(name: &str, row: Row, text: &str) {
  println!(
    "| {name} | {:.1} MiB ({:.2}x) | {:.2} M | {:.1} MiB | {:.0} ms | {:.0} ms | {:.0} ms |",
    row.bytes as f64 / MIB,
    row.bytes as f64 / text.len() as f64,
    row.blocks as f64 / 1e6,
    row.chunks as f64 / MIB,
    row.first.as_secs_f64() * 1e3,
    row.parse.as_secs_f64() * 1e3,
    row.serialize.as_secs_f64() * 1e3
  );
}
