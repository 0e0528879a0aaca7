//! The election and failover decisions of one instance, as a pure state machine: no tokio, no
//! sockets, no clock (raft-rs's `RawNode`). The I/O side (`peer`) performs each [`Action`] and
//! feeds back what it observed as the next [`Input`]; time enters only as inputs
//! ([`Input::Waited`], and `now` in [`Input::Welcomed`] and [`Input::HostChecked`]).
//!
//! An instance loads its file, then elects: it tries the lock of the current epoch (the holder is
//! host), else connects to the host, backing off while neither works. A client that loses its host
//! elects again at once; one whose host went silent for `hostTimeout` (stopped) first tries to
//! replace it under the next epoch (see `lease`). A host of a new epoch waits out the lease of a
//! previous holder that may be stopped, and steps down when a later epoch fences it.

use std::time::Duration;

use crate::error::Code;

use crate::transport::local::lease::{self, Silence};

/// The first pause before electing again while no host answers, doubled up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_micros(500);
/// The longest pause between two election attempts while no host answers.
const MAX_BACKOFF: Duration = Duration::from_millis(20);
/// The first pause before connecting again to a host that did not welcome us or sent something
/// invalid, doubled up to [`MAX_FAILED_BACKOFF`] while it keeps failing: without it, a host that
/// answers the hello with garbage is reconnected to thousands of times a second.
const FAILED_BACKOFF: Duration = Duration::from_millis(1);
/// The longest pause between attempts to join a host that keeps failing.
const MAX_FAILED_BACKOFF: Duration = Duration::from_secs(1);

/// Which roles an instance may take (memsync 0.5's `clientOnly` / `serverOnly`) and when a silent
/// host is replaced.
#[derive(Debug, Clone, Copy)]
pub struct Config {
  /// Never become host.
  pub client_only: bool,
  /// Never join as a client.
  pub server_only: bool,
  /// How long a host may be silent (stopped) before its clients replace it (`hostTimeout`).
  pub host_timeout: Duration,
}

/// Why an instance could not take part in its network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
  /// The code JS sees.
  pub code: Code,
  /// What went wrong.
  pub message: String,
}

/// What the I/O side observed, in answer to the last [`Action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
  /// `start()` was called.
  Start,
  /// The file of `options.file` was read (or there is none).
  Loaded,
  /// The highest epoch whose lock file exists.
  Epoch(u64),
  /// This process now holds the lock it tried ([`Action::TryLock`], [`Action::TakeOver`]).
  LockAcquired,
  /// Another process holds that lock, or the silent host's epoch has moved on already.
  LockBusy,
  /// Whether a process still holds the previous epoch's lock: a host that may be stopped.
  PreviousHeld(bool),
  /// The new lease was checked: `false` when a later epoch exists already.
  LeaseRenewed(bool),
  /// The file's object is now the replica's.
  Seeded,
  /// A host accepted our connection.
  Connected,
  /// Nobody listens on the socket (yet, or any more).
  NoHost,
  /// The host welcomed us, at `now`.
  Welcomed {
    /// The monotonic clock when the welcome arrived.
    now: Duration,
  },
  /// The host did not welcome us: it refused, closed, sent something else, or kept silent.
  NotWelcomed,
  /// The time asked for by [`Action::Follow`] has come.
  HostChecked {
    /// The monotonic clock now.
    now: Duration,
    /// When the last frame (a heartbeat at least) came from the host.
    heard: Duration,
  },
  /// The host closed the connection after welcoming us (it exited): the failover's start.
  HostLost,
  /// The host welcomed us, then sent something invalid.
  HostBroken,
  /// The connection to a silent host is closed ([`Action::LeaveHost`]).
  Left,
  /// This host found a later epoch: it was replaced while stopped, and has handed over.
  Fenced,
  /// The pause of the last [`Action::Wait`] is over.
  Waited,
  /// The host refused us for good (`ERR_MAX_WRITERS`).
  Refused(Failure),
  /// The rendezvous directory or the file cannot be used.
  Broken(Failure),
  /// `stop()` was called; a host has handed over already.
  Stop,
}

/// What the I/O side must do next; each action but the last two is answered by one [`Input`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
  /// Read the file of `options.file`.
  Load,
  /// Read the current epoch.
  ReadEpoch,
  /// Try the lock of the current epoch without waiting.
  TryLock,
  /// Try the lock of the epoch after `epoch`, whose host went silent.
  TakeOver {
    /// The silent host's epoch.
    epoch: u64,
  },
  /// Check whether the previous epoch's lock is still held.
  CheckPrevious,
  /// Take a lease in the epoch whose lock this process holds.
  RenewLease,
  /// Make the file's object the replica's before serving.
  Seed,
  /// Listen, start the services, and order patches until stopped or fenced.
  ServeAsHost,
  /// Connect to the host.
  Connect,
  /// Say hello on the new connection and wait for the welcome.
  Join,
  /// Serve as a client, and answer [`Input::HostChecked`] after `check_in` unless the connection
  /// ends first.
  Follow {
    /// How long to read before the host's silence is checked again.
    check_in: Duration,
  },
  /// Close the connection to a host that went silent.
  LeaveHost,
  /// Pause, then answer [`Input::Waited`].
  Wait(Duration),
  /// Report the failure to JS and end.
  Fail(Failure),
  /// End: stopped.
  Exit,
}

/// Where an instance is in its life; each phase waits for the answer to one action.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
  Idle,
  Loading,
  TakingOver,
  ReadingEpoch,
  /// `epoch`, here and below: the epoch read before this attempt. The host reached is of that
  /// epoch or a later one; if it goes silent, the next epoch is the one to take.
  Locking {
    epoch: u64,
  },
  Connecting {
    epoch: u64,
  },
  BackingOff,
  CheckingPrevious,
  WaitingOutLease,
  Renewing,
  Seeding,
  Hosting,
  Joining {
    epoch: u64,
  },
  /// `confirming`: the host was silent for the whole timeout when last heard at this time; it is
  /// replaced if nothing more came a heartbeat later (a client that was stopped itself first
  /// reads what its host sent meanwhile).
  Following {
    epoch: u64,
    confirming: Option<Duration>,
  },
  Leaving {
    epoch: u64,
  },
  Pausing,
  Done,
}

/// The role machine of one instance: feed it [`Input`]s with [`Role::step`], perform the
/// [`Action`] it returns.
#[derive(Debug)]
pub struct Role {
  config: Config,
  phase: Phase,
  /// The file's object may still seed the network: until this instance is welcomed by a host
  /// (whose object is newer) or seeds it as host.
  holds_file: bool,
  /// The next pause of the election while no host answers.
  backoff: Duration,
  /// The next pause before joining a host that failed us.
  failed_backoff: Duration,
}

impl Role {
  /// A machine that has not started.
  pub fn new(config: Config) -> Role {
    Role {
      config,
      phase: Phase::Idle,
      holds_file: true,
      backoff: FIRST_BACKOFF,
      failed_backoff: FAILED_BACKOFF,
    }
  }

  /// Takes what the I/O side observed and says what it must do next.
  pub fn step(&mut self, input: Input) -> Action {
    match (self.phase, input) {
      (Phase::Done, _) | (_, Input::Stop) => self.end(Action::Exit),
      // Final: trying again would only be refused again (and never stop).
      (_, Input::Broken(failure) | Input::Refused(failure)) => self.end(Action::Fail(failure)),
      (Phase::Idle, Input::Start) => self.enter(Phase::Loading, Action::Load),
      (Phase::Loading, Input::Loaded) => self.elect(None),
      (Phase::TakingOver | Phase::Locking { .. }, Input::LockAcquired) => {
        self.enter(Phase::CheckingPrevious, Action::CheckPrevious)
      }
      (Phase::TakingOver, Input::LockBusy) | (Phase::BackingOff, Input::Waited) => {
        self.enter(Phase::ReadingEpoch, Action::ReadEpoch)
      }
      (Phase::ReadingEpoch, Input::Epoch(epoch)) if !self.config.client_only => {
        self.enter(Phase::Locking { epoch }, Action::TryLock)
      }
      (Phase::ReadingEpoch, Input::Epoch(epoch)) | (Phase::Locking { epoch }, Input::LockBusy) => {
        self.connect(epoch)
      }
      (Phase::Connecting { epoch }, Input::Connected) => {
        self.enter(Phase::Joining { epoch }, Action::Join)
      }
      (Phase::Connecting { .. }, Input::NoHost) => self.back_off(),
      (Phase::CheckingPrevious, Input::PreviousHeld(true)) => {
        // Whatever a stopped holder checked before our lock file existed runs out meanwhile.
        let lease = lease::lease_length(self.config.host_timeout);
        self.enter(Phase::WaitingOutLease, Action::Wait(lease))
      }
      (Phase::CheckingPrevious, Input::PreviousHeld(false))
      | (Phase::WaitingOutLease, Input::Waited) => self.enter(Phase::Renewing, Action::RenewLease),
      (Phase::Renewing, Input::LeaseRenewed(true)) if self.holds_file => {
        // The file seeds only a network this instance starts; after a failover it is behind.
        self.holds_file = false;
        self.enter(Phase::Seeding, Action::Seed)
      }
      (Phase::Renewing, Input::LeaseRenewed(true)) | (Phase::Seeding, Input::Seeded) => {
        self.enter(Phase::Hosting, Action::ServeAsHost)
      }
      // A later epoch exists already, or replaced this host while it was stopped: elect again
      // within it, as a client of its host.
      (Phase::Renewing, Input::LeaseRenewed(false)) | (Phase::Hosting, Input::Fenced) => {
        self.elect(None)
      }
      (Phase::Joining { epoch }, Input::Welcomed { now }) => {
        // The host's object is newer than any file.
        self.holds_file = false;
        self.follow(epoch, None, now, now)
      }
      (Phase::Joining { .. }, Input::NotWelcomed)
      | (Phase::Following { .. }, Input::HostBroken) => {
        let pause = self.failed_backoff;
        self.failed_backoff = (self.failed_backoff * 2).min(MAX_FAILED_BACKOFF);
        self.enter(Phase::Pausing, Action::Wait(pause))
      }
      (Phase::Following { epoch, confirming }, Input::HostChecked { now, heard }) => {
        self.follow(epoch, confirming, now, heard)
      }
      (Phase::Following { .. }, Input::HostLost) => {
        self.failed_backoff = FAILED_BACKOFF;
        self.elect(None)
      }
      (Phase::Leaving { epoch }, Input::Left) => {
        self.failed_backoff = FAILED_BACKOFF;
        self.elect(Some(epoch))
      }
      (Phase::Pausing, Input::Waited) => self.elect(None),
      (phase, input) => self.end(Action::Fail(Failure {
        code: Code::Internal,
        message: format!("memsync: the role machine got {input:?} while {phase:?}"),
      })),
    }
  }

  fn enter(&mut self, phase: Phase, action: Action) -> Action {
    self.phase = phase;
    action
  }

  fn end(&mut self, action: Action) -> Action {
    self.enter(Phase::Done, action)
  }

  /// Starts an election, with a fresh backoff. With `silent`, tries first to replace that epoch's
  /// host: only a process that holds the object does (a newcomer's default object would replace
  /// the network's), and never a client-only one.
  fn elect(&mut self, silent: Option<u64>) -> Action {
    self.backoff = FIRST_BACKOFF;
    match silent.filter(|_| !self.config.client_only) {
      Some(epoch) => self.enter(Phase::TakingOver, Action::TakeOver { epoch }),
      None => self.enter(Phase::ReadingEpoch, Action::ReadEpoch),
    }
  }

  /// Connects to the host of `epoch` (or of a later one), unless this instance never joins.
  fn connect(&mut self, epoch: u64) -> Action {
    if self.config.server_only {
      return self.back_off();
    }
    self.enter(Phase::Connecting { epoch }, Action::Connect)
  }

  /// Pauses the election while no host answers: it may be between taking the lock and listening.
  fn back_off(&mut self) -> Action {
    let pause = self.backoff;
    self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
    self.enter(Phase::BackingOff, Action::Wait(pause))
  }

  /// Keeps following the host unless it has been silent for `hostTimeout`, and still was a
  /// heartbeat later.
  fn follow(
    &mut self,
    epoch: u64,
    confirming: Option<Duration>,
    now: Duration,
    heard: Duration,
  ) -> Action {
    let timeout = self.config.host_timeout;
    if confirming == Some(heard) {
      return self.enter(Phase::Leaving { epoch }, Action::LeaveHost);
    }
    let (confirming, check_in) = match Silence::new(timeout, heard).remaining(now) {
      Some(wait) => (None, wait),
      None => (Some(heard), lease::heartbeat_interval(timeout)),
    };
    self.enter(
      Phase::Following { epoch, confirming },
      Action::Follow { check_in },
    )
  }
}

#[cfg(test)]
mod tests {
  //! The role machine on a simulated machine: lock files, a socket, processes that run, stop
  //! and die, and a clock that moves only when told. No actual I/O is done and nothing sleeps
  //! (raft-rs's `harness/src/network.rs`).

  use std::collections::{BTreeMap, VecDeque};

  use super::*;

  const T: Duration = Duration::from_millis(1000);
  const fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
  }

  fn config() -> Config {
    Config {
      client_only: false,
      server_only: false,
      host_timeout: T,
    }
  }

  /// A machine's processes, as the role machines see them.
  struct World {
    now: Duration,
    /// Every epoch's lock file, and the process holding it (a dead one holds nothing).
    locks: BTreeMap<u64, Option<usize>>,
    /// The process whose socket is at the socket path (a stopped one still accepts).
    listener: Option<usize>,
    nodes: Vec<Node>,
  }

  struct Node {
    role: Role,
    status: Status,
    /// Inputs observed, not yet fed to the machine (a stopped process reads them on resuming).
    inputs: VecDeque<Input>,
    /// When the current action ends by itself, and with what.
    timer: Option<(Duration, Timer)>,
    doing: Doing,
    /// Every action taken, for the assertions.
    actions: Vec<Action>,
  }

  #[derive(Debug, Clone, Copy, PartialEq, Eq)]
  enum Status {
    Running,
    Stopped { since: Duration },
    Dead,
  }

  #[derive(Debug, Clone, Copy, PartialEq, Eq)]
  enum Timer {
    Waited,
    HostCheck,
    NoWelcome,
  }

  #[derive(Debug, Clone, Copy, PartialEq, Eq)]
  enum Doing {
    Nothing,
    Locked { epoch: u64 },
    Hosting { epoch: u64 },
    Connected { host: usize },
    Joining { host: usize },
    Following { host: usize, heard: Duration },
    Ended,
  }

  impl World {
    fn new() -> World {
      World {
        now: Duration::ZERO,
        locks: BTreeMap::new(),
        listener: None,
        nodes: Vec::new(),
      }
    }

    /// Starts a process; returns its index.
    fn start(&mut self, config: Config) -> usize {
      self.nodes.push(Node {
        role: Role::new(config),
        status: Status::Running,
        inputs: VecDeque::from([Input::Start]),
        timer: None,
        doing: Doing::Nothing,
        actions: Vec::new(),
      });
      self.nodes.len() - 1
    }

    fn current_epoch(&self) -> u64 {
      self.locks.keys().next_back().copied().unwrap_or(0)
    }

    fn holder(&self, epoch: u64) -> Option<usize> {
      self.locks.get(&epoch).copied().flatten()
    }

    fn lock(&mut self, node: usize, epoch: u64) -> Input {
      if self.holder(epoch).is_some() {
        return Input::LockBusy;
      }
      self.locks.insert(epoch, Some(node));
      self.nodes[node].doing = Doing::Locked { epoch };
      Input::LockAcquired
    }

    fn release_locks(&mut self, node: usize) {
      for holder in self.locks.values_mut() {
        if *holder == Some(node) {
          *holder = None;
        }
      }
    }

    /// The host's term ends (handed over, fenced or dead): its socket goes and its clients
    /// lose it.
    fn end_term(&mut self, host: usize) {
      self.release_locks(host);
      if self.listener == Some(host) {
        self.listener = None;
      }
      for node in 0..self.nodes.len() {
        match self.nodes[node].doing {
          Doing::Following { host: followed, .. } if followed == host => {
            self.observe(node, Input::HostLost)
          }
          Doing::Joining { host: joining } if joining == host => {
            self.observe(node, Input::NotWelcomed)
          }
          _ => {}
        }
      }
    }

    fn observe(&mut self, node: usize, input: Input) {
      let node = &mut self.nodes[node];
      node.timer = None;
      node.inputs.push_back(input);
    }

    /// Feeds the machine and performs what it asks, like `peer::run` does.
    fn feed(&mut self, node: usize, input: Input) {
      let action = self.nodes[node].role.step(input);
      self.nodes[node].actions.push(action.clone());
      let at = self.now;
      let timer = |after: Duration, timer: Timer| Some((at + after, timer));
      let answer = match action {
        Action::Load => Some(Input::Loaded),
        Action::ReadEpoch => Some(Input::Epoch(self.current_epoch())),
        Action::TryLock => Some(self.lock(node, self.current_epoch())),
        Action::TakeOver { epoch } if self.current_epoch() != epoch => Some(Input::LockBusy),
        Action::TakeOver { epoch } => {
          let taken = self.lock(node, epoch + 1);
          if taken == Input::LockAcquired {
            // The silent host's socket file goes at once.
            self.listener = None;
          }
          Some(taken)
        }
        Action::CheckPrevious => {
          let Doing::Locked { epoch } = self.nodes[node].doing else {
            panic!("checks the previous epoch without a lock")
          };
          let previous = epoch
            .checked_sub(1)
            .and_then(|previous| self.holder(previous));
          Some(Input::PreviousHeld(previous.is_some()))
        }
        Action::RenewLease => {
          let Doing::Locked { epoch } = self.nodes[node].doing else {
            panic!("takes a lease without a lock")
          };
          let later = self.locks.contains_key(&(epoch + 1));
          if later {
            self.release_locks(node);
          }
          Some(Input::LeaseRenewed(!later))
        }
        Action::Seed => Some(Input::Seeded),
        Action::ServeAsHost => {
          let Doing::Locked { epoch } = self.nodes[node].doing else {
            panic!("serves without a lock")
          };
          self.listener = Some(node);
          self.nodes[node].doing = Doing::Hosting { epoch };
          None
        }
        Action::Connect => match self.listener {
          Some(host) => {
            self.nodes[node].doing = Doing::Connected { host };
            Some(Input::Connected)
          }
          None => Some(Input::NoHost),
        },
        Action::Join => {
          let Doing::Connected { host } = self.nodes[node].doing else {
            panic!("joins without a connection")
          };
          match self.nodes[host].status {
            Status::Running => {
              self.nodes[node].doing = Doing::Following { host, heard: at };
              Some(Input::Welcomed { now: at })
            }
            // The kernel accepted; the welcome never comes.
            Status::Stopped { .. } => {
              self.nodes[node].doing = Doing::Joining { host };
              self.nodes[node].timer = timer(T, Timer::NoWelcome);
              None
            }
            Status::Dead => Some(Input::NotWelcomed),
          }
        }
        Action::Follow { check_in } => {
          self.nodes[node].timer = timer(check_in, Timer::HostCheck);
          None
        }
        Action::LeaveHost => {
          self.nodes[node].doing = Doing::Nothing;
          Some(Input::Left)
        }
        Action::Wait(pause) => {
          self.nodes[node].timer = timer(pause, Timer::Waited);
          None
        }
        Action::Fail(_) | Action::Exit => {
          self.nodes[node].doing = Doing::Ended;
          None
        }
      };
      if let Some(answer) = answer {
        self.nodes[node].inputs.push_back(answer);
      }
    }

    /// What a running host's client heard last: a heartbeat just now, or the last one before
    /// its host stopped.
    fn heard(&self, host: usize, since: Duration) -> Duration {
      match self.nodes[host].status {
        Status::Running => self.now,
        Status::Stopped { since: stopped } => stopped.max(since),
        Status::Dead => since,
      }
    }

    fn fire(&mut self, node: usize, timer: Timer) {
      let input = match timer {
        Timer::Waited => Input::Waited,
        Timer::NoWelcome => Input::NotWelcomed,
        Timer::HostCheck => {
          let Doing::Following { host, heard } = self.nodes[node].doing else {
            panic!("checks a host it does not follow")
          };
          let heard = self.heard(host, heard);
          self.nodes[node].doing = Doing::Following { host, heard };
          Input::HostChecked {
            now: self.now,
            heard,
          }
        }
      };
      self.feed(node, input);
    }

    /// Runs every process until the clock reaches `until`.
    fn run_until(&mut self, until: Duration) {
      loop {
        let ready = (0..self.nodes.len()).find(|&node| {
          self.nodes[node].status == Status::Running && !self.nodes[node].inputs.is_empty()
        });
        if let Some(node) = ready {
          let input = self.nodes[node].inputs.pop_front().unwrap();
          self.feed(node, input);
          continue;
        }
        let due = (0..self.nodes.len())
          .filter(|&node| self.nodes[node].status == Status::Running)
          .filter_map(|node| self.nodes[node].timer.map(|(at, timer)| (at, node, timer)))
          .filter(|&(at, ..)| at <= until)
          .min_by_key(|&(at, node, _)| (at, node));
        let Some((at, node, timer)) = due else {
          self.now = until;
          return;
        };
        self.now = self.now.max(at);
        self.nodes[node].timer = None;
        self.fire(node, timer);
      }
    }

    fn run_for(&mut self, time: Duration) {
      self.run_until(self.now + time);
    }

    /// `SIGKILL`: the kernel frees its locks and resets its connections.
    fn kill(&mut self, node: usize) {
      self.nodes[node].status = Status::Dead;
      self.nodes[node].timer = None;
      self.end_term(node);
      self.nodes[node].doing = Doing::Ended;
    }

    /// `stop()`: a host hands over first.
    fn stop(&mut self, node: usize) {
      if let Doing::Hosting { .. } = self.nodes[node].doing {
        self.end_term(node);
      }
      self.nodes[node].doing = Doing::Nothing;
      self.observe(node, Input::Stop);
    }

    /// `SIGSTOP`.
    fn pause(&mut self, node: usize) {
      self.nodes[node].status = Status::Stopped { since: self.now };
    }

    /// `SIGCONT`: a host checks its lease first; one that finds the next epoch steps down.
    fn resume(&mut self, node: usize) {
      let Status::Stopped { since } = self.nodes[node].status else {
        panic!("resumes a process that is not stopped")
      };
      self.nodes[node].status = Status::Running;
      let Doing::Hosting { epoch } = self.nodes[node].doing else {
        return;
      };
      let stale = self.now - since >= crate::transport::local::lease::stale_after(T);
      if self.locks.contains_key(&(epoch + 1)) || stale {
        self.end_term(node);
        self.nodes[node].doing = Doing::Nothing;
        self.observe(node, Input::Fenced);
        return;
      }
      for client in 0..self.nodes.len() {
        if self.nodes[client].doing == (Doing::Joining { host: node }) {
          self.nodes[client].doing = Doing::Following {
            host: node,
            heard: self.now,
          };
          self.observe(client, Input::Welcomed { now: self.now });
        }
      }
    }

    fn doing(&self, node: usize) -> Doing {
      self.nodes[node].doing
    }

    /// The processes serving as host, with their epochs.
    fn hosts(&self) -> Vec<(usize, u64)> {
      (0..self.nodes.len())
        .filter_map(|node| match self.nodes[node].doing {
          Doing::Hosting { epoch } => Some((node, epoch)),
          _ => None,
        })
        .collect()
    }

    /// The one host and its epoch; every other process that runs follows it.
    fn one_host(&self) -> (usize, u64) {
      let [(host, epoch)] = self.hosts()[..] else {
        panic!("hosts: {:?}", self.hosts())
      };
      for node in 0..self.nodes.len() {
        let runs = self.nodes[node].status == Status::Running && self.doing(node) != Doing::Ended;
        assert!(
          node == host || !runs || self.follows(node, host),
          "{node} does not follow {host}"
        );
      }
      (host, epoch)
    }

    fn follows(&self, node: usize, host: usize) -> bool {
      matches!(self.doing(node), Doing::Following { host: followed, .. } if followed == host)
    }

    fn took(&self, node: usize, wanted: impl Fn(&Action) -> bool) -> bool {
      self.nodes[node].actions.iter().any(wanted)
    }
  }

  /// Three processes started one after the other, the first one host.
  fn three() -> World {
    let mut world = World::new();
    for _ in 0..3 {
      world.start(config());
      world.run_for(ms(1));
    }
    world
  }

  #[test]
  fn the_first_process_becomes_host_and_the_others_join_it() {
    let world = three();
    assert_eq!(world.hosts(), [(0, 0)]);
    assert!(world.follows(1, 0) && world.follows(2, 0));
    assert!(world.took(0, |action| *action == Action::Seed));
    assert!(!world.took(1, |action| *action == Action::Seed));
  }

  #[test]
  fn processes_started_together_elect_one_host() {
    let mut world = World::new();
    for _ in 0..3 {
      world.start(config());
    }
    world.run_for(ms(10));
    assert_eq!(world.one_host().1, 0);
  }

  #[test]
  fn when_the_host_dies_one_survivor_becomes_host_and_the_other_joins_it() {
    let mut world = three();
    world.kill(0);
    world.run_for(ms(10));
    // The kernel freed the lock: the same epoch, no lease to wait out.
    let (host, epoch) = world.one_host();
    assert_eq!(epoch, 0);
    // A welcomed process's file is behind the network's: it does not seed.
    assert!(!world.took(host, |action| *action == Action::Seed));
    assert!(!world.took(host, |action| matches!(action, Action::TakeOver { .. })));
  }

  #[test]
  fn when_the_host_stops_cleanly_one_survivor_becomes_host() {
    let mut world = three();
    world.stop(0);
    world.run_for(ms(10));
    assert_eq!(world.nodes[0].actions.last(), Some(&Action::Exit));
    let (host, epoch) = world.one_host();
    assert!(host != 0 && epoch == 0);
  }

  #[test]
  fn a_stopped_host_is_replaced_under_the_next_epoch_only_after_host_timeout() {
    let mut world = three();
    world.run_for(ms(500));
    world.pause(0);
    // Silent for the timeout, then a heartbeat more to confirm: still its clients.
    world.run_for(T);
    assert!(world.follows(1, 0) && world.follows(2, 0));
    // Then a new host takes the next epoch and waits out the stopped host's lease.
    let beat = crate::transport::local::lease::heartbeat_interval(T);
    world.run_for(beat + crate::transport::local::lease::lease_length(T) + ms(50));
    let hosts = world.hosts();
    assert_eq!(
      hosts.len(),
      2,
      "the stopped one and its successor: {hosts:?}"
    );
    let (successor, epoch) = hosts[1];
    assert_eq!(epoch, 1);
    let lease = crate::transport::local::lease::lease_length(T);
    assert!(world.took(successor, |action| *action == Action::Wait(lease)));
    let other = 3 - successor;
    assert!(world.follows(other, successor));
    assert!(world.took(other, |action| matches!(
      action,
      Action::TakeOver { epoch: 0 }
    )));
  }

  #[test]
  fn a_replaced_host_steps_down_when_it_resumes_and_joins_its_successor() {
    let mut world = three();
    world.pause(0);
    world.run_for(T * 2);
    let [_, (successor, 1)] = world.hosts()[..] else {
      panic!("hosts: {:?}", world.hosts())
    };
    world.resume(0);
    world.run_for(ms(10));
    assert_eq!(world.one_host(), (successor, 1));
    assert!(world.follows(0, successor));
  }

  #[test]
  fn a_host_that_resumes_in_time_keeps_its_clients() {
    let mut world = three();
    world.pause(0);
    world.run_for(ms(600));
    world.resume(0);
    world.run_for(T * 3);
    assert_eq!(world.hosts(), [(0, 0)]);
    assert!(world.follows(1, 0) && world.follows(2, 0));
  }

  #[test]
  fn a_newcomer_never_replaces_a_stopped_host_it_was_not_welcomed_by() {
    let mut world = World::new();
    world.start(config());
    world.run_for(ms(1));
    world.pause(0);
    let newcomer = world.start(config());
    world.run_for(T * 3);
    assert_eq!(world.hosts(), [(0, 0)]);
    assert!(!world.took(newcomer, |action| matches!(action, Action::TakeOver { .. })));
    // It keeps asking, each time after a longer pause.
    assert!(world.took(newcomer, |action| *action == Action::Wait(ms(2))));
  }

  #[test]
  fn a_client_only_process_never_hosts() {
    let mut world = World::new();
    let client = world.start(Config {
      client_only: true,
      ..config()
    });
    world.run_for(ms(100));
    assert!(world.hosts().is_empty());
    let host = world.start(config());
    world.run_for(ms(100));
    assert!(world.follows(client, host));
    world.pause(host);
    world.run_for(T * 3);
    world.kill(host);
    world.run_for(T);
    assert!(world.hosts().is_empty());
    assert!(!world.took(client, |action| {
      matches!(action, Action::TryLock | Action::TakeOver { .. })
    }));
  }

  #[test]
  fn a_server_only_process_never_joins_and_hosts_once_the_host_is_gone() {
    let mut world = World::new();
    let host = world.start(config());
    world.run_for(ms(1));
    let server = world.start(Config {
      server_only: true,
      ..config()
    });
    world.run_for(ms(100));
    assert_eq!(world.hosts(), [(host, 0)]);
    assert!(!world.took(server, |action| *action == Action::Connect));
    world.kill(host);
    world.run_for(ms(100));
    assert_eq!(world.hosts(), [(server, 0)]);
  }

  /// The first pauses of a machine that never becomes host, whose every connection attempt is
  /// answered with `connect`, and which is never welcomed.
  fn pauses(connect: Input) -> Vec<Duration> {
    let mut role = Role::new(config());
    role.step(Input::Start);
    let mut action = role.step(Input::Loaded);
    let mut pauses = Vec::new();
    while pauses.len() < 12 {
      let answer = match action {
        Action::ReadEpoch => Input::Epoch(0),
        Action::TryLock => Input::LockBusy,
        Action::Connect => connect.clone(),
        Action::Join => Input::NotWelcomed,
        Action::Wait(pause) => {
          pauses.push(pause);
          Input::Waited
        }
        other => panic!("unexpected {other:?}"),
      };
      action = role.step(answer);
    }
    pauses
  }

  #[test]
  fn the_election_backs_off_from_half_a_millisecond_to_20_ms() {
    let micros = [500, 1000, 2000, 4000, 8000, 16000, 20000, 20000];
    let pauses = pauses(Input::NoHost);
    assert_eq!(pauses[..8], micros.map(Duration::from_micros));
  }

  #[test]
  fn a_host_that_does_not_welcome_is_retried_after_1_ms_doubling_to_1_s() {
    let millis = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1000, 1000];
    assert_eq!(pauses(Input::Connected), millis.map(ms));
  }

  #[test]
  fn losing_a_host_elects_again_at_once_and_resets_the_failed_backoff() {
    let mut role = Role::new(config());
    let join = |role: &mut Role, welcomed: bool| {
      for input in [Input::Epoch(0), Input::LockBusy, Input::Connected] {
        role.step(input);
      }
      if welcomed {
        role.step(Input::Welcomed { now: ms(0) });
        role.step(Input::HostLost)
      } else {
        role.step(Input::NotWelcomed)
      }
    };
    role.step(Input::Start);
    role.step(Input::Loaded);
    assert_eq!(join(&mut role, false), Action::Wait(ms(1)));
    role.step(Input::Waited);
    assert_eq!(join(&mut role, false), Action::Wait(ms(2)));
    role.step(Input::Waited);
    assert_eq!(join(&mut role, true), Action::ReadEpoch);
    assert_eq!(join(&mut role, false), Action::Wait(ms(1)));
  }

  /// A machine that was fed `inputs`.
  fn fed(inputs: impl IntoIterator<Item = Input>) -> Role {
    let mut role = Role::new(config());
    for input in inputs {
      role.step(input);
    }
    role
  }

  /// What a process that is not host sees up to its connection to the host of `epoch`.
  fn connected(epoch: u64) -> [Input; 5] {
    [
      Input::Start,
      Input::Loaded,
      Input::Epoch(epoch),
      Input::LockBusy,
      Input::Connected,
    ]
  }

  #[test]
  fn a_broken_host_is_left_after_the_failed_backoff() {
    let mut role = fed(connected(0));
    role.step(Input::Welcomed { now: ms(0) });
    assert_eq!(role.step(Input::HostBroken), Action::Wait(ms(1)));
    assert_eq!(role.step(Input::Waited), Action::ReadEpoch);
  }

  #[test]
  fn a_client_that_was_stopped_itself_reads_what_came_meanwhile_before_replacing_its_host() {
    let mut role = fed(connected(3));
    assert_eq!(
      role.step(Input::Welcomed { now: ms(100) }),
      Action::Follow { check_in: T }
    );
    let beat = crate::transport::local::lease::heartbeat_interval(T);
    let mut check = |now, heard| {
      role.step(Input::HostChecked {
        now: ms(now),
        heard: ms(heard),
      })
    };
    // Woken late: nothing heard for more than the timeout, so it confirms a beat later.
    assert_eq!(check(5000, 100), Action::Follow { check_in: beat });
    // What the host sent while this client was stopped has been read now.
    assert_eq!(check(5100, 5050), Action::Follow { check_in: ms(950) });
    assert_eq!(check(6050, 5050), Action::Follow { check_in: beat });
    assert_eq!(check(6150, 5050), Action::LeaveHost);
    assert_eq!(role.step(Input::Left), Action::TakeOver { epoch: 3 });
    // Another process replaced it first: an ordinary election.
    assert_eq!(role.step(Input::LockBusy), Action::ReadEpoch);
  }

  #[test]
  fn a_lease_refused_by_a_later_epoch_elects_again_and_keeps_the_file() {
    let mut role = fed([
      Input::Start,
      Input::Loaded,
      Input::Epoch(0),
      Input::LockAcquired,
    ]);
    assert_eq!(role.step(Input::PreviousHeld(false)), Action::RenewLease);
    assert_eq!(role.step(Input::LeaseRenewed(false)), Action::ReadEpoch);
    for input in [
      Input::Epoch(1),
      Input::LockAcquired,
      Input::PreviousHeld(false),
    ] {
      role.step(input);
    }
    assert_eq!(role.step(Input::LeaseRenewed(true)), Action::Seed);
    assert_eq!(role.step(Input::Seeded), Action::ServeAsHost);
    // Fenced later, it becomes host again without seeding: its file is behind.
    for input in [
      Input::Fenced,
      Input::Epoch(2),
      Input::LockAcquired,
      Input::PreviousHeld(false),
    ] {
      role.step(input);
    }
    assert_eq!(role.step(Input::LeaseRenewed(true)), Action::ServeAsHost);
  }

  #[test]
  fn failures_are_final() {
    let failure = Failure {
      code: Code::MaxWriters,
      message: "full".to_owned(),
    };
    for last in [
      Input::Refused(failure.clone()),
      Input::Broken(failure.clone()),
    ] {
      let mut role = fed(connected(0));
      assert_eq!(role.step(last), Action::Fail(failure.clone()));
      assert_eq!(role.step(Input::Waited), Action::Exit);
    }
  }

  #[test]
  fn an_input_that_answers_no_action_is_an_internal_failure() {
    let mut role = Role::new(config());
    role.step(Input::Start);
    let Action::Fail(failure) = role.step(Input::Fenced) else {
      panic!("not a failure")
    };
    assert_eq!(failure.code, Code::Internal);
  }

  #[test]
  fn stop_ends_every_phase() {
    use Input::*;
    let beat = crate::transport::local::lease::heartbeat_interval(T);
    let silent = |now| HostChecked { now, heard: ms(0) };
    // Every prefix of each path ends in another phase.
    let paths: [&[Input]; 4] = [
      &[
        Start,
        Loaded,
        Epoch(0),
        LockAcquired,
        PreviousHeld(true),
        Waited,
        LeaseRenewed(true),
        Seeded,
      ],
      &[
        Start,
        Loaded,
        Epoch(0),
        LockBusy,
        Connected,
        Welcomed { now: ms(0) },
        silent(T),
        silent(T + beat),
        Left,
      ],
      &[Start, Loaded, Epoch(0), LockBusy, NoHost],
      &[Start, Loaded, Epoch(0), LockBusy, Connected, NotWelcomed],
    ];
    for path in paths {
      for end in 0..=path.len() {
        let inputs = &path[..end];
        let mut role = Role::new(config());
        for input in inputs.iter().cloned() {
          let action = role.step(input);
          assert!(
            !matches!(action, Action::Fail(_) | Action::Exit),
            "{inputs:?}"
          );
        }
        assert_eq!(role.step(Stop), Action::Exit, "{inputs:?}");
        assert_eq!(role.step(Waited), Action::Exit, "{inputs:?}");
      }
    }
  }
}
