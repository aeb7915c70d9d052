//! What the appliance serves and dials on an interface: TCP echo (port 7) and the
//! `vdcnet.ping=` prober. Used on every link and on the tunnel's overlay interface.

use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use smoltcp::iface::{Interface, SocketHandle, SocketSet};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpCidr};

/// The TCP echo service's port.
pub const ECHO_PORT: u16 = 7;
/// Concurrent TCP echo connections per interface.
pub const ECHO_SOCKETS: usize = 8;
const ECHO_BUF: usize = 4096;
const PING_IDENT: u16 = 0x7664; // "vd"
const PING_INTERVAL: Duration = Duration::from_secs(1);

struct Probe {
    target: IpAddress,
    seq: u16,
    next_at: Instant,
}

/// The sockets of one interface's services.
pub(crate) struct Services {
    pub sockets: SocketSet<'static>,
    echo: Vec<SocketHandle>,
    icmp: Option<SocketHandle>,
    probes: Vec<Probe>,
}

impl Services {
    /// TCP echo listening on [`ECHO_PORT`], no probes yet; room for `sockets` sockets in
    /// all before the set grows.
    pub fn with_capacity(sockets: usize) -> Services {
        let mut sockets = SocketSet::new(Vec::with_capacity(sockets));
        let mut echo = Vec::new();
        for _ in 0..ECHO_SOCKETS {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; ECHO_BUF]),
                tcp::SocketBuffer::new(vec![0; ECHO_BUF]),
            );
            let _ = s.listen(ECHO_PORT);
            echo.push(sockets.add(s));
        }
        Services {
            sockets,
            echo,
            icmp: None,
            probes: Vec::new(),
        }
    }

    /// Starts pinging `target` once a second from `now`.
    pub fn add_probe(&mut self, target: IpAddress, now: Instant) {
        if self.icmp.is_none() {
            let mut s = icmp::Socket::new(
                icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 1024]),
                icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; 1024]),
            );
            let _ = s.bind(icmp::Endpoint::Ident(PING_IDENT));
            self.icmp = Some(self.sockets.add(s));
        }
        self.probes.push(Probe {
            target,
            seq: 0,
            next_at: now,
        });
    }

    /// Runs the services after the interface was polled; `true` if they queued anything
    /// (poll the interface again to send it).
    pub fn run(&mut self, iface: &Interface, now: Instant, console: &mut dyn Write) -> bool {
        let moved = self.serve_echo();
        moved | self.run_probes(iface, now, console)
    }

    /// Moves what each echo connection received back into its send buffer; re-listens on
    /// closed sockets.
    fn serve_echo(&mut self) -> bool {
        let mut moved = false;
        for &h in &self.echo {
            let s = self.sockets.get_mut::<tcp::Socket>(h);
            if !s.is_open() {
                let _ = s.listen(ECHO_PORT);
                continue;
            }
            let mut chunk = [0u8; 1024];
            while s.can_recv() && s.can_send() {
                let room = (s.send_capacity() - s.send_queue()).min(chunk.len());
                if room == 0 {
                    break;
                }
                let n = match s.recv_slice(&mut chunk[..room]) {
                    Ok(n) if n > 0 => n,
                    _ => break,
                };
                let _ = s.send_slice(&chunk[..n]);
                moved = true;
            }
            // The peer closed and everything was echoed: close our side too.
            if !s.may_recv() && s.recv_queue() == 0 && s.state() == tcp::State::CloseWait {
                s.close();
                moved = true;
            }
        }
        moved
    }

    fn run_probes(&mut self, iface: &Interface, now: Instant, console: &mut dyn Write) -> bool {
        let Some(h) = self.icmp else { return false };
        let mut busy = false;
        let addrs = iface.ip_addrs();
        let caps = ChecksumCapabilities::default();
        let s = self.sockets.get_mut::<icmp::Socket>(h);
        let mut buf = [0u8; 256];
        // Replies first.
        while let Ok((n, from)) = s.recv_slice(&mut buf) {
            busy = true;
            let seq = match from {
                IpAddress::Ipv4(_) => Icmpv4Packet::new_checked(&buf[..n])
                    .ok()
                    .and_then(|p| Icmpv4Repr::parse(&p, &caps).ok())
                    .and_then(|r| match r {
                        Icmpv4Repr::EchoReply {
                            ident: PING_IDENT,
                            seq_no,
                            ..
                        } => Some(seq_no),
                        _ => None,
                    }),
                IpAddress::Ipv6(src) => match source_for(addrs, &from) {
                    Some(IpAddress::Ipv6(dst)) => Icmpv6Packet::new_checked(&buf[..n])
                        .ok()
                        .and_then(|p| Icmpv6Repr::parse(&src, &dst, &p, &caps).ok())
                        .and_then(|r| match r {
                            Icmpv6Repr::EchoReply {
                                ident: PING_IDENT,
                                seq_no,
                                ..
                            } => Some(seq_no),
                            _ => None,
                        }),
                    _ => None,
                },
            };
            if let Some(seq) = seq {
                let _ = writeln!(console, "vdcnet: ping {from} seq={seq} reply");
            }
        }
        // Then the requests that are due.
        for p in &mut self.probes {
            if now < p.next_at || !s.can_send() {
                continue;
            }
            p.next_at = now + PING_INTERVAL;
            p.seq = p.seq.wrapping_add(1);
            let data = b"vdcnet ping";
            match p.target {
                IpAddress::Ipv4(_) => {
                    let repr = Icmpv4Repr::EchoRequest {
                        ident: PING_IDENT,
                        seq_no: p.seq,
                        data,
                    };
                    if let Ok(b) = s.send(repr.buffer_len(), p.target) {
                        repr.emit(&mut Icmpv4Packet::new_unchecked(b), &caps);
                        busy = true;
                    }
                }
                IpAddress::Ipv6(dst) => {
                    let Some(IpAddress::Ipv6(src)) = source_for(addrs, &p.target) else {
                        continue;
                    };
                    let repr = Icmpv6Repr::EchoRequest {
                        ident: PING_IDENT,
                        seq_no: p.seq,
                        data,
                    };
                    if let Ok(b) = s.send(repr.buffer_len(), p.target) {
                        repr.emit(&src, &dst, &mut Icmpv6Packet::new_unchecked(b), &caps);
                        busy = true;
                    }
                }
            }
        }
        busy
    }
}

/// The address of ours a packet to `dst` leaves from: one in the same subnet, else the
/// first global one of the same family.
/// A destination inside the Planetary Network's 400::/7 gets a source inside it too (the
/// node's address), and any other destination one outside it.
pub(crate) fn source_for(addrs: &[IpCidr], dst: &IpAddress) -> Option<IpAddress> {
    let overlay = |a: &IpAddress| match a {
        IpAddress::Ipv6(a) => crate::mycelium::global_subnet().contains(*a),
        IpAddress::Ipv4(_) => false,
    };
    addrs
        .iter()
        .find(|c| c.contains_addr(dst))
        .or_else(|| {
            addrs.iter().find(|c| {
                c.address().version() == dst.version()
                    && overlay(&c.address()) == overlay(dst)
                    && !matches!(c.address(), IpAddress::Ipv6(a) if a.is_unicast_link_local())
            })
        })
        .map(|c| c.address())
}
