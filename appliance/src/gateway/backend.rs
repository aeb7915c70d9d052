//! A service's backends: which one gets the next connection, and which are healthy.
//!
//! A [`Pool`] spreads new connections over its healthy backends, round robin or to the
//! one with the fewest open connections ([`Balance`]). Health is tracked per backend in
//! the manner of HAProxy: an active check every `interval` (2 s by default) that the
//! caller runs (a TCP connect, or an HTTP request for `http` services) and reports back;
//! `fall` failures in a row (3) take a backend out of the rotation, `rise` successes in a
//! row (2) bring it back. After a failed check the next one starts sooner (`fast_interval`
//! after the failed one started, 1 s), and a check not reported within `timeout` (1 s)
//! counts as failed, so a backend that dies just after a good check is out within
//! interval + timeout + (fall − 1) · max(fast_interval, timeout) = 5 s. Passive checks: a connect that fails while serving a client
//! ([`Pool::connect_failed`]) takes the backend out at once; the caller then tries
//! [`Pool::pick`] again, excluding it.
//!
//! The pool never reads a clock: every call that depends on time takes `now`.

use alloc::vec::Vec;
use core::net::SocketAddr;

use smoltcp::time::{Duration, Instant};

/// Backends per service.
pub const MAX_BACKENDS: usize = 16;

/// How new connections are spread.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Balance {
    /// Each healthy backend in turn.
    #[default]
    RoundRobin,
    /// The healthy backend with the fewest open connections (ties in turn).
    LeastConnections,
}

/// When and how backends are checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// Between checks of a backend whose last check went as its state says.
    pub interval: Duration,
    /// Between checks while a backend's state is in doubt (a failure while up, a success
    /// while down).
    pub fast_interval: Duration,
    /// A check not reported back within this is a failure.
    pub timeout: Duration,
    /// Successes in a row that bring a down backend back.
    pub rise: u8,
    /// Failures in a row that take an up backend out.
    pub fall: u8,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            interval: Duration::from_millis(2000),
            fast_interval: Duration::from_millis(1000),
            timeout: Duration::from_millis(1000),
            rise: 2,
            fall: 3,
        }
    }
}

/// What a backend has seen, for the stats line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct BackendCounters {
    /// Connections established to it.
    pub connections: u64,
    /// Connects that failed (passive checks).
    pub connect_failures: u64,
    /// Active checks that failed (including timeouts).
    pub check_failures: u64,
    /// Bytes sent to it.
    pub bytes_to: u64,
    /// Bytes received from it.
    pub bytes_from: u64,
    /// Times it left the rotation.
    pub went_down: u64,
    /// Times it came back.
    pub came_up: u64,
}

/// A check the caller should run now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Check {
    /// Index of the backend in the pool.
    pub backend: usize,
    /// Where to connect.
    pub addr: SocketAddr,
    /// Hands the result back to [`Pool::check_done`]; a result for an older check (one
    /// that already timed out) is ignored.
    pub token: u32,
}

#[derive(Debug, Clone)]
struct Backend {
    addr: SocketAddr,
    up: bool,
    /// Consecutive results against the current state.
    streak: u8,
    active: u32,
    next_check: Instant,
    /// The check in flight: its token and when it started.
    in_flight: Option<(u32, Instant)>,
    counters: BackendCounters,
}

/// The backends of one service.
#[derive(Debug, Clone)]
pub struct Pool {
    backends: Vec<Backend>,
    balance: Balance,
    health: HealthSettings,
    /// Where the next round-robin search starts.
    next: usize,
    tokens: u32,
}

impl Pool {
    /// A pool over `addrs` (at most [`MAX_BACKENDS`]; extra ones are ignored, the config
    /// refuses them). Every backend starts up; the first checks run at `now`.
    pub fn new(
        addrs: &[SocketAddr],
        balance: Balance,
        health: HealthSettings,
        now: Instant,
    ) -> Pool {
        let backends = addrs
            .iter()
            .take(MAX_BACKENDS)
            .map(|&addr| Backend {
                addr,
                up: true,
                streak: 0,
                active: 0,
                next_check: now,
                in_flight: None,
                counters: BackendCounters::default(),
            })
            .collect();
        Pool {
            backends,
            balance,
            health: HealthSettings {
                rise: health.rise.max(1),
                fall: health.fall.max(1),
                ..health
            },
            next: 0,
            tokens: 0,
        }
    }

    /// How many backends there are.
    pub fn len(&self) -> usize {
        self.backends.len()
    }

    /// Whether the pool has no backend (never, from a valid config).
    pub fn is_empty(&self) -> bool {
        self.backends.is_empty()
    }

    /// How long a health check may take.
    pub fn check_timeout(&self) -> Duration {
        self.health.timeout
    }

    /// The backend's address.
    pub fn addr(&self, backend: usize) -> Option<SocketAddr> {
        self.backends.get(backend).map(|b| b.addr)
    }

    /// Whether the backend is in the rotation.
    pub fn is_up(&self, backend: usize) -> bool {
        self.backends.get(backend).is_some_and(|b| b.up)
    }

    /// The backend's counters.
    pub fn counters(&self, backend: usize) -> Option<BackendCounters> {
        self.backends.get(backend).map(|b| b.counters)
    }

    /// Open connections to the backend.
    pub fn active(&self, backend: usize) -> u32 {
        self.backends.get(backend).map_or(0, |b| b.active)
    }

    /// The backend for a new connection: a healthy one not in `exclude` (those a
    /// connection already failed to reach). `None` when there is none (the client gets
    /// 503, or a TLS/TCP client a close).
    pub fn pick(&mut self, exclude: &[usize]) -> Option<usize> {
        let n = self.backends.len();
        let candidates = (0..n)
            .map(|i| (self.next + i) % n)
            .filter(|&i| self.backends[i].up && !exclude.contains(&i));
        let chosen = match self.balance {
            Balance::RoundRobin => candidates.into_iter().next(),
            // min_by_key keeps the first of equals: ties go in turn.
            Balance::LeastConnections => candidates.min_by_key(|&i| self.backends[i].active),
        }?;
        self.next = (chosen + 1) % n;
        Some(chosen)
    }

    /// Whether [`Pool::pick`] would find a backend outside `exclude` (without moving the
    /// rotation).
    pub fn available(&self, exclude: &[usize]) -> bool {
        (0..self.backends.len()).any(|i| self.backends[i].up && !exclude.contains(&i))
    }

    /// A connection to the backend is established.
    pub fn connected(&mut self, backend: usize) {
        if let Some(b) = self.backends.get_mut(backend) {
            b.active = b.active.saturating_add(1);
            b.counters.connections += 1;
        }
    }

    /// A connect to the backend failed: it leaves the rotation now (passive check).
    pub fn connect_failed(&mut self, backend: usize, now: Instant) {
        if let Some(b) = self.backends.get_mut(backend) {
            b.counters.connect_failures += 1;
            if b.up {
                b.up = false;
                b.streak = 0;
                b.counters.went_down += 1;
                b.next_check = b.next_check.min(now + self.health.fast_interval);
            }
        }
    }

    /// An established connection to the backend closed, having moved these bytes.
    pub fn closed(&mut self, backend: usize, bytes_to: u64, bytes_from: u64) {
        if let Some(b) = self.backends.get_mut(backend) {
            b.active = b.active.saturating_sub(1);
            b.counters.bytes_to += bytes_to;
            b.counters.bytes_from += bytes_from;
        }
    }

    /// The next check to run now, if one is due; call until `None`. Checks whose result
    /// is overdue count as failed first.
    pub fn next_check(&mut self, now: Instant) -> Option<Check> {
        for i in 0..self.backends.len() {
            if let Some((token, started)) = self.backends[i].in_flight {
                if now >= started + self.health.timeout {
                    self.result(i, token, false, now);
                }
            }
        }
        let i = self
            .backends
            .iter()
            .position(|b| b.in_flight.is_none() && now >= b.next_check)?;
        self.tokens = self.tokens.wrapping_add(1);
        let token = self.tokens;
        let b = &mut self.backends[i];
        b.in_flight = Some((token, now));
        Some(Check {
            backend: i,
            addr: b.addr,
            token,
        })
    }

    /// The result of a check handed out by [`Pool::next_check`].
    pub fn check_done(&mut self, check: Check, ok: bool, now: Instant) {
        self.result(check.backend, check.token, ok, now);
    }

    fn result(&mut self, backend: usize, token: u32, ok: bool, now: Instant) {
        let health = self.health;
        let Some(b) = self.backends.get_mut(backend) else {
            return;
        };
        let Some((_, started)) = b.in_flight.filter(|&(t, _)| t == token) else {
            return; // an old check, already counted as timed out
        };
        b.in_flight = None;
        if !ok {
            b.counters.check_failures += 1;
        }
        let in_doubt = if ok == b.up {
            b.streak = 0;
            false
        } else {
            b.streak += 1;
            let needed = if b.up { health.fall } else { health.rise };
            if b.streak >= needed {
                b.up = ok;
                b.streak = 0;
                if ok {
                    b.counters.came_up += 1;
                } else {
                    b.counters.went_down += 1;
                }
                false
            } else {
                true
            }
        };
        // Down backends are retried at the fast pace too, so they come back soon.
        let wait = if in_doubt || !b.up {
            health.fast_interval
        } else {
            health.interval
        };
        // Paced from the check's start, so slow answers don't stretch the period.
        b.next_check = (started + wait).max(now);
    }

    /// When [`Pool::next_check`] next has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        self.backends
            .iter()
            .map(|b| match b.in_flight {
                Some((_, started)) => started + self.health.timeout,
                None => b.next_check,
            })
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn addrs(n: usize) -> Vec<SocketAddr> {
        (0..n)
            .map(|i| SocketAddr::from(([10, 20, i as u8 + 1, 10], 443)))
            .collect()
    }

    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    /// Runs every due check at `now`, answering `alive(backend)`.
    fn run_checks(pool: &mut Pool, now: Instant, alive: impl Fn(usize) -> bool) {
        while let Some(check) = pool.next_check(now) {
            pool.check_done(check, alive(check.backend), now);
        }
    }

    #[test]
    fn round_robin_takes_each_healthy_backend_in_turn() {
        let mut p = Pool::new(
            &addrs(3),
            Balance::RoundRobin,
            HealthSettings::default(),
            at(0),
        );
        let picks: Vec<_> = (0..6).map(|_| p.pick(&[]).unwrap()).collect();
        assert_eq!(picks, vec![0, 1, 2, 0, 1, 2]);
        p.connect_failed(1, at(0));
        let picks: Vec<_> = (0..4).map(|_| p.pick(&[]).unwrap()).collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
    }

    #[test]
    fn least_connections_prefers_the_idlest_backend() {
        let mut p = Pool::new(
            &addrs(3),
            Balance::LeastConnections,
            HealthSettings::default(),
            at(0),
        );
        p.connected(0);
        p.connected(0);
        p.connected(1);
        assert_eq!(p.pick(&[]), Some(2));
        p.connected(2);
        p.connected(2);
        assert_eq!(p.pick(&[]), Some(1));
        p.closed(0, 10, 20);
        p.closed(0, 1, 2);
        assert_eq!(p.pick(&[]), Some(0));
        assert_eq!(p.active(0), 0);
        let c = p.counters(0).unwrap();
        assert_eq!((c.connections, c.bytes_to, c.bytes_from), (2, 11, 22));
    }

    #[test]
    fn a_failed_connect_retries_the_next_backend_and_none_left_is_none() {
        let mut p = Pool::new(
            &addrs(2),
            Balance::RoundRobin,
            HealthSettings::default(),
            at(0),
        );
        let first = p.pick(&[]).unwrap();
        p.connect_failed(first, at(0));
        let second = p.pick(&[first]).unwrap();
        assert_ne!(first, second);
        assert_eq!(p.pick(&[second]), None, "the other one is down");
        p.connect_failed(second, at(0));
        assert_eq!(p.pick(&[]), None);
        assert_eq!(p.counters(first).unwrap().connect_failures, 1);
        assert_eq!(p.counters(first).unwrap().went_down, 1);
    }

    #[test]
    fn a_dead_backend_leaves_within_6_s_and_comes_back_by_itself() {
        let mut p = Pool::new(
            &addrs(2),
            Balance::RoundRobin,
            HealthSettings::default(),
            at(0),
        );
        // Backend 1 dies right after a good check at t = 0; its later checks never answer
        // (a stopped VM: the connect hangs until the check's timeout).
        run_checks(&mut p, at(0), |_| true);
        let mut down_at = None;
        let mut t = 100;
        while t <= 10_000 {
            while let Some(check) = p.next_check(at(t)) {
                if check.backend == 0 {
                    p.check_done(check, true, at(t));
                }
            }
            if !p.is_up(1) && down_at.is_none() {
                down_at = Some(t);
            }
            t += 100;
        }
        let down_at = down_at.expect("backend 1 never left");
        assert!(down_at <= 6000, "left at {down_at} ms");
        assert!(p.is_up(0));
        assert_eq!(p.counters(1).unwrap().went_down, 1);
        // It answers again from t = 10 s: back after `rise` good checks.
        let mut up_at = None;
        while t <= 20_000 {
            run_checks(&mut p, at(t), |_| true);
            if p.is_up(1) && up_at.is_none() {
                up_at = Some(t);
            }
            t += 100;
        }
        let up_at = up_at.expect("backend 1 never came back");
        assert!(up_at <= 10_000 + 3000, "back at {up_at} ms");
        assert_eq!(p.counters(1).unwrap().came_up, 1);
        assert_eq!(p.counters(0).unwrap().went_down, 0);
    }

    #[test]
    fn fall_and_rise_need_streaks_in_a_row() {
        let mut p = Pool::new(
            &addrs(1),
            Balance::RoundRobin,
            HealthSettings::default(),
            at(0),
        );
        let mut t = 0;
        let mut step = |p: &mut Pool, ok: bool| {
            t += 2000;
            let c = p.next_check(at(t)).expect("a check is due");
            p.check_done(c, ok, at(t));
            p.is_up(0)
        };
        assert!(step(&mut p, false));
        assert!(step(&mut p, false));
        assert!(step(&mut p, true), "a success breaks the streak");
        assert!(step(&mut p, false));
        assert!(step(&mut p, false));
        assert!(!step(&mut p, false), "three in a row");
        assert!(!step(&mut p, true));
        assert!(!step(&mut p, false));
        assert!(!step(&mut p, true));
        assert!(step(&mut p, true), "two in a row");
    }

    #[test]
    fn late_results_of_timed_out_checks_are_ignored() {
        let mut p = Pool::new(
            &addrs(1),
            Balance::RoundRobin,
            HealthSettings::default(),
            at(0),
        );
        let old = p.next_check(at(0)).unwrap();
        assert_eq!(p.next_check(at(500)), None, "one check in flight at a time");
        assert_eq!(p.poll_at(), Some(at(1000)));
        // Timed out at 1 s, and the next check (fast interval after the first started) is
        // due at once.
        let c = p.next_check(at(1000)).unwrap();
        assert_eq!(p.counters(0).unwrap().check_failures, 1);
        p.check_done(old, true, at(1500));
        assert!(p.is_up(0));
        assert_ne!(c.token, old.token);
        assert_eq!(
            p.counters(0).unwrap().check_failures,
            1,
            "the late result changed nothing"
        );
    }
}
