//! The appliance at run time: one port per NIC, each a smoltcp interface holding the link's
//! addresses, answering ARP/NDP and ICMP echo (v4 and v6) and serving TCP echo (port 7);
//! plus the `vdcnet.ping=` prober.
//!
//! Sans-I/O in the sense that matters: the caller passes `now` and the devices in, and the
//! console to write to; nothing here reads a clock or touches hardware.

use crate::config::{Config, ConfigError, LinkConfig};
use alloc::format;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt::Write;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp};
use smoltcp::time::Instant;
use smoltcp::wire::{
    EthernetAddress, HardwareAddress, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr,
    IpAddress, IpCidr, Ipv6Address,
};
use vdcnet_hal::net::NetDevice;

/// The TCP echo service's port.
pub const ECHO_PORT: u16 = 7;
/// Concurrent TCP echo connections per link.
pub const ECHO_SOCKETS: usize = 8;
const ECHO_BUF: usize = 4096;
const PING_IDENT: u16 = 0x7664; // "vd"
const PING_INTERVAL_US: i64 = 1_000_000;
const MAX_FRAME: usize = 1514;
const ETH_HEADER: usize = 14;

/// What the boot code hands the appliance besides the config.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Seed for smoltcp (TCP initial sequence numbers, ports).
    pub seed: u64,
    /// Addresses to ping once a second (`vdcnet.ping=`).
    pub ping: Vec<IpAddress>,
}

/// Frames a port could not pass on, by reason.
#[derive(Clone, Copy, Debug, Default)]
pub struct PortCounters {
    pub rx_frames: u64,
    pub tx_frames: u64,
    /// Frames smoltcp produced when the NIC had no room (it was told there was).
    pub tx_dropped: u64,
}

/// A NIC as smoltcp sees it.
struct Wire<D> {
    dev: D,
    rx: [u8; MAX_FRAME],
    counters: PortCounters,
    /// Largest frame sent: the link's MTU plus the Ethernet header.
    max_frame: usize,
}

struct RxTok<'a> {
    frame: &'a [u8],
}

struct TxTok<'a, D> {
    dev: &'a mut D,
    counters: &'a mut PortCounters,
}

impl phy::RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl<D: NetDevice> phy::TxToken for TxTok<'_, D> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp's transmit is infallible; `transmit` only hands out a token when the NIC
        // has room, so `transmit_with` succeeds. If it ever does not, the frame is built in
        // scratch space and counted as dropped.
        let mut f = Some(f);
        let r = self.dev.transmit_with(len, |buf| f.take().map(|f| f(buf)));
        match r.flatten() {
            Some(r) => {
                self.counters.tx_frames += 1;
                r
            }
            None => {
                self.counters.tx_dropped += 1;
                let mut scratch = [0u8; MAX_FRAME];
                let len = len.min(MAX_FRAME);
                match f.take() {
                    Some(f) => f(&mut scratch[..len]),
                    None => unreachable_result(),
                }
            }
        }
    }
}

/// `transmit_with` returned `None` after calling the closure: impossible by its contract
/// (it calls `f` only for a frame it sends). Kept total without panicking.
fn unreachable_result<R>() -> R {
    // The closure was consumed, so a result exists only inside `transmit_with`; by the
    // NetDevice contract that path returned Some. Reaching here means a broken driver.
    loop {
        core::hint::spin_loop();
    }
}

impl<D: NetDevice> phy::Device for Wire<D> {
    type RxToken<'a>
        = RxTok<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxTok<'a, D>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(RxTok<'_>, TxTok<'_, D>)> {
        let Wire {
            dev, rx, counters, ..
        } = self;
        let n = dev.receive_with(|frame| {
            let n = frame.len().min(MAX_FRAME);
            rx[..n].copy_from_slice(&frame[..n]);
            n
        })?;
        counters.rx_frames += 1;
        Some((RxTok { frame: &rx[..n] }, TxTok { dev, counters }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxTok<'_, D>> {
        if !self.dev.can_transmit() {
            return None;
        }
        Some(TxTok {
            dev: &mut self.dev,
            counters: &mut self.counters,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.max_frame;
        caps.max_burst_size = Some(16);
        let mut cs = ChecksumCapabilities::default();
        cs.ipv4 = Checksum::Both;
        caps.checksum = cs;
        caps
    }
}

struct Probe {
    target: IpAddress,
    seq: u16,
    next_at: Instant,
}

/// One link: a NIC with its addresses and services.
struct Port<D> {
    wire: Wire<D>,
    iface: Interface,
    sockets: SocketSet<'static>,
    echo: Vec<SocketHandle>,
    icmp: Option<SocketHandle>,
    probes: Vec<Probe>,
    name: usize,
    /// Whether the link has a default route for IPv4, IPv6.
    gateways: (bool, bool),
}

/// The running appliance.
pub struct Appliance<D> {
    ports: Vec<Port<D>>,
}

fn eui64_link_local(mac: [u8; 6]) -> Ipv6Address {
    Ipv6Address::new(
        0xfe80,
        0,
        0,
        0,
        u16::from_be_bytes([mac[0] ^ 0x02, mac[1]]),
        u16::from_be_bytes([mac[2], 0xff]),
        u16::from_be_bytes([0xfe, mac[3]]),
        u16::from_be_bytes([mac[4], mac[5]]),
    )
}

fn err(line: usize, message: alloc::string::String) -> ConfigError {
    ConfigError { line, message }
}

impl<D: NetDevice> Appliance<D> {
    /// Binds each `[Link]` to a NIC (by `MACAddress`, else in order among the NICs left)
    /// and brings it up. Errors name the config line; all are reported together.
    pub fn new(
        config: &Config,
        nics: Vec<D>,
        opts: Options,
        now_us: u64,
    ) -> Result<Self, Vec<ConfigError>> {
        let now = Instant::from_micros(now_us as i64);
        let mut errors = Vec::new();
        let n_nics = nics.len();
        let mut slots: Vec<Option<D>> = nics.into_iter().map(Some).collect();
        let mut chosen: Vec<(usize, &LinkConfig)> = Vec::new();
        // Links pinned by MAC first, then the rest in order.
        for link in config.links.iter().filter(|l| l.mac.is_some()) {
            let want = link.mac.map(|m| m.0);
            match slots
                .iter()
                .position(|s| s.as_ref().map(|d| Some(d.mac_address())) == Some(want))
            {
                Some(i) => chosen.push((i, link)),
                None => errors.push(err(
                    link.line,
                    format!(
                        "no NIC has MACAddress {} (the VM has {n_nics} NIC(s))",
                        link.mac.unwrap_or_default()
                    ),
                )),
            }
        }
        let mut taken: Vec<usize> = chosen.iter().map(|c| c.0).collect();
        for link in config.links.iter().filter(|l| l.mac.is_none()) {
            match (0..slots.len()).find(|i| !taken.contains(i)) {
                Some(i) => {
                    taken.push(i);
                    chosen.push((i, link));
                }
                None => errors.push(err(
                    link.line,
                    format!("this [Link] has no NIC left to bind to (the VM has {n_nics} NIC(s))"),
                )),
            }
        }
        // A tunnel in the config must not be silently ignored: until the image carries the
        // WireGuard data path, such a config is refused.
        if let Some(i) = &config.interface {
            errors.push(err(
                i.line,
                "[Interface] (WireGuard) is not supported by this image yet; remove the [Interface] and [Peer] sections".into(),
            ));
        }
        for (i, link) in &chosen {
            let max = slots[*i].as_ref().map_or(MAX_FRAME, |d| d.max_frame_len()) - ETH_HEADER;
            if let Some(mtu) = link.mtu.filter(|&m| m as usize > max) {
                errors.push(err(
                    link.line,
                    format!("MTU {mtu} is larger than this NIC carries ({max})"),
                ));
            }
        }
        if !errors.is_empty() {
            errors.sort_by_key(|e| e.line);
            return Err(errors);
        }
        chosen.sort_by_key(|c| c.1.line);
        let mut ports = Vec::new();
        for (k, (i, link)) in chosen.into_iter().enumerate() {
            let Some(dev) = slots[i].take() else { continue };
            ports.push(Port::new(k, dev, link, &opts, now));
        }
        // Each ping target goes to the port whose subnet holds it, else one with a gateway
        // of its family.
        for target in &opts.ping {
            let on_link = ports
                .iter()
                .position(|p| p.iface.ip_addrs().iter().any(|c| c.contains_addr(target)));
            let via_gw = ports.iter().position(|p| p.has_gateway_for(target));
            match on_link.or(via_gw) {
                Some(i) => ports[i].add_probe(*target, now),
                None => errors.push(err(0, format!("vdcnet.ping={target}: no link reaches it"))),
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Appliance { ports })
    }

    /// Number of links up.
    pub fn links(&self) -> usize {
        self.ports.len()
    }

    /// Writes one line per link: name, MAC, addresses, gateways.
    pub fn describe(&self, out: &mut dyn Write) {
        for p in &self.ports {
            let m = p.wire.dev.mac_address();
            let _ = write!(
                out,
                "vdcnet: link{} {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                p.name, m[0], m[1], m[2], m[3], m[4], m[5]
            );
            for a in p.iface.ip_addrs() {
                let _ = write!(out, " {a}");
            }
            let _ = writeln!(out);
        }
    }

    /// Re-arms every NIC's interrupt before the CPU sleeps; `true` if a frame arrived
    /// meanwhile (poll again instead of sleeping).
    pub fn arm_interrupts(&mut self) -> bool {
        let mut pending = false;
        for p in &mut self.ports {
            pending |= p.wire.dev.arm_interrupt();
        }
        pending
    }

    /// Counters of every port, in link order.
    pub fn counters(&self) -> Vec<PortCounters> {
        self.ports.iter().map(|p| p.wire.counters).collect()
    }

    /// Does all the work there is at `now_us`: frames in and out, services, probes.
    /// Returns whether anything happened (the caller polls again at once instead of
    /// sleeping).
    pub fn poll(&mut self, now_us: u64, console: &mut dyn Write) -> bool {
        let now = Instant::from_micros(now_us as i64);
        let mut busy = false;
        for p in &mut self.ports {
            busy |= p.poll(now, console);
        }
        busy
    }
}

impl<D: NetDevice> Port<D> {
    fn new(name: usize, dev: D, link: &LinkConfig, opts: &Options, now: Instant) -> Port<D> {
        let mac = dev.mac_address();
        let max_frame = link
            .mtu
            .map_or(MAX_FRAME, |m| (m as usize + ETH_HEADER).min(MAX_FRAME));
        let mut wire = Wire {
            dev,
            rx: [0; MAX_FRAME],
            counters: PortCounters::default(),
            max_frame,
        };
        let mut cfg = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        cfg.random_seed = opts.seed ^ (name as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut iface = Interface::new(cfg, &mut wire, now);
        iface.update_ip_addrs(|addrs| {
            for a in &link.addresses {
                let _ = addrs.push(*a);
            }
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv6(eui64_link_local(mac)), 64));
        });
        if let Some(gw) = link.gateway_v4 {
            let _ = iface.routes_mut().add_default_ipv4_route(gw);
        }
        if let Some(gw) = link.gateway_v6 {
            let _ = iface.routes_mut().add_default_ipv6_route(gw);
        }
        let mut sockets = SocketSet::new(Vec::new());
        let mut echo = Vec::new();
        for _ in 0..ECHO_SOCKETS {
            let mut s = tcp::Socket::new(
                tcp::SocketBuffer::new(vec![0; ECHO_BUF]),
                tcp::SocketBuffer::new(vec![0; ECHO_BUF]),
            );
            let _ = s.listen(ECHO_PORT);
            echo.push(sockets.add(s));
        }
        let gateways = (link.gateway_v4.is_some(), link.gateway_v6.is_some());
        Port {
            wire,
            iface,
            sockets,
            echo,
            icmp: None,
            probes: Vec::new(),
            name,
            gateways,
        }
    }

    fn has_gateway_for(&self, target: &IpAddress) -> bool {
        match target {
            IpAddress::Ipv4(_) => self.gateways.0,
            IpAddress::Ipv6(_) => self.gateways.1,
        }
    }

    fn add_probe(&mut self, target: IpAddress, now: Instant) {
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

    fn poll(&mut self, now: Instant, console: &mut dyn Write) -> bool {
        let before = (self.wire.counters.rx_frames, self.wire.counters.tx_frames);
        self.iface.poll(now, &mut self.wire, &mut self.sockets);
        let mut busy = self.serve_echo();
        busy |= self.run_probes(now, console);
        if busy {
            self.iface.poll(now, &mut self.wire, &mut self.sockets);
        }
        busy || before != (self.wire.counters.rx_frames, self.wire.counters.tx_frames)
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

    fn run_probes(&mut self, now: Instant, console: &mut dyn Write) -> bool {
        let Some(h) = self.icmp else { return false };
        let mut busy = false;
        // Replies first.
        let addrs: Vec<IpCidr> = self.iface.ip_addrs().to_vec();
        let s = self.sockets.get_mut::<icmp::Socket>(h);
        let mut buf = [0u8; 256];
        while let Ok((n, from)) = s.recv_slice(&mut buf) {
            busy = true;
            let seq = match from {
                IpAddress::Ipv4(_) => Icmpv4Packet::new_checked(&buf[..n])
                    .ok()
                    .and_then(|p| Icmpv4Repr::parse(&p, &ChecksumCapabilities::default()).ok())
                    .and_then(|r| match r {
                        Icmpv4Repr::EchoReply {
                            ident: PING_IDENT,
                            seq_no,
                            ..
                        } => Some(seq_no),
                        _ => None,
                    }),
                IpAddress::Ipv6(src) => {
                    let dst = source_for(&addrs, &from).and_then(|a| match a {
                        IpAddress::Ipv6(a) => Some(a),
                        _ => None,
                    });
                    dst.and_then(|dst| {
                        Icmpv6Packet::new_checked(&buf[..n])
                            .ok()
                            .and_then(|p| {
                                Icmpv6Repr::parse(&src, &dst, &p, &ChecksumCapabilities::default())
                                    .ok()
                            })
                            .and_then(|r| match r {
                                Icmpv6Repr::EchoReply {
                                    ident: PING_IDENT,
                                    seq_no,
                                    ..
                                } => Some(seq_no),
                                _ => None,
                            })
                    })
                }
            };
            if let Some(seq) = seq {
                let _ = writeln!(console, "vdcnet: ping {from} seq={seq} reply");
            }
        }
        // Then requests that are due.
        for p in &mut self.probes {
            if now < p.next_at || !s.can_send() {
                continue;
            }
            p.next_at = now + smoltcp::time::Duration::from_micros(PING_INTERVAL_US as u64);
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
                        repr.emit(
                            &mut Icmpv4Packet::new_unchecked(b),
                            &ChecksumCapabilities::default(),
                        );
                        busy = true;
                    }
                }
                IpAddress::Ipv6(dst) => {
                    let Some(IpAddress::Ipv6(src)) = source_for(&addrs, &p.target) else {
                        continue;
                    };
                    let repr = Icmpv6Repr::EchoRequest {
                        ident: PING_IDENT,
                        seq_no: p.seq,
                        data,
                    };
                    if let Ok(b) = s.send(repr.buffer_len(), p.target) {
                        repr.emit(
                            &src,
                            &dst,
                            &mut Icmpv6Packet::new_unchecked(b),
                            &ChecksumCapabilities::default(),
                        );
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
fn source_for(addrs: &[IpCidr], dst: &IpAddress) -> Option<IpAddress> {
    addrs
        .iter()
        .find(|c| c.contains_addr(dst))
        .or_else(|| {
            addrs.iter().find(|c| {
                c.address().version() == dst.version()
                    && !matches!(c.address(), IpAddress::Ipv6(a) if a.is_unicast_link_local())
            })
        })
        .map(|c| c.address())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use smoltcp::wire::{
        ArpOperation, ArpPacket, ArpRepr, EthernetFrame, EthernetProtocol, EthernetRepr,
        IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr,
    };
    use std::cell::RefCell;
    use std::collections::VecDeque;
    use std::rc::Rc;

    #[derive(Default)]
    struct Queues {
        rx: VecDeque<Vec<u8>>,
        tx: Vec<Vec<u8>>,
    }

    /// An in-memory NIC: the test pushes frames in and reads what the appliance sent.
    struct MockNic {
        mac: [u8; 6],
        q: Rc<RefCell<Queues>>,
    }

    impl NetDevice for MockNic {
        fn mac_address(&self) -> [u8; 6] {
            self.mac
        }
        fn receive_with<R>(&mut self, f: impl FnOnce(&[u8]) -> R) -> Option<R> {
            let frame = self.q.borrow_mut().rx.pop_front()?;
            Some(f(&frame))
        }
        fn transmit_with<R>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> R) -> Option<R> {
            let mut buf = vec![0u8; len];
            let r = f(&mut buf);
            self.q.borrow_mut().tx.push(buf);
            Some(r)
        }
        fn can_transmit(&mut self) -> bool {
            true
        }
    }

    const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];

    fn nic(last: u8) -> (MockNic, Rc<RefCell<Queues>>) {
        let q = Rc::new(RefCell::new(Queues::default()));
        (
            MockNic {
                mac: [0x52, 0x54, 0, 0, 0, last],
                q: q.clone(),
            },
            q,
        )
    }

    fn boot(text: &str, nics: Vec<MockNic>) -> Result<Appliance<MockNic>, Vec<ConfigError>> {
        let cfg = config::parse(text.as_bytes()).expect("test config parses");
        Appliance::new(
            &cfg,
            nics,
            Options {
                seed: 1,
                ping: Vec::new(),
            },
            0,
        )
    }

    fn ethernet(
        dst: [u8; 6],
        proto: EthernetProtocol,
        payload_len: usize,
        fill: impl FnOnce(&mut [u8]),
    ) -> Vec<u8> {
        let repr = EthernetRepr {
            src_addr: EthernetAddress(PEER_MAC),
            dst_addr: EthernetAddress(dst),
            ethertype: proto,
        };
        let mut buf = vec![0u8; repr.buffer_len() + payload_len];
        let mut frame = EthernetFrame::new_unchecked(&mut buf[..]);
        repr.emit(&mut frame);
        fill(frame.payload_mut());
        buf
    }

    fn arp_request(target: Ipv4Address) -> Vec<u8> {
        let arp = ArpRepr::EthernetIpv4 {
            operation: ArpOperation::Request,
            source_hardware_addr: EthernetAddress(PEER_MAC),
            source_protocol_addr: Ipv4Address::new(10, 0, 2, 2),
            target_hardware_addr: EthernetAddress([0; 6]),
            target_protocol_addr: target,
        };
        ethernet([0xff; 6], EthernetProtocol::Arp, arp.buffer_len(), |p| {
            arp.emit(&mut ArpPacket::new_unchecked(p))
        })
    }

    fn echo_request(dst_mac: [u8; 6], dst: Ipv4Address) -> Vec<u8> {
        let icmp = Icmpv4Repr::EchoRequest {
            ident: 7,
            seq_no: 3,
            data: b"hello",
        };
        let ip = Ipv4Repr {
            src_addr: Ipv4Address::new(10, 0, 2, 2),
            dst_addr: dst,
            next_header: IpProtocol::Icmp,
            payload_len: icmp.buffer_len(),
            hop_limit: 64,
        };
        let caps = ChecksumCapabilities::default();
        ethernet(
            dst_mac,
            EthernetProtocol::Ipv4,
            ip.buffer_len() + icmp.buffer_len(),
            |p| {
                let mut pkt = Ipv4Packet::new_unchecked(p);
                ip.emit(&mut pkt, &caps);
                icmp.emit(&mut Icmpv4Packet::new_unchecked(pkt.payload_mut()), &caps);
            },
        )
    }

    fn run(app: &mut Appliance<MockNic>, from_us: u64) {
        let mut out = String::new();
        for t in 0..20 {
            app.poll(from_us + t * 1000, &mut out);
        }
    }

    #[test]
    fn arp_request_for_our_address_gets_a_reply_with_our_mac() {
        let (n, q) = nic(1);
        let mut app = boot("[Link]\nAddress = 10.0.2.15/24\n", vec![n]).unwrap();
        q.borrow_mut()
            .rx
            .push_back(arp_request(Ipv4Address::new(10, 0, 2, 15)));
        run(&mut app, 0);
        let tx = &q.borrow().tx;
        let reply = tx
            .iter()
            .filter_map(|f| EthernetFrame::new_checked(&f[..]).ok())
            .filter(|f| f.ethertype() == EthernetProtocol::Arp)
            .filter_map(|f| ArpRepr::parse(&ArpPacket::new_checked(f.payload()).ok()?).ok())
            .find(|a| {
                matches!(
                    a,
                    ArpRepr::EthernetIpv4 {
                        operation: ArpOperation::Reply,
                        ..
                    }
                )
            });
        match reply {
            Some(ArpRepr::EthernetIpv4 {
                source_hardware_addr,
                source_protocol_addr,
                ..
            }) => {
                assert_eq!(source_hardware_addr.0, [0x52, 0x54, 0, 0, 0, 1]);
                assert_eq!(source_protocol_addr, Ipv4Address::new(10, 0, 2, 15));
            }
            other => panic!("no ARP reply; got {other:?} among {} frames", tx.len()),
        }
    }

    #[test]
    fn icmp_echo_request_gets_an_echo_reply_with_the_same_data() {
        let (n, q) = nic(1);
        let mut app = boot("[Link]\nAddress = 10.0.2.15/24\n", vec![n]).unwrap();
        // Teach it the peer's MAC first so the reply needs no ARP round.
        q.borrow_mut()
            .rx
            .push_back(arp_request(Ipv4Address::new(10, 0, 2, 15)));
        q.borrow_mut().rx.push_back(echo_request(
            [0x52, 0x54, 0, 0, 0, 1],
            Ipv4Address::new(10, 0, 2, 15),
        ));
        run(&mut app, 0);
        let caps = ChecksumCapabilities::default();
        let found = q.borrow().tx.iter().any(|f| {
            let Ok(eth) = EthernetFrame::new_checked(&f[..]) else {
                return false;
            };
            let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
                return false;
            };
            let Ok(icmp) = Icmpv4Packet::new_checked(ip.payload()) else {
                return false;
            };
            matches!(Icmpv4Repr::parse(&icmp, &caps),
                Ok(Icmpv4Repr::EchoReply { ident: 7, seq_no: 3, data }) if data == b"hello")
                && eth.dst_addr().0 == PEER_MAC
        });
        assert!(found, "no echo reply among {} frames", q.borrow().tx.len());
    }

    #[test]
    fn echo_request_for_another_address_is_not_answered() {
        let (n, q) = nic(1);
        let mut app = boot("[Link]\nAddress = 10.0.2.15/24\n", vec![n]).unwrap();
        q.borrow_mut().rx.push_back(echo_request(
            [0x52, 0x54, 0, 0, 0, 1],
            Ipv4Address::new(10, 0, 2, 99),
        ));
        run(&mut app, 0);
        assert!(q
            .borrow()
            .tx
            .iter()
            .all(|f| EthernetFrame::new_checked(&f[..])
                .map(|e| e.ethertype() != EthernetProtocol::Ipv4)
                .unwrap_or(true)));
        assert_eq!(app.counters()[0].rx_frames, 1);
    }

    #[test]
    fn garbage_frames_are_received_and_dropped_without_panic() {
        let (n, q) = nic(1);
        let mut app = boot("[Link]\nAddress = 10.0.2.15/24\n", vec![n]).unwrap();
        let mut seed = 0x1234_5678_u64;
        for len in [0usize, 1, 13, 14, 15, 60, 100, 1514] {
            let mut f = vec![0u8; len];
            for b in f.iter_mut() {
                seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                *b = (seed >> 33) as u8;
            }
            if len >= 14 {
                f[12..14].copy_from_slice(&[0x08, 0x00]); // claim IPv4
            }
            q.borrow_mut().rx.push_back(f);
        }
        run(&mut app, 0);
        assert_eq!(app.counters()[0].rx_frames, 8);
    }

    #[test]
    fn links_bind_by_mac_first_then_in_nic_order() {
        let (a, _) = nic(1);
        let (b, _) = nic(2);
        let (c, _) = nic(3);
        let app = boot(
            "[Link]\nAddress = 10.0.1.1/24\n[Link]\nMACAddress = 52:54:00:00:00:01\nAddress = 10.0.2.1/24\n[Link]\nAddress = 10.0.3.1/24\n",
            vec![a, b, c],
        )
        .unwrap();
        let mut out = String::new();
        app.describe(&mut out);
        let lines: Vec<&str> = out.lines().collect();
        assert!(
            lines[0].contains("52:54:00:00:00:02") && lines[0].contains("10.0.1.1/24"),
            "{out}"
        );
        assert!(
            lines[1].contains("52:54:00:00:00:01") && lines[1].contains("10.0.2.1/24"),
            "{out}"
        );
        assert!(
            lines[2].contains("52:54:00:00:00:03") && lines[2].contains("10.0.3.1/24"),
            "{out}"
        );
    }

    #[test]
    fn more_links_than_nics_is_an_error_naming_each_unbound_link() {
        let (a, _) = nic(1);
        let errors = boot(
            "[Link]\nAddress = 10.0.1.1/24\n[Link]\nAddress = 10.0.2.1/24\n[Link]\nMACAddress = 52:54:00:00:00:09\nAddress = 10.0.3.1/24\n",
            vec![a],
        )
        .err()
        .expect("must fail");
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![3, 5]);
        assert!(errors[1].message.contains("MACAddress"), "{:?}", errors);
    }

    #[test]
    fn a_tunnel_section_is_refused_rather_than_ignored() {
        let (a, _) = nic(1);
        let text = "[Link]\nAddress = 10.0.1.1/24\n[Interface]\nPrivateKey = dwdtCnMYpX08FsFyUbJmRQf+wxDjbUDzgM4DWJc3rN0=\n";
        let errors = boot(text, vec![a]).err().expect("must fail");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].line, 3);
    }

    #[test]
    fn an_mtu_above_what_the_nic_carries_is_an_error() {
        let (a, _) = nic(1);
        let errors = boot("[Link]\nAddress = 10.0.1.1/24\nMTU = 9000\n", vec![a])
            .err()
            .expect("must fail");
        assert_eq!(errors[0].line, 1);
        assert!(errors[0].message.contains("MTU 9000"));
    }
}
