//! A software Ethernet switch that joins NICs of several VMs into one segment: a *wire*.
//!
//! Each VM NIC on a wire is a QEMU `-netdev dgram` that sends its frames as UDP datagrams
//! from its own loopback port to one port of the switch, and receives from it. The switch
//! owns one UDP socket per attached NIC, so it always knows which port a frame came in on.
//! It learns source MAC addresses and sends a unicast frame only to the port behind its
//! destination; broadcast, multicast and unknown destinations go to every other port.
//! A port's I/O is the [`PortIo`] trait, so a tap device in a namespace (or an in-memory
//! fake in a test) can join a wire by implementing it.
//!
//! # Link policies
//!
//! Each port has a [`LinkPolicy`]: the cable between the switch and the NIC. The *path*
//! between two ports may have one too ([`Wire::set_pair_policy`]): the route between two
//! sites, the same both ways. A frame from port A to port B crosses A's cable, then the
//! A–B path (if it has a policy), then B's cable, and meets every one of those policies:
//!
//! - **cut** (`up: false`): frames from and to the port (on the path: between its two
//!   ports) are dropped;
//! - **drop**: each frame is lost with the given probability, once on A's cable (for all
//!   the ports a flooded frame goes to), once on the path and once more on B's cable (per
//!   port);
//! - **delay** and **jitter**: a frame leaves B `delay + U(0, jitter)` after it arrived,
//!   summed over the policies it crosses. Jitter never reorders: a frame never leaves
//!   before one queued ahead of it from the same port to the same port. Frames from
//!   different ports do not wait for each other: each leaves when it is due;
//! - **reorder**: with this probability (combined over all three) a frame is held back and
//!   leaves right after the next frame for the same port; a frame held back longer than
//!   [`REORDER_HOLD`] with nothing behind it leaves alone (and does not count as
//!   reordered). A frame next to a held frame is never held itself.
//!
//! A broadcast (or flooded) frame is one copy per port it reaches, and each copy crosses
//! its own path: A's broadcast reaches B with the A–B path's delay and C with A–C's.
//!
//! Random decisions come from a small PRNG per port and per path, seeded from
//! [`LinkPolicy::seed`] and the port (or pair of ports) whenever the policy is set: a run
//! is repeatable for a given sequence of frames. Each port has its own egress scheduler
//! thread, so a slow (delayed) port never holds up the others; a frame that meets no delay
//! and no reordering, for a port with nothing queued, is sent at once by the thread that
//! received it. Without path policies the switch never looks paths up (one atomic load per
//! frame).
//!
//! # NAT
//!
//! A port may sit behind a NAT ([`Wire::set_nat`]): the switch then filters what reaches
//! it like a stateful NAT in front of a home network, without rewriting addresses (see
//! [`nat`] for exactly what passes).
//!
//! Every decision is counted per port in [`PortStats`]; a frame dropped on a path counts
//! at the port it was going to.

pub(crate) mod nat;

use crate::error::{Error, Result};
use crate::host::free_udp_port;
use nat::NatFilter;
use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The largest frame a port reads (virtio-net without offloads stays far below).
const MAX_FRAME: usize = 65_536;
/// How often a port's thread looks up from a blocking read to see whether it was closed.
const POLL: Duration = Duration::from_millis(100);
/// How long a frame held back for reordering waits for a frame to overtake it.
pub const REORDER_HOLD: Duration = Duration::from_millis(50);

/// The I/O of one switch port: whatever moves frames between the switch and a NIC.
pub trait PortIo: Send + Sync + 'static {
    /// Waits up to about [`POLL`] for one frame; `Ok(None)` when none came.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Sends one frame to the NIC. Best effort, like a real wire.
    fn send(&self, frame: &[u8]) -> io::Result<()>;
}

/// A switch port backed by a UDP socket, talking to one QEMU `-netdev dgram`.
struct UdpPortIo {
    socket: UdpSocket,
}

impl PortIo for UdpPortIo {
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.socket.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        // An earlier send found the VM's port not bound yet (ICMP unreachable).
                        | io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        match self.socket.send(frame) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// What the switch does to frames crossing one port, in both directions: the cable
/// between the switch and one NIC (see the module doc for how two cables combine).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkPolicy {
    /// `false` cuts the link: frames from and to this port are dropped (and counted).
    pub up: bool,
    /// Fixed one-way delay.
    pub delay: Duration,
    /// Extra random delay, uniform in `0..=jitter`, per frame.
    pub jitter: Duration,
    /// Probability (0.0..=1.0) that a frame is lost on this cable.
    pub drop: f64,
    /// Probability (0.0..=1.0) that a frame is held back behind the next one.
    pub reorder: f64,
    /// Seeds the port's PRNG (mixed with the port number) when the policy is set.
    pub seed: u64,
}

impl Default for LinkPolicy {
    fn default() -> Self {
        LinkPolicy {
            up: true,
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            drop: 0.0,
            reorder: 0.0,
            seed: 0,
        }
    }
}

impl LinkPolicy {
    /// A cut link.
    pub fn cut() -> LinkPolicy {
        LinkPolicy {
            up: false,
            ..LinkPolicy::default()
        }
    }
}

/// Frame counters of one port, as seen from the switch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received from the NIC and accepted (not cut, not lost on this cable).
    pub rx: u64,
    /// Frames sent to the NIC.
    pub tx: u64,
    /// Frames dropped for any reason: the sum of the four below.
    pub dropped: u64,
    /// Dropped because the link was cut (either direction), or the path from their sender
    /// to this port.
    pub dropped_cut: u64,
    /// Lost on this cable by the policy's drop probability (either direction), or on the
    /// path from their sender to this port.
    pub dropped_loss: u64,
    /// Frames to this port that its NAT filter turned away (unsolicited inbound).
    pub dropped_nat: u64,
    /// Dropped because they were not frames (runts), the port was closing, or the send
    /// to the NIC failed.
    pub dropped_error: u64,
    /// Frames to the NIC that waited in the scheduler for a delay.
    pub delayed: u64,
    /// Frames to the NIC that were held back and overtaken by the next one.
    pub reordered: u64,
}

/// Why a frame was dropped.
#[derive(Clone, Copy)]
enum DropReason {
    Cut,
    Loss,
    Nat,
    Error,
}

/// SplitMix64: small, fast and good enough for loss and jitter decisions.
struct Rng(u64);

impl Rng {
    fn seeded(seed: u64, port: usize) -> Rng {
        Rng(seed ^ (port as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p` (never for p <= 0, always for p >= 1).
    fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && (p >= 1.0 || self.unit() < p)
    }

    /// Uniform in `0..=max`.
    fn up_to(&mut self, max: Duration) -> Duration {
        if max.is_zero() {
            return Duration::ZERO;
        }
        let nanos = max.as_nanos().min(u64::MAX as u128) as u64;
        Duration::from_nanos(self.next_u64() % (nanos + 1))
    }
}

/// A port's policy and the PRNG its decisions draw from.
struct Shaping {
    policy: LinkPolicy,
    rng: Rng,
}

/// What a frame's crossing of one cable (or path) decided.
struct Crossing {
    delay: Duration,
    reorder: f64,
}

impl Crossing {
    /// A path without a policy: no delay, no reordering.
    const CLEAR: Crossing = Crossing {
        delay: Duration::ZERO,
        reorder: 0.0,
    };
}

/// The policy of the path between two ports, shared by the frames in flight on it.
type PathShaping = Arc<Mutex<Shaping>>;

fn lock_shaping(s: &Mutex<Shaping>) -> std::sync::MutexGuard<'_, Shaping> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// The key of the path between `a` and `b` (the same both ways).
fn path_key(a: usize, b: usize) -> (usize, usize) {
    (a.min(b), a.max(b))
}

/// The PRNG stream of a path: apart from every port's.
fn path_stream((lo, hi): (usize, usize)) -> usize {
    (1 << 40) | (lo << 20) | hi
}

impl Shaping {
    /// Decides one crossing: `Err` if the frame is dropped on this cable.
    fn cross(&mut self) -> std::result::Result<Crossing, DropReason> {
        let p = &self.policy;
        if !p.up {
            return Err(DropReason::Cut);
        }
        if self.rng.chance(p.drop) {
            return Err(DropReason::Loss);
        }
        let jitter = self.rng.up_to(p.jitter);
        Ok(Crossing {
            delay: p.delay + jitter,
            reorder: p.reorder,
        })
    }
}

/// One frame waiting in a port's scheduler.
struct Pending {
    due: Instant,
    frame: Vec<u8>,
    /// Held back: leaves right after the frame behind it.
    held: bool,
    delayed: bool,
    /// The path it is crossing, if that has a policy (a cut meanwhile drops it).
    path: Option<PathShaping>,
}

#[derive(Default)]
struct Queue {
    /// In due order; frames due at the same time in the order they came.
    frames: VecDeque<Pending>,
    /// By sending port: the latest due time queued from it so far. Nothing from that port
    /// is scheduled before it (no reordering by jitter).
    last_due: Vec<Option<Instant>>,
    /// By sending port: frames handed to this port's egress (see [`Wire::frames_between`]).
    from: Vec<u64>,
}

struct Port {
    io: Box<dyn PortIo>,
    shaping: Mutex<Shaping>,
    open: AtomicBool,
    /// Whether the port sits behind [`Port::nat`]'s filter.
    behind_nat: AtomicBool,
    nat: Mutex<NatFilter>,
    queue: Mutex<Queue>,
    wake: Condvar,
    rx: AtomicU64,
    tx: AtomicU64,
    dropped_cut: AtomicU64,
    dropped_loss: AtomicU64,
    dropped_nat: AtomicU64,
    dropped_error: AtomicU64,
    delayed: AtomicU64,
    reordered: AtomicU64,
}

impl Port {
    fn shaping(&self) -> std::sync::MutexGuard<'_, Shaping> {
        self.shaping.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn nat(&self) -> std::sync::MutexGuard<'_, NatFilter> {
        self.nat.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_drop(&self, why: DropReason) {
        match why {
            DropReason::Cut => &self.dropped_cut,
            DropReason::Loss => &self.dropped_loss,
            DropReason::Nat => &self.dropped_nat,
            DropReason::Error => &self.dropped_error,
        }
        .fetch_add(1, Ordering::Relaxed);
    }

    fn stats(&self) -> PortStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let (cut, loss, nat, error) = (
            get(&self.dropped_cut),
            get(&self.dropped_loss),
            get(&self.dropped_nat),
            get(&self.dropped_error),
        );
        PortStats {
            rx: get(&self.rx),
            tx: get(&self.tx),
            dropped: cut + loss + nat + error,
            dropped_cut: cut,
            dropped_loss: loss,
            dropped_nat: nat,
            dropped_error: error,
            delayed: get(&self.delayed),
            reordered: get(&self.reordered),
        }
    }

    /// Sends one frame to the NIC now, unless the link (or the frame's path) was cut or
    /// the port closed meanwhile.
    fn transmit(&self, frame: &[u8], delayed: bool, path: Option<&PathShaping>) {
        if !self.open.load(Ordering::Relaxed) {
            self.count_drop(DropReason::Error);
        } else if !self.shaping().policy.up || path.is_some_and(|p| !lock_shaping(p).policy.up) {
            self.count_drop(DropReason::Cut);
        } else if self.io.send(frame).is_err() {
            self.count_drop(DropReason::Error);
        } else {
            self.tx.fetch_add(1, Ordering::Relaxed);
            if delayed {
                self.delayed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The egress scheduler: sends queued frames when they are due, held frames right
    /// after the frame behind them. Runs until the port is closed.
    fn schedule(&self) {
        let mut q = self.queue();
        loop {
            if !self.open.load(Ordering::Relaxed) {
                let left = q.frames.len() as u64;
                self.dropped_error.fetch_add(left, Ordering::Relaxed);
                q.frames.clear();
                return;
            }
            let now = Instant::now();
            let Some(front) = q.frames.front() else {
                q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                continue;
            };
            // What leaves now, in order, or how long to wait.
            let (out, wait_until): (Vec<Pending>, Option<Instant>) = if !front.held {
                if now >= front.due {
                    (q.frames.pop_front().into_iter().collect(), None)
                } else {
                    (Vec::new(), Some(front.due))
                }
            } else if let Some(next) = q.frames.get(1) {
                if now >= next.due {
                    let held = q.frames.pop_front().expect("front exists");
                    let next = q.frames.pop_front().expect("second exists");
                    self.reordered.fetch_add(1, Ordering::Relaxed);
                    (vec![next, held], None)
                } else {
                    (Vec::new(), Some(next.due))
                }
            } else {
                let give_up = front.due + REORDER_HOLD;
                if now >= give_up {
                    (q.frames.pop_front().into_iter().collect(), None)
                } else {
                    (Vec::new(), Some(give_up))
                }
            };
            if out.is_empty() {
                let wait = wait_until.map_or(POLL, |t| t.saturating_duration_since(now));
                q = self
                    .wake
                    .wait_timeout(q, wait.min(POLL))
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            }
            // Send without the lock, so the receiving side can keep queueing.
            drop(q);
            for p in out {
                self.transmit(&p.frame, p.delayed, p.path.as_ref());
            }
            q = self.queue();
        }
    }

    /// Hands a frame from port `from` that crossed both cables and its path to this
    /// port's egress.
    fn enqueue(
        &self,
        from: usize,
        frame: &[u8],
        delay: Duration,
        hold: bool,
        path: Option<PathShaping>,
    ) {
        let mut q = self.queue();
        if q.from.len() <= from {
            q.from.resize(from + 1, 0);
        }
        q.from[from] += 1;
        if q.frames.is_empty() && delay.is_zero() && !hold {
            drop(q);
            self.transmit(frame, false, None);
            return;
        }
        let now = Instant::now();
        if q.last_due.len() <= from {
            q.last_due.resize(from + 1, None);
        }
        let due = (now + delay).max(q.last_due[from].unwrap_or(now));
        q.last_due[from] = Some(due);
        // In due order, after everything due at the same time (usually at the back).
        let at = q
            .frames
            .iter()
            .rposition(|p| p.due <= due)
            .map_or(0, |i| i + 1);
        // Never hold two frames in a row: the second is the one that overtakes.
        let beside_held =
            (at > 0 && q.frames[at - 1].held) || q.frames.get(at).is_some_and(|p| p.held);
        q.frames.insert(
            at,
            Pending {
                due,
                frame: frame.to_vec(),
                held: hold && !beside_held,
                delayed: !delay.is_zero(),
                path,
            },
        );
        drop(q);
        self.wake.notify_one();
    }
}

struct Switch {
    name: String,
    /// Indexed by port number; `None` once a port is detached (numbers are not reused).
    ports: RwLock<Vec<Option<Arc<Port>>>>,
    /// Learned MAC address → port number.
    fdb: Mutex<HashMap<[u8; 6], usize>>,
    /// Policies of paths between two ports, by [`path_key`].
    paths: RwLock<HashMap<(usize, usize), PathShaping>>,
    /// Whether `paths` has any entry: spares the lookup when it has none.
    has_paths: AtomicBool,
    pcap: Mutex<Option<Pcap>>,
}

type Mac = [u8; 6];

fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 == 1
}

impl Switch {
    fn port(&self, id: usize) -> Option<Arc<Port>> {
        let ports = self.ports.read().unwrap_or_else(|p| p.into_inner());
        ports.get(id).and_then(|p| p.clone())
    }

    /// One frame arrived on port `from`: apply its cable's policy, learn, and forward.
    fn ingress(&self, from: usize, frame: &[u8]) {
        let Some(port) = self.port(from) else { return };
        if frame.len() < 14 {
            port.count_drop(DropReason::Error);
            return;
        }
        let crossing = match port.shaping().cross() {
            Ok(c) => c,
            Err(why) => {
                port.count_drop(why);
                return;
            }
        };
        port.rx.fetch_add(1, Ordering::Relaxed);
        if port.behind_nat.load(Ordering::Relaxed) {
            port.nat().outbound(frame, Instant::now());
        }
        if let Some(pcap) = self.pcap.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            pcap.write(frame);
        }
        let mut dst: Mac = [0; 6];
        let mut src: Mac = [0; 6];
        dst.copy_from_slice(&frame[0..6]);
        src.copy_from_slice(&frame[6..12]);
        let known = {
            let mut fdb = self.fdb.lock().unwrap_or_else(|p| p.into_inner());
            if !is_group(&src) {
                fdb.insert(src, from);
            }
            if is_group(&dst) {
                None
            } else {
                fdb.get(&dst).copied()
            }
        };
        match known {
            Some(to) if to == from => {}
            Some(to) => self.egress(from, to, frame, &crossing),
            None => {
                let targets: Vec<usize> = {
                    let ports = self.ports.read().unwrap_or_else(|p| p.into_inner());
                    (0..ports.len())
                        .filter(|&i| i != from && ports[i].is_some())
                        .collect()
                };
                for to in targets {
                    self.egress(from, to, frame, &crossing);
                }
            }
        }
    }

    /// The policy of the path between two ports, if it has one.
    fn path(&self, a: usize, b: usize) -> Option<PathShaping> {
        if !self.has_paths.load(Ordering::Relaxed) {
            return None;
        }
        let paths = self.paths.read().unwrap_or_else(|p| p.into_inner());
        paths.get(&path_key(a, b)).cloned()
    }

    /// The one place a frame leaves the switch: through port `to`'s NAT filter (if it is
    /// behind one), across the path from `from` and `to`'s cable, then straight out or
    /// through the port's scheduler.
    fn egress(&self, from: usize, to: usize, frame: &[u8], ingress: &Crossing) {
        let Some(port) = self.port(to) else { return };
        if !port.open.load(Ordering::Relaxed) {
            port.count_drop(DropReason::Error);
            return;
        }
        if port.behind_nat.load(Ordering::Relaxed) && !port.nat().admits(frame, Instant::now()) {
            port.count_drop(DropReason::Nat);
            return;
        }
        let path = self.path(from, to);
        let on_path = match &path {
            None => Crossing::CLEAR,
            Some(p) => match lock_shaping(p).cross() {
                Ok(c) => c,
                Err(why) => {
                    port.count_drop(why);
                    return;
                }
            },
        };
        let (delay, hold) = {
            let mut shaping = port.shaping();
            let crossing = match shaping.cross() {
                Ok(c) => c,
                Err(why) => {
                    drop(shaping);
                    port.count_drop(why);
                    return;
                }
            };
            // Held back if either cable or the path holds it back.
            let reorder =
                1.0 - (1.0 - ingress.reorder) * (1.0 - on_path.reorder) * (1.0 - crossing.reorder);
            let hold = shaping.rng.chance(reorder);
            (ingress.delay + on_path.delay + crossing.delay, hold)
        };
        port.enqueue(from, frame, delay, hold, path);
    }

    fn detach(&self, id: usize) {
        if let Some(port) = self.port(id) {
            port.open.store(false, Ordering::Relaxed);
            let _guard = port.queue();
            port.wake.notify_all();
        }
        let mut ports = self.ports.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = ports.get_mut(id) {
            *slot = None;
        }
        drop(ports);
        self.fdb
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, p| *p != id);
        let mut paths = self.paths.write().unwrap_or_else(|p| p.into_inner());
        paths.retain(|&(a, b), _| a != id && b != id);
        self.has_paths.store(!paths.is_empty(), Ordering::Relaxed);
    }
}

/// A shared Ethernet segment. Cloning gives another handle to the same switch; the switch
/// lives while any handle or attached port does.
#[derive(Clone)]
pub struct Wire {
    switch: Arc<Switch>,
}

impl Wire {
    /// A new, empty switch. `name` shows in thread names and messages.
    pub fn new(name: &str) -> Wire {
        Wire {
            switch: Arc::new(Switch {
                name: name.to_string(),
                ports: RwLock::new(Vec::new()),
                fdb: Mutex::new(HashMap::new()),
                paths: RwLock::new(HashMap::new()),
                has_paths: AtomicBool::new(false),
                pcap: Mutex::new(None),
            }),
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.switch.name
    }

    /// Adds a port for a QEMU `-netdev dgram` NIC: the switch binds a loopback UDP socket
    /// and reserves a loopback UDP port for the VM's end.
    pub fn attach_udp(&self) -> Result<WirePort> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding a switch port", e))?;
        let switch_addr = socket
            .local_addr()
            .map_err(|e| Error::io("reading a switch port address", e))?;
        let vm_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()?));
        socket
            .connect(vm_addr)
            .map_err(|e| Error::io("connecting a switch port", e))?;
        socket
            .set_read_timeout(Some(POLL))
            .map_err(|e| Error::io("setting a switch port timeout", e))?;
        let id = self.attach(Box::new(UdpPortIo { socket }))?;
        Ok(WirePort {
            wire: self.clone(),
            id,
            switch_addr,
            vm_addr,
        })
    }

    /// Adds a port with any I/O (the hook for taps and other NIC kinds); returns its number.
    /// The port stays attached until [`Wire::detach`].
    pub fn attach(&self, io: Box<dyn PortIo>) -> Result<usize> {
        let mut ports = self.switch.ports.write().unwrap_or_else(|p| p.into_inner());
        let id = ports.len();
        let port = Arc::new(Port {
            io,
            shaping: Mutex::new(Shaping {
                policy: LinkPolicy::default(),
                rng: Rng::seeded(0, id),
            }),
            open: AtomicBool::new(true),
            behind_nat: AtomicBool::new(false),
            nat: Mutex::new(NatFilter::new()),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
            dropped_cut: AtomicU64::new(0),
            dropped_loss: AtomicU64::new(0),
            dropped_nat: AtomicU64::new(0),
            dropped_error: AtomicU64::new(0),
            delayed: AtomicU64::new(0),
            reordered: AtomicU64::new(0),
        });
        ports.push(Some(port.clone()));
        drop(ports);
        {
            let port = port.clone();
            let spawned = thread::Builder::new()
                .name(format!("wire-{}-{id}-out", self.switch.name))
                .spawn(move || port.schedule());
            if let Err(e) = spawned {
                self.switch.detach(id);
                return Err(Error::io("spawning a switch port scheduler", e));
            }
        }
        let switch = self.switch.clone();
        thread::Builder::new()
            .name(format!("wire-{}-{id}", self.switch.name))
            .spawn(move || {
                let mut buf = vec![0u8; MAX_FRAME];
                while port.open.load(Ordering::Relaxed) {
                    match port.io.recv(&mut buf) {
                        Ok(Some(n)) => switch.ingress(id, &buf[..n]),
                        Ok(None) => {}
                        Err(_) => thread::sleep(POLL),
                    }
                }
            })
            .map_err(|e| Error::io("spawning a switch port thread", e))?;
        Ok(id)
    }

    /// Removes a port: its thread stops and its learned addresses are forgotten.
    pub fn detach(&self, port: usize) {
        self.switch.detach(port);
    }

    /// Sets the policy of one port (for example [`LinkPolicy::cut`]) and reseeds its
    /// PRNG from `policy.seed`. Frames already queued keep their schedule.
    pub fn set_policy(&self, port: usize, policy: LinkPolicy) {
        if let Some(p) = self.switch.port(port) {
            let mut shaping = p.shaping();
            shaping.rng = Rng::seeded(policy.seed, port);
            shaping.policy = policy;
        }
    }

    /// The policy of one port, if it is attached.
    pub fn policy(&self, port: usize) -> Option<LinkPolicy> {
        self.switch.port(port).map(|p| p.shaping().policy.clone())
    }

    /// Sets the policy of the path between ports `a` and `b`, both ways (on top of each
    /// port's own; see the module doc), and reseeds the path's PRNG from `policy.seed`.
    /// [`LinkPolicy::default`] makes the path clean again. Frames already queued keep
    /// their schedule, but a cut drops those still in flight on the path. Ignored unless
    /// `a` and `b` are two attached ports; forgotten when either is detached.
    pub fn set_pair_policy(&self, a: usize, b: usize, policy: LinkPolicy) {
        if a == b || self.switch.port(a).is_none() || self.switch.port(b).is_none() {
            return;
        }
        let key = path_key(a, b);
        let mut paths = self.switch.paths.write().unwrap_or_else(|p| p.into_inner());
        let clean = policy == LinkPolicy::default();
        if let Some(existing) = paths.get(&key) {
            // In place: frames in flight on the path see a cut or a restore.
            let mut shaping = lock_shaping(existing);
            shaping.rng = Rng::seeded(policy.seed, path_stream(key));
            shaping.policy = policy;
            drop(shaping);
            if clean {
                paths.remove(&key);
            }
        } else if !clean {
            let shaping = Shaping {
                rng: Rng::seeded(policy.seed, path_stream(key)),
                policy,
            };
            paths.insert(key, Arc::new(Mutex::new(shaping)));
        }
        self.switch
            .has_paths
            .store(!paths.is_empty(), Ordering::Relaxed);
    }

    /// The policy of the path between ports `a` and `b` (the default if it has none).
    pub fn pair_policy(&self, a: usize, b: usize) -> LinkPolicy {
        self.switch
            .path(a, b)
            .map_or_else(LinkPolicy::default, |p| lock_shaping(&p).policy.clone())
    }

    /// Puts port `port` behind a NAT (`true`) or takes it out (`false`): behind one,
    /// unicast IP frames reach it only as part of a flow it started (`wire/nat.rs`); the rest
    /// count as [`PortStats::dropped_nat`]. Taking it out forgets its flows.
    pub fn set_nat(&self, port: usize, on: bool) {
        if let Some(p) = self.switch.port(port) {
            let mut nat = p.nat();
            if !on {
                *nat = NatFilter::new();
            }
            p.behind_nat.store(on, Ordering::Relaxed);
        }
    }

    /// Whether port `port` is behind a NAT (`None` if it is not attached).
    pub fn is_behind_nat(&self, port: usize) -> Option<bool> {
        self.switch
            .port(port)
            .map(|p| p.behind_nat.load(Ordering::Relaxed))
    }

    /// Counters of every attached port, by port number.
    pub fn stats(&self) -> Vec<(usize, PortStats)> {
        let ports = self.switch.ports.read().unwrap_or_else(|p| p.into_inner());
        ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.as_ref().map(|p| (i, p.stats())))
            .collect()
    }

    /// Counters of one attached port.
    pub fn port_stats(&self, port: usize) -> Option<PortStats> {
        self.switch.port(port).map(|p| p.stats())
    }

    /// How many frames from port `from` crossed every policy on their way and were handed
    /// to port `to`'s egress (to leave now or when due): the traffic on one direction of
    /// a path, e.g. to see which way a routed flow goes. 0 for ports not attached.
    pub fn frames_between(&self, from: usize, to: usize) -> u64 {
        self.switch
            .port(to)
            .and_then(|p| p.queue().from.get(from).copied())
            .unwrap_or(0)
    }

    /// Writes every frame the switch accepts from now on to a pcap file (open it with
    /// tshark or wireshark).
    pub fn capture_to(&self, path: &Path) -> Result<()> {
        let pcap = Pcap::create(path)
            .map_err(|e| Error::io(format_args!("creating {}", path.display()), e))?;
        *self.switch.pcap.lock().unwrap_or_else(|p| p.into_inner()) = Some(pcap);
        Ok(())
    }
}

/// One VM NIC's place on a wire. Dropping it detaches the port.
pub struct WirePort {
    wire: Wire,
    id: usize,
    switch_addr: SocketAddr,
    vm_addr: SocketAddr,
}

impl WirePort {
    /// The port number on its wire (for [`Wire::set_policy`]).
    pub fn id(&self) -> usize {
        self.id
    }

    /// The wire this port is on.
    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    /// The switch's socket address for this port.
    pub fn switch_addr(&self) -> SocketAddr {
        self.switch_addr
    }

    /// The address the VM's end binds.
    pub fn vm_addr(&self) -> SocketAddr {
        self.vm_addr
    }

    /// The `-netdev` value for QEMU.
    pub fn qemu_netdev(&self, id: &str) -> String {
        format!(
            "dgram,id={id},local.type=inet,local.host={},local.port={},\
             remote.type=inet,remote.host={},remote.port={}",
            self.vm_addr.ip(),
            self.vm_addr.port(),
            self.switch_addr.ip(),
            self.switch_addr.port()
        )
    }
}

impl Drop for WirePort {
    fn drop(&mut self) {
        self.wire.detach(self.id);
    }
}

/// A minimal pcap (libpcap 2.4, Ethernet) writer.
struct Pcap {
    out: BufWriter<File>,
}

impl Pcap {
    fn create(path: &Path) -> io::Result<Pcap> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?; // thiszone
        out.write_all(&0u32.to_le_bytes())?; // sigfigs
        out.write_all(&(MAX_FRAME as u32).to_le_bytes())?; // snaplen
        out.write_all(&1u32.to_le_bytes())?; // LINKTYPE_ETHERNET
        out.flush()?;
        Ok(Pcap { out })
    }

    fn write(&mut self, frame: &[u8]) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let len = frame.len() as u32;
        let _ = (|| -> io::Result<()> {
            self.out.write_all(&(now.as_secs() as u32).to_le_bytes())?;
            self.out.write_all(&now.subsec_micros().to_le_bytes())?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(frame)?;
            // Flush per frame: a capture is for reading while (or right after) a test runs.
            self.out.flush()
        })();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake VM NIC: the UDP socket QEMU would own.
    struct FakeNic {
        socket: UdpSocket,
    }

    impl FakeNic {
        fn on(port: &WirePort) -> FakeNic {
            let socket = UdpSocket::bind(port.vm_addr()).unwrap();
            socket.connect(port.switch_addr()).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            FakeNic { socket }
        }

        fn send(&self, dst: Mac, src: Mac, payload: &[u8]) {
            let mut frame = Vec::new();
            frame.extend_from_slice(&dst);
            frame.extend_from_slice(&src);
            frame.extend_from_slice(&[0x88, 0xb5]); // local experimental ethertype
            frame.extend_from_slice(payload);
            self.socket.send(&frame).unwrap();
        }

        /// Payloads of frames that arrive within the read timeout.
        fn received(&self) -> Vec<Vec<u8>> {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while let Ok(n) = self.socket.recv(&mut buf) {
                got.push(buf[14..n].to_vec());
            }
            got
        }
    }

    const A: Mac = [0x52, 0x54, 0, 0, 0, 0xa];
    const B: Mac = [0x52, 0x54, 0, 0, 0, 0xb];
    const C: Mac = [0x52, 0x54, 0, 0, 0, 0xc];
    const BROADCAST: Mac = [0xff; 6];

    #[test]
    fn broadcast_floods_and_learned_unicast_goes_to_one_port() {
        let wire = Wire::new("test-learn");
        let ports: Vec<WirePort> = (0..3).map(|_| wire.attach_udp().unwrap()).collect();
        let nics: Vec<FakeNic> = ports.iter().map(FakeNic::on).collect();

        nics[0].send(BROADCAST, A, b"who has");
        assert_eq!(nics[1].received(), [b"who has".to_vec()]);
        assert_eq!(nics[2].received(), [b"who has".to_vec()]);
        assert!(nics[0].received().is_empty(), "no echo to the sender");

        // B answers A: the switch learned A on port 0, so only port 0 gets it.
        nics[1].send(A, B, b"is at");
        assert_eq!(nics[0].received(), [b"is at".to_vec()]);
        assert!(nics[2].received().is_empty());

        // Unknown unicast (C never spoke) floods.
        nics[0].send(C, A, b"to c");
        assert_eq!(nics[1].received(), [b"to c".to_vec()]);
        assert_eq!(nics[2].received(), [b"to c".to_vec()]);

        let stats = wire.stats();
        assert_eq!(stats[0].1.rx, 2);
        assert_eq!(stats[0].1.tx, 1);
    }

    #[test]
    fn a_cut_link_drops_both_directions_until_restored() {
        let wire = Wire::new("test-cut");
        let p0 = wire.attach_udp().unwrap();
        let p1 = wire.attach_udp().unwrap();
        let (n0, n1) = (FakeNic::on(&p0), FakeNic::on(&p1));

        wire.set_policy(p1.id(), LinkPolicy::cut());
        n0.send(BROADCAST, A, b"lost");
        n1.send(BROADCAST, B, b"lost too");
        assert!(n1.received().is_empty());
        assert!(n0.received().is_empty());
        assert_eq!(wire.stats()[1].1.dropped, 2);
        assert_eq!(wire.stats()[1].1.dropped_cut, 2);

        wire.set_policy(p1.id(), LinkPolicy::default());
        n0.send(BROADCAST, A, b"back");
        assert_eq!(n1.received(), [b"back".to_vec()]);
    }

    #[test]
    fn a_detached_port_gets_nothing_more() {
        let wire = Wire::new("test-detach");
        let p0 = wire.attach_udp().unwrap();
        let p1 = wire.attach_udp().unwrap();
        let n0 = FakeNic::on(&p0);
        let n1 = FakeNic::on(&p1);
        drop(p1);
        n0.send(BROADCAST, A, b"anyone?");
        assert!(n1.received().is_empty());
        assert_eq!(wire.stats().len(), 1);
    }

    #[test]
    fn capture_writes_a_pcap_file_with_each_frame() {
        let dir = crate::host::TempDir::new("pcap-test").unwrap();
        let path = dir.path().join("wire.pcap");
        let wire = Wire::new("test-pcap");
        wire.capture_to(&path).unwrap();
        let p0 = wire.attach_udp().unwrap();
        let p1 = wire.attach_udp().unwrap();
        let (n0, n1) = (FakeNic::on(&p0), FakeNic::on(&p1));
        n0.send(BROADCAST, A, b"captured");
        assert_eq!(n1.received().len(), 1);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
        let frame_len = 14 + b"captured".len();
        assert_eq!(bytes.len(), 24 + 16 + frame_len);
        assert!(bytes.ends_with(b"captured"));
    }

    /// An in-memory NIC: the test pushes frames in, the switch's sends pile up.
    #[derive(Default)]
    struct MemNic {
        inbox: Mutex<VecDeque<Vec<u8>>>,
        inbox_ready: Condvar,
        outbox: Mutex<Vec<Vec<u8>>>,
        outbox_ready: Condvar,
        fail_sends: AtomicBool,
    }

    /// The switch's side of a [`MemNic`].
    struct MemIo(Arc<MemNic>);

    impl PortIo for MemIo {
        fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
            let nic = &self.0;
            let mut inbox = nic.inbox.lock().unwrap();
            if inbox.is_empty() {
                inbox = nic.inbox_ready.wait_timeout(inbox, POLL).unwrap().0;
            }
            Ok(inbox.pop_front().map(|f| {
                buf[..f.len()].copy_from_slice(&f);
                f.len()
            }))
        }

        fn send(&self, frame: &[u8]) -> io::Result<()> {
            if self.0.fail_sends.load(Ordering::Relaxed) {
                return Err(io::Error::other("send refused"));
            }
            self.0.outbox.lock().unwrap().push(frame.to_vec());
            self.0.outbox_ready.notify_all();
            Ok(())
        }
    }

    impl MemNic {
        fn attach(wire: &Wire) -> (Arc<MemNic>, usize) {
            let nic = Arc::new(MemNic::default());
            let id = wire.attach(Box::new(MemIo(nic.clone()))).unwrap();
            (nic, id)
        }

        /// Sends a frame from `src` to `dst` whose payload is `seq` (4 bytes).
        fn send(&self, dst: Mac, src: Mac, seq: u32) {
            self.send_all(dst, src, seq..=seq);
        }

        /// Sends one frame per sequence number, all at once (the switch takes them
        /// back to back).
        fn send_all(&self, dst: Mac, src: Mac, seqs: impl IntoIterator<Item = u32>) {
            let mut inbox = self.inbox.lock().unwrap();
            for seq in seqs {
                let mut frame = Vec::new();
                frame.extend_from_slice(&dst);
                frame.extend_from_slice(&src);
                frame.extend_from_slice(&[0x88, 0xb5]);
                frame.extend_from_slice(&seq.to_be_bytes());
                inbox.push_back(frame);
            }
            self.inbox_ready.notify_all();
        }

        /// Waits (generously) until `n` frames arrived, then returns their sequence numbers.
        fn wait_for(&self, n: usize) -> Vec<u32> {
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut out = self.outbox.lock().unwrap();
            while out.len() < n && Instant::now() < deadline {
                out = self
                    .outbox_ready
                    .wait_timeout(out, Duration::from_millis(50))
                    .unwrap()
                    .0;
            }
            out.iter()
                .map(|f| u32::from_be_bytes(f[14..18].try_into().unwrap()))
                .collect()
        }

        fn got(&self) -> Vec<u32> {
            self.wait_for(0)
        }

        /// Sends one raw frame.
        fn send_frame(&self, frame: Vec<u8>) {
            self.inbox.lock().unwrap().push_back(frame);
            self.inbox_ready.notify_all();
        }

        /// Waits (generously) until `n` frames arrived, then returns them whole.
        fn frames(&self, n: usize) -> Vec<Vec<u8>> {
            self.wait_for(n);
            self.outbox.lock().unwrap().clone()
        }
    }

    /// Waits until the switch has dealt with `n` frames from port `id` (accepted or
    /// dropped), so counters and queues can be read.
    fn settle(wire: &Wire, id: usize, n: u64) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let s = wire.port_stats(id).unwrap();
            if s.rx + s.dropped >= n {
                return;
            }
            thread::sleep(Duration::from_millis(5));
        }
        panic!("port {id} did not take {n} frames");
    }

    /// The counters of port `id` once `ready` holds for them (the switch counts a frame
    /// right after handing it over, so a test may see the frame first).
    fn stats_when(wire: &Wire, id: usize, ready: impl Fn(&PortStats) -> bool) -> PortStats {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = wire.port_stats(id).unwrap();
            if ready(&s) || Instant::now() >= deadline {
                return s;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn loss_follows_the_seeded_prng_and_is_counted_per_reason() {
        let run = |seed: u64| {
            let wire = Wire::new("test-loss");
            let (a, pa) = MemNic::attach(&wire);
            let (b, pb) = MemNic::attach(&wire);
            wire.set_policy(
                pa,
                LinkPolicy {
                    drop: 0.3,
                    seed,
                    ..LinkPolicy::default()
                },
            );
            for seq in 0..1000 {
                a.send(B, A, seq);
            }
            settle(&wire, pa, 1000);
            let sa = wire.port_stats(pa).unwrap();
            assert_eq!(sa.rx + sa.dropped_loss, 1000);
            assert_eq!(sa.dropped, sa.dropped_loss);
            let got = b.wait_for(sa.rx as usize);
            assert_eq!(got.len() as u64, sa.rx);
            assert_eq!(stats_when(&wire, pb, |s| s.tx >= sa.rx).tx, sa.rx);
            // Roughly 30% lost (binomial, n = 1000: far inside 5 sigma).
            assert!((200..=400).contains(&sa.dropped_loss), "{sa:?}");
            assert!(
                got.windows(2).all(|w| w[0] < w[1]),
                "loss alone never reorders"
            );
            got
        };
        let first = run(7);
        assert_eq!(first, run(7), "the same seed loses the same frames");
        assert_ne!(first, run(8), "another seed loses others");
    }

    #[test]
    fn certain_loss_on_the_egress_cable_drops_everything_to_that_port_only() {
        let wire = Wire::new("test-egress-loss");
        let (a, pa) = MemNic::attach(&wire);
        let (b, pb) = MemNic::attach(&wire);
        let (c, _) = MemNic::attach(&wire);
        wire.set_policy(
            pb,
            LinkPolicy {
                drop: 1.0,
                ..LinkPolicy::default()
            },
        );
        for seq in 0..10 {
            a.send(BROADCAST, A, seq);
        }
        assert_eq!(c.wait_for(10), (0..10).collect::<Vec<_>>());
        settle(&wire, pa, 10);
        assert!(b.got().is_empty());
        let sb = stats_when(&wire, pb, |s| s.dropped >= 10);
        assert_eq!((sb.dropped_loss, sb.dropped, sb.tx), (10, 10, 0));
        assert_eq!(wire.port_stats(pa).unwrap().rx, 10);
    }

    #[test]
    fn reorder_holds_a_frame_behind_the_next_and_lets_a_lone_one_go() {
        let wire = Wire::new("test-reorder");
        let (a, _) = MemNic::attach(&wire);
        let (b, pb) = MemNic::attach(&wire);
        // The delay gives frame 2 half a second to be queued behind frame 1 (a held frame
        // gives up waiting only `REORDER_HOLD` after it is due), however busy the host.
        wire.set_policy(
            pb,
            LinkPolicy {
                reorder: 1.0,
                delay: Duration::from_millis(500),
                ..LinkPolicy::default()
            },
        );
        // Every frame that may be held is: 1 waits for 2, 3 for 4; 5 has nothing behind it
        // and leaves alone after the hold time.
        a.send_all(B, A, 1..=5);
        assert_eq!(b.wait_for(5), [2, 1, 4, 3, 5]);
        let sb = stats_when(&wire, pb, |s| s.tx >= 5);
        assert_eq!((sb.tx, sb.reordered, sb.dropped), (5, 2, 0));
    }

    #[test]
    fn delay_and_jitter_keep_order_and_do_not_hold_up_other_ports() {
        let wire = Wire::new("test-delay");
        let (a, pa) = MemNic::attach(&wire);
        let (slow, ps) = MemNic::attach(&wire);
        let (fast, pf) = MemNic::attach(&wire);
        let (jittery, pj) = MemNic::attach(&wire);
        wire.set_policy(
            ps,
            LinkPolicy {
                delay: Duration::from_secs(600),
                ..LinkPolicy::default()
            },
        );
        wire.set_policy(
            pj,
            LinkPolicy {
                delay: Duration::from_millis(30),
                jitter: Duration::from_millis(20),
                seed: 3,
                ..LinkPolicy::default()
            },
        );
        let start = Instant::now();
        a.send_all(BROADCAST, A, 0..50);
        let all: Vec<u32> = (0..50).collect();
        assert_eq!(fast.wait_for(50), all);
        assert_eq!(jittery.wait_for(50), all, "jitter never reorders");
        assert!(start.elapsed() >= Duration::from_millis(30));
        settle(&wire, pa, 50);
        // Ten minutes of delay: nothing reached `slow`, and it kept no one waiting.
        assert!(slow.got().is_empty());
        let (ss, sf, sj) = (
            wire.port_stats(ps).unwrap(),
            stats_when(&wire, pf, |s| s.tx >= 50),
            stats_when(&wire, pj, |s| s.tx >= 50),
        );
        assert_eq!((ss.tx, ss.delayed), (0, 0));
        assert_eq!((sf.tx, sf.delayed), (50, 0));
        assert_eq!((sj.tx, sj.delayed, sj.reordered), (50, 50, 0));
        // Detaching drops what is still queued, counted as errors.
        wire.detach(ps);
        assert!(slow.got().is_empty());
    }

    #[test]
    fn ingress_delay_of_the_sender_applies_to_every_port_it_reaches() {
        let wire = Wire::new("test-ingress-delay");
        let (a, pa) = MemNic::attach(&wire);
        let (b, pb) = MemNic::attach(&wire);
        let (c, pc) = MemNic::attach(&wire);
        wire.set_policy(
            pa,
            LinkPolicy {
                delay: Duration::from_millis(20),
                ..LinkPolicy::default()
            },
        );
        for seq in 0..5 {
            a.send(BROADCAST, A, seq);
        }
        assert_eq!(b.wait_for(5), [0, 1, 2, 3, 4]);
        assert_eq!(c.wait_for(5), [0, 1, 2, 3, 4]);
        for p in [pb, pc] {
            assert_eq!(stats_when(&wire, p, |s| s.tx >= 5).delayed, 5);
        }
        // Frames from `b` cross no delayed cable.
        b.send(BROADCAST, B, 9);
        assert_eq!(c.wait_for(6)[5], 9);
        assert_eq!(stats_when(&wire, pc, |s| s.tx >= 6).delayed, 5);
    }

    #[test]
    fn cut_runt_and_failed_sends_are_counted_apart() {
        let wire = Wire::new("test-reasons");
        let (a, pa) = MemNic::attach(&wire);
        let (b, pb) = MemNic::attach(&wire);
        a.inbox.lock().unwrap().push_back(vec![0u8; 10]); // a runt
        a.inbox_ready.notify_all();
        settle(&wire, pa, 1);
        b.fail_sends.store(true, Ordering::Relaxed);
        a.send(B, A, 1);
        settle(&wire, pa, 2);
        wire.set_policy(pa, LinkPolicy::cut());
        a.send(B, A, 2);
        settle(&wire, pa, 3);
        let sa = wire.port_stats(pa).unwrap();
        let sb = stats_when(&wire, pb, |s| s.dropped >= 1);
        assert_eq!((sa.dropped_error, sa.dropped_cut, sa.rx), (1, 1, 1));
        assert_eq!((sb.dropped_error, sb.tx), (1, 0));
        assert!(b.got().is_empty());
    }

    fn delay(ms: u64) -> LinkPolicy {
        LinkPolicy {
            delay: Duration::from_millis(ms),
            ..LinkPolicy::default()
        }
    }

    #[test]
    fn a_cut_pair_drops_only_between_its_two_ports_both_ways_even_for_broadcasts() {
        let wire = Wire::new("test-pair-cut");
        let (a, pa) = MemNic::attach(&wire);
        let (b, pb) = MemNic::attach(&wire);
        let (c, pc) = MemNic::attach(&wire);
        wire.set_pair_policy(pb, pa, LinkPolicy::cut());
        assert!(!wire.pair_policy(pa, pb).up, "the same path both ways");
        // A's broadcast reaches C, not B; B's reaches C, not A; unicast likewise.
        a.send_all(BROADCAST, A, 0..3);
        assert_eq!(c.wait_for(3), [0, 1, 2]);
        b.send_all(BROADCAST, B, 10..13);
        assert_eq!(c.wait_for(6), [0, 1, 2, 10, 11, 12]);
        c.send(A, C, 20); // A and B are learned now: unicast
        c.send(B, C, 21);
        assert_eq!(a.wait_for(1), [20]);
        assert_eq!(b.wait_for(1), [21]);
        a.send(B, A, 30);
        b.send(A, B, 31);
        settle(&wire, pa, 4);
        settle(&wire, pb, 4);
        assert_eq!(a.got(), [20]);
        assert_eq!(b.got(), [21]);
        // Each drop counts at the port the frame was going to; nothing touched C.
        let sa = stats_when(&wire, pa, |s| s.dropped_cut >= 4);
        let sb = stats_when(&wire, pb, |s| s.dropped_cut >= 4);
        assert_eq!((sa.dropped_cut, sa.dropped, sa.tx), (4, 4, 1));
        assert_eq!((sb.dropped_cut, sb.dropped, sb.tx), (4, 4, 1));
        assert_eq!(wire.port_stats(pc).unwrap().dropped, 0);
        // Per direction of each path: what got through.
        assert_eq!(wire.frames_between(pa, pb), 0);
        assert_eq!(wire.frames_between(pb, pa), 0);
        assert_eq!(wire.frames_between(pa, pc), 3);
        assert_eq!(wire.frames_between(pb, pc), 3);
        assert_eq!(
            (wire.frames_between(pc, pa), wire.frames_between(pc, pb)),
            (1, 1)
        );
        assert_eq!(wire.frames_between(pc, 42), 0);
        // Restored: the path is clean again and forgotten.
        wire.set_pair_policy(pa, pb, LinkPolicy::default());
        assert_eq!(wire.pair_policy(pa, pb), LinkPolicy::default());
        a.send(B, A, 40);
        assert_eq!(b.wait_for(2), [21, 40]);
    }

    #[test]
    fn a_pair_delay_holds_up_that_path_only_and_adds_to_the_cables() {
        let wire = Wire::new("test-pair-delay");
        let (a, pa) = MemNic::attach(&wire);
        let (b, pb) = MemNic::attach(&wire);
        let (c, pc) = MemNic::attach(&wire);
        // Ten minutes between A and B: A's frames for B are queued behind it...
        wire.set_pair_policy(pa, pb, delay(600_000));
        a.send_all(BROADCAST, A, 0..5);
        assert_eq!(c.wait_for(5), [0, 1, 2, 3, 4], "A to C is clean");
        settle(&wire, pa, 5);
        assert!(b.got().is_empty());
        // ...and frames from C to B, due at once, do not wait behind them.
        c.send_all(BROADCAST, C, 10..15);
        assert_eq!(b.wait_for(5), [10, 11, 12, 13, 14]);
        assert_eq!(a.wait_for(5), [10, 11, 12, 13, 14]);
        let sb = stats_when(&wire, pb, |s| s.tx >= 5);
        assert_eq!((sb.tx, sb.delayed, sb.dropped), (5, 0, 0));
        assert_eq!(stats_when(&wire, pc, |s| s.tx >= 5).delayed, 0);
        // The path's delay adds to both cables': 20 + 30 + 40 ms from B to C...
        wire.set_pair_policy(pa, pb, LinkPolicy::default());
        wire.set_policy(pb, delay(20));
        wire.set_policy(pc, delay(40));
        wire.set_pair_policy(pb, pc, delay(30));
        let start = Instant::now();
        b.send(C, B, 50);
        assert_eq!(c.wait_for(6)[5], 50);
        assert!(
            start.elapsed() >= Duration::from_millis(90),
            "delays add up"
        );
        assert_eq!(stats_when(&wire, pc, |s| s.delayed >= 1).delayed, 1);
    }

    #[test]
    fn pair_loss_follows_its_seed_and_counts_at_the_receiving_port() {
        let run = |seed: u64| {
            let wire = Wire::new("test-pair-loss");
            let (a, pa) = MemNic::attach(&wire);
            let (b, pb) = MemNic::attach(&wire);
            let (c, _) = MemNic::attach(&wire);
            wire.set_pair_policy(
                pa,
                pb,
                LinkPolicy {
                    drop: 0.3,
                    seed,
                    ..LinkPolicy::default()
                },
            );
            a.send_all(BROADCAST, A, 0..1000);
            assert_eq!(c.wait_for(1000).len(), 1000, "A to C loses nothing");
            settle(&wire, pa, 1000);
            let sb = stats_when(&wire, pb, |s| s.tx + s.dropped >= 1000);
            assert_eq!(sb.tx + sb.dropped_loss, 1000);
            assert_eq!(sb.dropped, sb.dropped_loss);
            assert!((200..=400).contains(&sb.dropped_loss), "{sb:?}");
            assert_eq!(
                wire.port_stats(pa).unwrap().dropped,
                0,
                "A's cable is clean"
            );
            b.wait_for(sb.tx as usize)
        };
        let first = run(5);
        assert_eq!(first, run(5), "the same seed loses the same frames");
        assert_ne!(first, run(6));
    }

    #[test]
    fn cutting_a_pair_drops_the_frames_still_in_flight_on_it() {
        let wire = Wire::new("test-pair-inflight");
        let (a, pa) = MemNic::attach(&wire);
        let (b, pb) = MemNic::attach(&wire);
        wire.set_pair_policy(pa, pb, delay(5_000));
        a.send_all(B, A, 0..3);
        settle(&wire, pa, 3);
        wire.set_pair_policy(pa, pb, LinkPolicy::cut());
        let sb = stats_when(&wire, pb, |s| s.dropped_cut >= 3);
        assert_eq!((sb.dropped_cut, sb.tx), (3, 0));
        assert!(b.got().is_empty());
    }

    #[test]
    fn pair_policies_are_forgotten_with_their_ports_and_need_two_ports() {
        let wire = Wire::new("test-pair-detach");
        let (_a, pa) = MemNic::attach(&wire);
        let (_b, pb) = MemNic::attach(&wire);
        wire.set_pair_policy(pa, pa, LinkPolicy::cut());
        wire.set_pair_policy(pa, 99, LinkPolicy::cut());
        assert_eq!(wire.pair_policy(pa, pa), LinkPolicy::default());
        assert_eq!(wire.pair_policy(pa, 99), LinkPolicy::default());
        wire.set_pair_policy(pa, pb, LinkPolicy::cut());
        wire.detach(pb);
        assert_eq!(wire.pair_policy(pa, pb), LinkPolicy::default());
        assert!(!wire.switch.has_paths.load(Ordering::Relaxed));
    }

    #[test]
    fn a_port_behind_nat_gets_only_what_belongs_to_flows_it_started() {
        use nat::tests::{eth, udp, NODE, NODE_MAC as N, PEER, PEER_MAC as P};
        let wire = Wire::new("test-nat");
        let (node, pn) = MemNic::attach(&wire);
        let (peer, pp) = MemNic::attach(&wire);
        wire.set_nat(pn, true);
        assert_eq!(wire.is_behind_nat(pn), Some(true));
        // ARP and broadcasts pass; the switch learns both MACs from them.
        node.send_frame(eth([0xff; 6], N, 0x0806, &[1; 28]));
        peer.send_frame(eth(N, P, 0x0806, &[2; 28]));
        assert_eq!(peer.frames(1).len(), 1);
        assert_eq!(node.frames(1).len(), 1);
        // Unsolicited WireGuard from the peer: dropped and counted at the node's port.
        let initiation = udp((N, P), (PEER, 51820), (NODE, 51820));
        peer.send_frame(initiation.clone());
        let sn = stats_when(&wire, pn, |s| s.dropped_nat >= 1);
        assert_eq!((sn.dropped_nat, sn.dropped, sn.tx), (1, 1, 1));
        // The node sends first; the answer passes, and the flow works both ways.
        node.send_frame(udp((P, N), (NODE, 51820), (PEER, 51820)));
        assert_eq!(peer.frames(2).len(), 2);
        peer.send_frame(initiation.clone());
        assert_eq!(node.frames(2)[1], initiation);
        // Another port of the peer is still unsolicited.
        peer.send_frame(udp((N, P), (PEER, 4444), (NODE, 51820)));
        let sn = stats_when(&wire, pn, |s| s.dropped_nat >= 2);
        assert_eq!((sn.dropped_nat, sn.tx), (2, 2));
        // Out of the NAT, everything passes again.
        wire.set_nat(pn, false);
        peer.send_frame(udp((N, P), (PEER, 4444), (NODE, 51820)));
        assert_eq!(node.frames(3).len(), 3);
        assert_eq!(wire.port_stats(pp).unwrap().dropped, 0);
    }
}
