//! Which gateways are alive, and which of their services can serve: the gateway status
//! exchange over the mesh, sans-I/O.
//!
//! Every gateway answers a status request on [`STATUS_PORT`] (UDP, on its addresses in
//! the VDC only) with one datagram of text lines:
//!
//! ```text
//! vdcnet-gw 1
//! public 203.0.113.10
//! public 2001:db8::10
//! service www.example.org up
//! service *.shop.example.org down
//! ```
//!
//! A service is `up` while one of its backends is in the rotation. [`GatewayPeers`] asks
//! each `Peer` of the `[Gateway]` section every [`POLL_INTERVAL`]; a peer that has not
//! answered for [`DEAD_AFTER`] is dead (a killed VM leaves the answers within that time)
//! and comes back with its next answer. Answers are checked line by line; a bad one is
//! refused whole and counted, and only answers from a configured peer are read.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write;
use core::net::{IpAddr, SocketAddr};

use smoltcp::time::{Duration, Instant};

use super::names::NamePattern;

/// The UDP port of the status exchange.
pub const STATUS_PORT: u16 = 9655;
/// How often each peer is asked.
pub const POLL_INTERVAL: Duration = Duration::from_millis(1000);
/// A peer silent this long is dead.
pub const DEAD_AFTER: Duration = Duration::from_millis(3500);
/// The request: exactly these bytes.
pub const REQUEST: &[u8] = b"vdcnet-gw 1 status?\n";
/// The most an answer may hold (it fits one datagram on any tunnel).
pub const MAX_ANSWER: usize = 1200;
/// Public addresses read from one answer.
pub const MAX_PUBLIC: usize = 8;
/// Services read from one answer.
pub const MAX_SERVICES: usize = 64;

/// Why an answer was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadAnswer {
    /// Not from a configured peer.
    Stranger,
    /// Over [`MAX_ANSWER`], not UTF-8, a wrong first line, or a line that does not read.
    Malformed,
    /// More public addresses or services than allowed.
    TooMany,
}

/// What the exchange counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerCounters {
    /// Requests sent.
    pub polls: u64,
    /// Good answers read.
    pub answers: u64,
    /// Answers refused, by [`BadAnswer`].
    pub strangers: u64,
    /// See `strangers`.
    pub malformed: u64,
    /// See `strangers`.
    pub too_many: u64,
    /// Times a peer went from alive to dead.
    pub deaths: u64,
}

/// One peer gateway as last heard.
#[derive(Debug, Clone)]
pub struct PeerGateway {
    /// Where it is asked (its address in the VDC, [`STATUS_PORT`]).
    pub addr: SocketAddr,
    /// The public addresses it serves.
    pub public: Vec<IpAddr>,
    /// Its services (as configured there) and whether each can serve.
    pub services: Vec<(String, bool)>,
    last_answer: Option<Instant>,
    next_poll: Instant,
    alive: bool,
}

impl PeerGateway {
    /// Whether it answered within [`DEAD_AFTER`] of `now`.
    pub fn is_alive(&self, now: Instant) -> bool {
        self.last_answer.is_some_and(|t| now < t + DEAD_AFTER)
    }

    /// Whether it is alive and its service named `name` (as configured) can serve.
    pub fn serves(&self, name: &str, now: Instant) -> bool {
        self.is_alive(now) && self.services.iter().any(|(n, up)| *up && n == name)
    }
}

/// The peers of one gateway.
#[derive(Debug, Clone)]
pub struct GatewayPeers {
    peers: Vec<PeerGateway>,
    counters: PeerCounters,
}

impl GatewayPeers {
    /// The peers at these addresses; the first polls are due at `now`.
    pub fn new(addrs: &[IpAddr], now: Instant) -> GatewayPeers {
        GatewayPeers {
            peers: addrs
                .iter()
                .map(|&ip| PeerGateway {
                    addr: SocketAddr::new(ip, STATUS_PORT),
                    public: Vec::new(),
                    services: Vec::new(),
                    last_answer: None,
                    next_poll: now,
                    alive: false,
                })
                .collect(),
            counters: PeerCounters::default(),
        }
    }

    /// The peers.
    pub fn peers(&self) -> &[PeerGateway] {
        &self.peers
    }

    /// The counters.
    pub fn counters(&self) -> PeerCounters {
        self.counters
    }

    /// The next peer to send [`REQUEST`] to now, if one is due; call until `None`. Also
    /// notes peers that just died.
    pub fn due(&mut self, now: Instant) -> Option<SocketAddr> {
        for p in &mut self.peers {
            if p.alive && !p.is_alive(now) {
                p.alive = false;
                self.counters.deaths += 1;
            }
        }
        let p = self.peers.iter_mut().find(|p| now >= p.next_poll)?;
        p.next_poll = now + POLL_INTERVAL;
        self.counters.polls += 1;
        Some(p.addr)
    }

    /// When [`GatewayPeers::due`] next has something to do.
    pub fn poll_at(&self) -> Option<Instant> {
        self.peers.iter().map(|p| p.next_poll).min()
    }

    /// An answer from `from`.
    pub fn answer(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        now: Instant,
    ) -> Result<(), BadAnswer> {
        let r = match self.peers.iter().position(|p| p.addr == from) {
            None => Err(BadAnswer::Stranger),
            Some(i) => parse_answer(bytes).map(|(public, services)| {
                let p = &mut self.peers[i];
                p.public = public;
                p.services = services;
                p.last_answer = Some(now);
                p.alive = true;
            }),
        };
        let c = &mut self.counters;
        match r {
            Ok(()) => c.answers += 1,
            Err(BadAnswer::Stranger) => c.strangers += 1,
            Err(BadAnswer::Malformed) => c.malformed += 1,
            Err(BadAnswer::TooMany) => c.too_many += 1,
        }
        r
    }

    /// The public addresses of the live peers whose service `name` can serve.
    pub fn serving<'a>(&'a self, name: &'a str, now: Instant) -> impl Iterator<Item = IpAddr> + 'a {
        self.peers
            .iter()
            .filter(move |p| p.serves(name, now))
            .flat_map(|p| p.public.iter().copied())
    }
}

/// This gateway's answer to a status request: its public addresses and services.
pub fn write_answer<'a>(
    public: &[IpAddr],
    services: impl Iterator<Item = (&'a NamePattern, bool)>,
    out: &mut String,
) {
    out.clear();
    out.push_str("vdcnet-gw 1\n");
    for a in public.iter().take(MAX_PUBLIC) {
        let _ = writeln!(out, "public {a}");
    }
    let mut line = String::new();
    for (name, up) in services.take(MAX_SERVICES) {
        line.clear();
        let _ = writeln!(line, "service {name} {}", if up { "up" } else { "down" });
        if out.len() + line.len() > MAX_ANSWER {
            break;
        }
        out.push_str(&line);
    }
}

type Parsed = (Vec<IpAddr>, Vec<(String, bool)>);

fn parse_answer(bytes: &[u8]) -> Result<Parsed, BadAnswer> {
    if bytes.len() > MAX_ANSWER {
        return Err(BadAnswer::Malformed);
    }
    let text = core::str::from_utf8(bytes).map_err(|_| BadAnswer::Malformed)?;
    let mut lines = text.lines();
    if lines.next() != Some("vdcnet-gw 1") {
        return Err(BadAnswer::Malformed);
    }
    let mut public = Vec::new();
    let mut services = Vec::new();
    for line in lines {
        let mut words = line.split(' ');
        match (words.next(), words.next(), words.next(), words.next()) {
            (Some("public"), Some(addr), None, None) => {
                let addr: IpAddr = addr.parse().map_err(|_| BadAnswer::Malformed)?;
                if public.len() >= MAX_PUBLIC {
                    return Err(BadAnswer::TooMany);
                }
                public.push(addr);
            }
            (Some("service"), Some(name), Some(state), None) => {
                let up = match state {
                    "up" => true,
                    "down" => false,
                    _ => return Err(BadAnswer::Malformed),
                };
                // The name as that gateway's config spells it; checked like ours.
                let name = NamePattern::parse(name).map_err(|_| BadAnswer::Malformed)?;
                if services.len() >= MAX_SERVICES {
                    return Err(BadAnswer::TooMany);
                }
                services.push((alloc::string::ToString::to_string(&name), up));
            }
            _ => return Err(BadAnswer::Malformed),
        }
    }
    Ok((public, services))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn at(ms: i64) -> Instant {
        Instant::from_millis(ms)
    }

    fn peer() -> SocketAddr {
        SocketAddr::new("10.20.2.1".parse().unwrap(), STATUS_PORT)
    }

    #[test]
    fn an_answer_written_by_one_gateway_is_read_by_another() {
        let www = NamePattern::parse("www.example.org").unwrap();
        let shop = NamePattern::parse("*.shop.example.org").unwrap();
        let mut text = String::new();
        let public = [
            "203.0.113.10".parse().unwrap(),
            "2001:db8::10".parse().unwrap(),
        ];
        write_answer(
            &public,
            [(&www, true), (&shop, false)].into_iter(),
            &mut text,
        );
        let mut peers = GatewayPeers::new(&[peer().ip()], at(0));
        assert_eq!(peers.due(at(0)), Some(peer()));
        assert_eq!(peers.due(at(0)), None, "one poll per interval");
        peers.answer(peer(), text.as_bytes(), at(10)).unwrap();
        let serving: Vec<IpAddr> = peers.serving("www.example.org", at(20)).collect();
        assert_eq!(serving, public);
        assert_eq!(
            peers.serving("*.shop.example.org", at(20)).count(),
            0,
            "its backends are down"
        );
        assert_eq!(peers.serving("other.example.org", at(20)).count(), 0);
    }

    #[test]
    fn a_silent_peer_dies_after_its_deadline_and_comes_back_with_its_next_answer() {
        let www = NamePattern::parse("www.example.org").unwrap();
        let mut text = String::new();
        write_answer(
            &["203.0.113.10".parse().unwrap()],
            [(&www, true)].into_iter(),
            &mut text,
        );
        let mut peers = GatewayPeers::new(&[peer().ip()], at(0));
        peers.answer(peer(), text.as_bytes(), at(0)).unwrap();
        assert!(peers.peers()[0].is_alive(at(3000)));
        let dead = DEAD_AFTER.total_millis() as i64;
        assert!(!peers.peers()[0].is_alive(at(dead)));
        peers.due(at(dead));
        assert_eq!(peers.counters().deaths, 1);
        assert_eq!(peers.serving("www.example.org", at(dead)).count(), 0);
        peers
            .answer(peer(), text.as_bytes(), at(dead + 500))
            .unwrap();
        assert_eq!(peers.serving("www.example.org", at(dead + 600)).count(), 1);
    }

    #[test]
    fn bad_answers_and_strangers_are_refused_and_counted() {
        let mut peers = GatewayPeers::new(&[peer().ip()], at(0));
        let stranger = SocketAddr::new("10.20.9.9".parse().unwrap(), STATUS_PORT);
        let good = b"vdcnet-gw 1\npublic 203.0.113.10\n";
        assert_eq!(
            peers.answer(stranger, good, at(0)),
            Err(BadAnswer::Stranger)
        );
        for bad in [
            &b"vdcnet-gw 2\n"[..],
            b"vdcnet-gw 1\npublic nope\n",
            b"vdcnet-gw 1\nservice www.example.org maybe\n",
            b"vdcnet-gw 1\nservice a*b up\n",
            b"vdcnet-gw 1\nextra line here\n",
            b"\xff\xfe",
        ] {
            assert_eq!(
                peers.answer(peer(), bad, at(0)),
                Err(BadAnswer::Malformed),
                "{bad:?}"
            );
        }
        let mut many = String::from("vdcnet-gw 1\n");
        for i in 0..=MAX_PUBLIC {
            let _ = writeln!(many, "public 10.0.0.{i}");
        }
        assert_eq!(
            peers.answer(peer(), many.as_bytes(), at(0)),
            Err(BadAnswer::TooMany)
        );
        let huge = vec![b'a'; MAX_ANSWER + 1];
        assert_eq!(
            peers.answer(peer(), &huge, at(0)),
            Err(BadAnswer::Malformed)
        );
        let c = peers.counters();
        assert_eq!(
            (c.strangers, c.malformed, c.too_many, c.answers),
            (1, 7, 1, 0)
        );
        assert!(!peers.peers()[0].is_alive(at(1)), "nothing good was heard");
    }

    #[test]
    fn an_answer_stays_within_one_datagram_however_many_services() {
        let names: Vec<NamePattern> = (0..200)
            .map(|i| {
                NamePattern::parse(&alloc::format!(
                    "service-number-{i}.a-rather-long-zone.example.org"
                ))
                .unwrap()
            })
            .collect();
        let mut text = String::new();
        write_answer(&[], names.iter().map(|n| (n, true)), &mut text);
        assert!(text.len() <= MAX_ANSWER, "{}", text.len());
        assert!(parse_answer(text.as_bytes()).is_ok());
    }
}
