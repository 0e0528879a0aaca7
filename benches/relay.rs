//! The physical floor under memsync's sync: a raw relay over Unix domain sockets, measured in
//! separate processes, with no JSON, no replica and no JavaScript.
//!
//!   cargo bench --no-default-features --bench relay -- [options]
//!
//! This process is the relay (memsync's host); it re-runs its own executable as the clients. The
//! relay forwards every frame it receives to every connected client (the sender included, as
//! memsync's host acknowledges a patch by ordering it), through one writer task per client that
//! coalesces everything queued into one write, as memsync's host does (`src/host.rs`). Frames are
//! a 4-byte big-endian length and a payload, `--size` bytes in all (default 100).
//!
//! - latency: client A sends a frame holding its send time, client B answers on receipt with a
//!   frame holding its own send time; A waits for the answer before the next frame. The one-way
//!   time of each frame (A -> relay -> B and B -> relay -> A) is the receive time minus the send
//!   time, both read from CLOCK_MONOTONIC, one clock for every process of the machine; A also
//!   takes the round trip. `--warmup` rounds are dropped, then `--samples` rounds per run.
//! - throughput: W writer clients each send `--messages` frames, at most `--in-flight` not yet
//!   echoed back by the relay, and one more client only reads; a run ends when every client has
//!   received all W x messages frames: messages/s = W x messages / (last client done - first
//!   writer start).
//!
//! Every party runs a single-threaded tokio runtime: no wake-up crosses threads inside a process.
//! Prints one JSON object on stdout: `{ message_bytes, in_flight, latency: { warmup, samples,
//! runs: [{ p50_ns, p99_ns, rtt_p50_ns, samples }] }, throughput: [{ writers, messages,
//! runs: [messages/s] }] }`.

use std::io::{self, BufRead, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::mpsc;

const HELLO: u8 = 1;
const GO: u8 = 2;
const DATA: u8 = 3;
/// Payload offsets: kind, sender id, then sequence number and timestamp (little endian).
const KIND: usize = 0;
const FROM: usize = 1;
const SEQ: usize = 8;
const TIME: usize = 16;
const MIN_PAYLOAD: usize = 24;

#[derive(Debug, Clone)]
struct Config {
  runs: usize,
  warmup: u64,
  samples: u64,
  size: usize,
  messages: u64,
  in_flight: u64,
  writers: Vec<usize>,
  throughput_runs: usize,
}

impl Default for Config {
  fn default() -> Self {
    Config {
      runs: 5,
      warmup: 1000,
      samples: 5000,
      size: 100,
      messages: 200_000,
      in_flight: 256,
      writers: vec![1, 2, 4],
      throughput_runs: 5,
    }
  }
}

fn parse_args(args: &[String]) -> Config {
  let mut config = Config::default();
  let mut i = 0;
  while i < args.len() {
    let value = || {
      args
        .get(i + 1)
        .unwrap_or_else(|| panic!("{} needs a value", args[i]))
    };
    let number = || -> u64 {
      value()
        .parse()
        .unwrap_or_else(|_| panic!("bad {}", args[i]))
    };
    match args[i].as_str() {
      // cargo bench passes --bench to every bench target.
      "--bench" => {
        i += 1;
        continue;
      }
      "--runs" => config.runs = number() as usize,
      "--warmup" => config.warmup = number(),
      "--samples" => config.samples = number(),
      "--size" => config.size = number() as usize,
      "--messages" => config.messages = number(),
      "--in-flight" => config.in_flight = number(),
      "--throughput-runs" => config.throughput_runs = number() as usize,
      "--writers" => {
        config.writers = value()
          .split(',')
          .map(|w| w.parse().expect("--writers 1,2,4"))
          .collect()
      }
      other => panic!("unknown argument {other}"),
    }
    i += 2;
  }
  assert!(
    config.size >= 4 + MIN_PAYLOAD,
    "--size must be at least {}",
    4 + MIN_PAYLOAD
  );
  config
}

/// CLOCK_MONOTONIC in nanoseconds: unlike `Instant`, comparable between processes.
fn now_ns() -> u64 {
  #[repr(C)]
  struct Timespec {
    tv_sec: i64,
    tv_nsec: i64,
  }
  extern "C" {
    fn clock_gettime(clock: i32, ts: *mut Timespec) -> i32;
  }
  #[cfg(target_os = "linux")]
  const CLOCK_MONOTONIC: i32 = 1;
  #[cfg(target_os = "macos")]
  const CLOCK_MONOTONIC: i32 = 6;
  let mut ts = Timespec {
    tv_sec: 0,
    tv_nsec: 0,
  };
  // SAFETY: clock_gettime writes one timespec (two 64-bit fields on 64-bit Linux and macOS).
  let rc = unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
  assert_eq!(rc, 0, "clock_gettime failed");
  ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn frame(size: usize, kind: u8, from: u8, seq: u64, time: u64) -> Vec<u8> {
  let mut bytes = vec![b' '; size];
  bytes[..4].copy_from_slice(&((size - 4) as u32).to_be_bytes());
  let payload = &mut bytes[4..];
  payload[KIND] = kind;
  payload[FROM] = from;
  payload[SEQ..SEQ + 8].copy_from_slice(&seq.to_le_bytes());
  payload[TIME..TIME + 8].copy_from_slice(&time.to_le_bytes());
  bytes
}

fn field(payload: &[u8], at: usize) -> u64 {
  u64::from_le_bytes(payload[at..at + 8].try_into().unwrap())
}

/// Reads length-prefixed frames into one buffer, many per read.
struct Frames {
  buffer: Vec<u8>,
  start: usize,
}

impl Frames {
  fn new() -> Self {
    Frames {
      buffer: Vec::with_capacity(64 * 1024),
      start: 0,
    }
  }

  /// The next whole frame already buffered (length prefix included), if any.
  fn next(&mut self) -> Option<&[u8]> {
    let available = &self.buffer[self.start..];
    if available.len() < 4 {
      return None;
    }
    let len = u32::from_be_bytes(available[..4].try_into().unwrap()) as usize;
    if available.len() < 4 + len {
      return None;
    }
    let begin = self.start;
    self.start += 4 + len;
    Some(&self.buffer[begin..begin + 4 + len])
  }

  /// Reads more; false at end of stream.
  async fn fill(&mut self, input: &mut OwnedReadHalf) -> io::Result<bool> {
    if self.start > 0 {
      self.buffer.drain(..self.start);
      self.start = 0;
    }
    if self.buffer.capacity() - self.buffer.len() < 16 * 1024 {
      self.buffer.reserve(16 * 1024);
    }
    Ok(input.read_buf(&mut self.buffer).await? > 0)
  }
}

// ---------------------------------------------------------------------------------------------
// The relay (this process).

type Frame = Arc<[u8]>;

/// Serves `clients` connections: waits for each one's hello, sends every client a go, then
/// forwards every frame to every client until all have closed.
async fn relay(listener: UnixListener, clients: usize, size: usize) -> io::Result<()> {
  let mut readers = Vec::new();
  let mut senders = Vec::new();
  let mut writers = Vec::new();
  for _ in 0..clients {
    let (stream, _) = listener.accept().await?;
    let (mut input, output) = stream.into_split();
    let mut frames = Frames::new();
    while frames.next().is_none() {
      if !frames.fill(&mut input).await? {
        return Err(io::Error::other("a client left before its hello"));
      }
    }
    let (sender, receiver) = mpsc::unbounded_channel::<Frame>();
    writers.push(tokio::spawn(write_frames(output, receiver)));
    senders.push(sender);
    readers.push((input, frames));
  }
  let go: Frame = frame(size, GO, 0, 0, 0).into();
  for sender in &senders {
    let _ = sender.send(go.clone());
  }
  let senders = Arc::new(senders);
  let mut tasks = Vec::new();
  for (input, frames) in readers {
    let senders = senders.clone();
    tasks.push(tokio::spawn(forward(input, frames, senders)));
  }
  for task in tasks {
    task.await.expect("relay reader panicked")?;
  }
  drop(senders);
  for writer in writers {
    writer.await.expect("relay writer panicked");
  }
  Ok(())
}

/// One client's frames in, each one queued once (shared) for every client.
async fn forward(
  mut input: OwnedReadHalf,
  mut frames: Frames,
  senders: Arc<Vec<mpsc::UnboundedSender<Frame>>>,
) -> io::Result<()> {
  loop {
    while let Some(bytes) = frames.next() {
      let shared: Frame = bytes.into();
      for sender in senders.iter() {
        let _ = sender.send(shared.clone());
      }
    }
    match frames.fill(&mut input).await {
      Ok(true) => {}
      Ok(false) => return Ok(()),
      // A client that closes with frames unread resets its connection: it was done anyway.
      Err(err) if err.kind() == io::ErrorKind::ConnectionReset => return Ok(()),
      Err(err) => return Err(err),
    }
  }
}

/// memsync's host writer: everything queued goes out in one write.
async fn write_frames(mut output: OwnedWriteHalf, mut frames: mpsc::UnboundedReceiver<Frame>) {
  let mut buffer = Vec::new();
  while let Some(first) = frames.recv().await {
    buffer.extend_from_slice(&first);
    while let Ok(frame) = frames.try_recv() {
      buffer.extend_from_slice(&frame);
    }
    if output.write_all(&buffer).await.is_err() {
      return;
    }
    buffer.clear();
  }
  let _ = output.shutdown().await;
}

/// Runs one relay session: binds `socket`, spawns the clients (`roles`, each a list of child
/// arguments), and returns each client's line of output.
fn session(socket: &Path, size: usize, roles: &[Vec<String>]) -> Vec<Value> {
  let _ = std::fs::remove_file(socket);
  let runtime = tokio::runtime::Builder::new_current_thread()
    .enable_all()
    .build()
    .expect("tokio runtime");
  let listener = {
    let _guard = runtime.enter();
    UnixListener::bind(socket).expect("bind the relay socket")
  };
  let clients = roles.len();
  let relay_thread = std::thread::spawn(move || runtime.block_on(relay(listener, clients, size)));
  let exe = std::env::current_exe().expect("current_exe");
  let mut children: Vec<Child> = roles
    .iter()
    .map(|args| {
      Command::new(&exe)
        .arg("--child")
        .arg(socket)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a relay client")
    })
    .collect();
  let mut lines = Vec::new();
  for child in &mut children {
    let mut line = String::new();
    io::BufReader::new(child.stdout.take().unwrap())
      .read_line(&mut line)
      .expect("read a client's result");
    lines.push(serde_json::from_str::<Value>(&line).expect("a client's JSON output"));
  }
  for mut child in children {
    let status = child.wait().expect("wait for a client");
    assert!(status.success(), "a relay client failed: {status}");
  }
  relay_thread
    .join()
    .expect("relay thread panicked")
    .expect("relay failed");
  let _ = std::fs::remove_file(socket);
  lines
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
  let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
  sorted[rank - 1]
}

fn numbers(output: &Value, key: &str) -> Vec<u64> {
  output[key]
    .as_array()
    .expect("samples in a client's output")
    .iter()
    .map(|v| v.as_u64().unwrap())
    .collect()
}

fn number(output: &Value, key: &str) -> u64 {
  output[key].as_u64().expect("a time in a client's output")
}

fn main() {
  let args: Vec<String> = std::env::args().skip(1).collect();
  if args.first().map(String::as_str) == Some("--child") {
    client_main(&args[1..]);
    return;
  }
  let config = parse_args(&args);
  let dir = std::env::temp_dir().join(format!("memsync-relay-{}", std::process::id()));
  std::fs::create_dir_all(&dir).expect("create the socket directory");
  let socket: PathBuf = dir.join("relay.sock");
  let size = config.size.to_string();

  let mut latency_runs = Vec::new();
  for _ in 0..config.runs {
    let lines = session(
      &socket,
      config.size,
      &[
        vec![
          "ping".into(),
          size.clone(),
          config.warmup.to_string(),
          config.samples.to_string(),
        ],
        vec![
          "echo".into(),
          size.clone(),
          config.warmup.to_string(),
          config.samples.to_string(),
        ],
      ],
    );
    let mut one_way = numbers(&lines[0], "one_way");
    one_way.extend(numbers(&lines[1], "one_way"));
    one_way.sort_unstable();
    let mut rtt = numbers(&lines[0], "rtt");
    rtt.sort_unstable();
    latency_runs.push(json!({
      "p50_ns": percentile(&one_way, 0.5),
      "p99_ns": percentile(&one_way, 0.99),
      "rtt_p50_ns": percentile(&rtt, 0.5),
      "samples": one_way.len(),
    }));
  }

  let mut throughput = Vec::new();
  for &writers in &config.writers {
    let total = writers as u64 * config.messages;
    let mut rates = Vec::new();
    for _ in 0..config.throughput_runs {
      let mut roles: Vec<Vec<String>> = (0..writers)
        .map(|id| {
          vec![
            "writer".into(),
            size.clone(),
            id.to_string(),
            config.messages.to_string(),
            config.in_flight.to_string(),
            total.to_string(),
          ]
        })
        .collect();
      roles.push(vec![
        "reader".into(),
        size.clone(),
        writers.to_string(),
        total.to_string(),
      ]);
      let lines = session(&socket, config.size, &roles);
      let start = lines[..writers]
        .iter()
        .map(|l| number(l, "start"))
        .min()
        .unwrap();
      let end = lines.iter().map(|l| number(l, "end")).max().unwrap();
      rates.push((total as f64 * 1e9 / (end - start) as f64).round());
    }
    throughput.push(json!({ "writers": writers, "messages": total, "runs": rates }));
  }
  let _ = std::fs::remove_dir_all(&dir);
  let report = json!({
    "message_bytes": config.size,
    "in_flight": config.in_flight,
    "latency": { "warmup": config.warmup, "samples": config.samples, "runs": latency_runs },
    "throughput": throughput,
  });
  println!("{report}");
}

// ---------------------------------------------------------------------------------------------
// The clients (child processes).

fn client_main(args: &[String]) {
  let socket = PathBuf::from(&args[0]);
  let role = args[1].as_str();
  let size: usize = args[2].parse().unwrap();
  let rest: Vec<u64> = args[3..].iter().map(|a| a.parse().unwrap()).collect();
  let runtime = tokio::runtime::Builder::new_current_thread()
    .enable_all()
    .build()
    .expect("tokio runtime");
  runtime.block_on(async {
    let stream = UnixStream::connect(&socket)
      .await
      .expect("connect to the relay");
    let (mut input, mut output) = stream.into_split();
    let id = match role {
      "ping" => 0,
      "echo" => 1,
      "writer" => rest[0] as u8,
      _ => rest[0] as u8, // reader: after the writers
    };
    output
      .write_all(&frame(size, HELLO, id, 0, 0))
      .await
      .unwrap();
    let mut frames = Frames::new();
    // Wait for the go.
    loop {
      if let Some(bytes) = frames.next() {
        assert_eq!(bytes[4 + KIND], GO);
        break;
      }
      assert!(frames.fill(&mut input).await.unwrap(), "relay closed");
    }
    let line = match role {
      "ping" => ping(&mut input, &mut output, &mut frames, size, rest[0], rest[1]).await,
      "echo" => echo(&mut input, &mut output, &mut frames, size, rest[0], rest[1]).await,
      "writer" => {
        write(
          &mut input,
          &mut output,
          &mut frames,
          size,
          id,
          rest[1],
          rest[2],
          rest[3],
        )
        .await
      }
      "reader" => read_all(&mut input, &mut frames, rest[1]).await,
      other => panic!("unknown role {other}"),
    };
    let mut out = io::stdout().lock();
    writeln!(out, "{line}").unwrap();
    out.flush().unwrap();
    drop(out);
    // Done sending; read on until the relay closes, so that no side ever writes to a closed
    // socket (the relay closes once every client is done).
    let _ = output.shutdown().await;
    while frames.next().is_some() {}
    while let Ok(true) = frames.fill(&mut input).await {
      while frames.next().is_some() {}
    }
  });
}

/// Waits for the next data frame from `from`; returns its (seq, time, arrival).
async fn next_from(input: &mut OwnedReadHalf, frames: &mut Frames, from: u8) -> (u64, u64, u64) {
  loop {
    while let Some(bytes) = frames.next() {
      let payload = &bytes[4..];
      if payload[KIND] == DATA && payload[FROM] == from {
        let arrived = now_ns();
        return (field(payload, SEQ), field(payload, TIME), arrived);
      }
    }
    assert!(frames.fill(input).await.unwrap(), "relay closed");
  }
}

async fn ping(
  input: &mut OwnedReadHalf,
  output: &mut OwnedWriteHalf,
  frames: &mut Frames,
  size: usize,
  warmup: u64,
  samples: u64,
) -> Value {
  let mut one_way = Vec::with_capacity(samples as usize);
  let mut rtt = Vec::with_capacity(samples as usize);
  for i in 0..warmup + samples {
    let sent = now_ns();
    output
      .write_all(&frame(size, DATA, 0, i, sent))
      .await
      .unwrap();
    let (seq, time, arrived) = next_from(input, frames, 1).await;
    assert_eq!(seq, i);
    if i >= warmup {
      one_way.push(arrived - time);
      rtt.push(arrived - sent);
    }
  }
  json!({ "one_way": one_way, "rtt": rtt })
}

async fn echo(
  input: &mut OwnedReadHalf,
  output: &mut OwnedWriteHalf,
  frames: &mut Frames,
  size: usize,
  warmup: u64,
  samples: u64,
) -> Value {
  let mut one_way = Vec::with_capacity(samples as usize);
  for i in 0..warmup + samples {
    let (seq, time, arrived) = next_from(input, frames, 0).await;
    assert_eq!(seq, i);
    if i >= warmup {
      one_way.push(arrived - time);
    }
    output
      .write_all(&frame(size, DATA, 1, i, now_ns()))
      .await
      .unwrap();
  }
  json!({ "one_way": one_way })
}

#[allow(clippy::too_many_arguments)]
async fn write(
  input: &mut OwnedReadHalf,
  output: &mut OwnedWriteHalf,
  frames: &mut Frames,
  size: usize,
  id: u8,
  messages: u64,
  in_flight: u64,
  total: u64,
) -> Value {
  let start = now_ns();
  let mut sent = 0;
  let mut acked = 0;
  let mut received = 0;
  let mut batch = Vec::new();
  while received < total {
    if sent < messages && sent - acked < in_flight {
      // Everything the window allows goes out in one write, as a client's writer task batches.
      batch.clear();
      while sent < messages && sent - acked < in_flight {
        batch.extend_from_slice(&frame(size, DATA, id, sent, 0));
        sent += 1;
      }
      output.write_all(&batch).await.unwrap();
    }
    assert!(frames.fill(input).await.unwrap(), "relay closed");
    while let Some(bytes) = frames.next() {
      let payload = &bytes[4..];
      if payload[KIND] == DATA {
        received += 1;
        if payload[FROM] == id {
          acked += 1;
        }
      }
    }
  }
  let end = now_ns();
  json!({ "start": start, "end": end })
}

async fn read_all(input: &mut OwnedReadHalf, frames: &mut Frames, total: u64) -> Value {
  let mut received = 0;
  while received < total {
    assert!(frames.fill(input).await.unwrap(), "relay closed");
    while let Some(bytes) = frames.next() {
      if bytes[4 + KIND] == DATA {
        received += 1;
      }
    }
  }
  json!({ "start": 0, "end": now_ns() })
}
