//! Host tests of the forwarding plane: two appliances, each with an underlay NIC (wired to
//! the other's) and a segment NIC with one simulated workload host behind it.

use super::*;
use crate::config;
use crate::tunnel::PrivateKey;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    Icmpv4Packet, Icmpv6Packet, Icmpv6Repr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv6Address,
    Ipv6Packet, NdiscNeighborFlags, NdiscRepr, UdpPacket,
};
use std::cell::RefCell;
use std::rc::Rc;
use std::string::String;
use std::vec::Vec;

use super::test_nic::{MockNic as Nic, Queues};

type App = Appliance<Nic, rand_core::OsRng>;

fn router_mac(node: u8, nic: u8) -> [u8; 6] {
    [0x52, 0x54, 0, 0, node, nic]
}

fn host_mac(node: u8) -> [u8; 6] {
    [0x02, 0, 0, 0, node, 0x10]
}

fn host_v4(node: u8) -> Ipv4Address {
    Ipv4Address::new(10, 20, node, 10)
}

fn host_v6(node: u8) -> Ipv6Address {
    Ipv6Address::new(0xfd20, 0, 0, node as u16, 0, 0, 0, 0x10)
}

fn router_v4(node: u8) -> Ipv4Address {
    Ipv4Address::new(10, 20, node, 1)
}

/// A workload host on a segment: answers ARP and NS for its addresses, keeps every IP
/// packet it receives.
struct Host {
    node: u8,
    q: Rc<RefCell<Queues>>,
    inbox: Vec<Vec<u8>>,
}

impl Host {
    fn service(&mut self) {
        let frames: Vec<Vec<u8>> = self.q.borrow_mut().tx.drain(..).collect();
        for f in frames {
            let eth = EthernetFrame::new_checked(&f[..]).unwrap();
            match eth.ethertype() {
                EthernetProtocol::Arp => {
                    let ip = host_v4(self.node);
                    if let Some((to, b)) =
                        super::test_nic::arp_reply(eth.payload(), ip, host_mac(self.node))
                    {
                        self.send(to, EthernetProtocol::Arp, &b)
                    }
                }
                EthernetProtocol::Ipv6 if self.answer_ns(eth.payload()) => {}
                EthernetProtocol::Ipv4 | EthernetProtocol::Ipv6 => {
                    self.inbox.push(eth.payload().to_vec())
                }
                _ => {}
            }
        }
    }

    fn answer_ns(&mut self, pkt: &[u8]) -> bool {
        let ip = Ipv6Packet::new_checked(pkt).unwrap();
        if ip.next_header() != IpProtocol::Icmpv6 {
            return false;
        }
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        let Ok(Icmpv6Repr::Ndisc(repr)) = Icmpv6Repr::parse(
            &ip.src_addr(),
            &ip.dst_addr(),
            &icmp,
            &ChecksumCapabilities::default(),
        ) else {
            return false;
        };
        if let NdiscRepr::NeighborSolicit { target_addr, .. } = repr {
            if target_addr == host_v6(self.node) {
                let na = Icmpv6Repr::Ndisc(NdiscRepr::NeighborAdvert {
                    flags: NdiscNeighborFlags::SOLICITED | NdiscNeighborFlags::OVERRIDE,
                    target_addr,
                    lladdr: Some(EthernetAddress(host_mac(self.node)).into()),
                });
                let mut b = vec![0u8; 40 + na.buffer_len()];
                crate::router::packet::write_ipv6(
                    &mut b,
                    target_addr,
                    ip.src_addr(),
                    IpProtocol::Icmpv6,
                    na.buffer_len(),
                    255,
                );
                na.emit(
                    &target_addr,
                    &ip.src_addr(),
                    &mut Icmpv6Packet::new_unchecked(&mut b[40..]),
                    &ChecksumCapabilities::default(),
                );
                self.send(router_mac(self.node, 2), EthernetProtocol::Ipv6, &b);
            }
        }
        matches!(
            repr,
            NdiscRepr::NeighborSolicit { .. }
                | NdiscRepr::RouterAdvert { .. }
                | NdiscRepr::NeighborAdvert { .. }
        )
    }

    fn send(&self, dst: [u8; 6], ty: EthernetProtocol, payload: &[u8]) {
        let mut f = vec![0u8; 14 + payload.len()];
        crate::router::packet::write_eth(
            &mut f,
            EthernetAddress(dst),
            EthernetAddress(host_mac(self.node)),
            ty,
        );
        f[14..].copy_from_slice(payload);
        self.q.borrow_mut().rx.push_back(f);
    }

    /// Sends an IP packet to the appliance (its default router).
    fn send_ip(&self, pkt: &[u8]) {
        let ty = if pkt[0] >> 4 == 6 {
            EthernetProtocol::Ipv6
        } else {
            EthernetProtocol::Ipv4
        };
        self.send(router_mac(self.node, 2), ty, pkt);
    }

    fn take_inbox(&mut self) -> Vec<Vec<u8>> {
        core::mem::take(&mut self.inbox)
    }
}

/// A UDP datagram over IPv4 with `len` bytes of payload, checksummed.
fn udp4(src: Ipv4Address, dst: Ipv4Address, len: usize, ttl: u8, df: bool) -> Vec<u8> {
    use crate::router::packet::*;
    let mut p = vec![0u8; IPV4_HEADER + UDP_HEADER + len];
    for (i, b) in p[IPV4_HEADER + UDP_HEADER..].iter_mut().enumerate() {
        *b = i as u8;
    }
    write_udp(&mut p[IPV4_HEADER..], 4000, 5000, len);
    udp4_checksum(&mut p[IPV4_HEADER..], &src, &dst);
    write_ipv4(&mut p, src, dst, IpProtocol::Udp, UDP_HEADER + len, ttl);
    if df {
        p[6] = 0x40;
        set_ipv4_checksum(&mut p[..IPV4_HEADER]);
    }
    p
}

fn udp6(src: Ipv6Address, dst: Ipv6Address, len: usize, hops: u8) -> Vec<u8> {
    use crate::router::packet::*;
    let mut p = vec![0u8; IPV6_HEADER + UDP_HEADER + len];
    write_udp(&mut p[IPV6_HEADER..], 4000, 5000, len);
    udp6_checksum(&mut p[IPV6_HEADER..], &src, &dst);
    write_ipv6(&mut p, src, dst, IpProtocol::Udp, UDP_HEADER + len, hops);
    p
}

fn keypair() -> (String, String) {
    let k = PrivateKey::generate(&mut rand_core::OsRng);
    let public = crate::config::PublicKey(k.public_key().0).to_string();
    (STANDARD.encode(*k.to_bytes()), public)
}

fn node_config(
    me: u8,
    other: u8,
    private: &str,
    peer_public: &str,
    extra_underlay: &str,
) -> String {
    format!(
        "[Link]\nAddress = 192.168.0.{me}/24\n{extra_underlay}\
         [Link]\nRole = segment\nAddress = 10.20.{me}.1/24, fd20:0:0:{me}::1/64\n\
         [Interface]\nPrivateKey = {private}\n\
         [Peer]\nPublicKey = {peer_public}\nEndpoint = 192.168.0.{other}:51820\n\
         AllowedIPs = 10.20.{other}.0/24, fd20:0:0:{other}::/64\n"
    )
}

struct Mesh {
    apps: [App; 2],
    wan: [Rc<RefCell<Queues>>; 2],
    hosts: [Host; 2],
    /// Every frame that crossed the underlay.
    underlay: Vec<Vec<u8>>,
    console: String,
    t: u64,
}

impl Mesh {
    fn new(extra_underlay: &str) -> Mesh {
        let keys = [keypair(), keypair()];
        let mut apps = Vec::new();
        let mut wan = Vec::new();
        let mut hosts = Vec::new();
        for (me, other) in [(1u8, 2u8), (2, 1)] {
            let text = node_config(
                me,
                other,
                &keys[me as usize - 1].0,
                &keys[other as usize - 1].1,
                extra_underlay,
            );
            let cfg = config::parse(text.as_bytes()).expect("config parses");
            let qw = Rc::new(RefCell::new(Queues::default()));
            let qs = Rc::new(RefCell::new(Queues::default()));
            let nics = vec![
                Nic {
                    mac: router_mac(me, 1),
                    q: qw.clone(),
                },
                Nic {
                    mac: router_mac(me, 2),
                    q: qs.clone(),
                },
            ];
            let opts = Options {
                seed: me as u64,
                ..Options::default()
            };
            apps.push(Appliance::new(&cfg, nics, opts, Some(rand_core::OsRng), 0).unwrap());
            wan.push(qw);
            hosts.push(Host {
                node: me,
                q: qs,
                inbox: Vec::new(),
            });
        }
        let mut m = Mesh {
            apps: apps.try_into().ok().unwrap(),
            wan: wan.try_into().ok().unwrap(),
            hosts: hosts.try_into().ok().unwrap(),
            underlay: Vec::new(),
            console: String::new(),
            t: 0,
        };
        // Handshake (a packet from host 1 triggers it) and neighbour discovery.
        m.hosts[0].send_ip(&udp4(host_v4(1), host_v4(2), 10, 64, false));
        m.run(200);
        m.hosts[1].take_inbox();
        m.hosts[0].take_inbox();
        m
    }

    fn run(&mut self, ms: u64) {
        for _ in 0..ms {
            self.t += 1000;
            let wall = 1_700_000_000_000_000_000 + self.t * 1000;
            for a in &mut self.apps {
                a.poll(self.t, wall, &mut self.console);
            }
            let a: Vec<_> = self.wan[0].borrow_mut().tx.drain(..).collect();
            let b: Vec<_> = self.wan[1].borrow_mut().tx.drain(..).collect();
            self.underlay.extend(a.iter().cloned());
            self.underlay.extend(b.iter().cloned());
            self.wan[1].borrow_mut().rx.extend(a);
            self.wan[0].borrow_mut().rx.extend(b);
            for h in &mut self.hosts {
                h.service();
            }
        }
    }

    /// Frames on the underlay other than ARP, NDP and WireGuard over UDP 51820.
    fn underlay_strays(&self) -> Vec<Vec<u8>> {
        self.underlay
            .iter()
            .filter(|f| {
                let eth = EthernetFrame::new_checked(&f[..]).unwrap();
                match eth.ethertype() {
                    EthernetProtocol::Arp => false,
                    EthernetProtocol::Ipv4 => {
                        let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
                        let wg = ip.next_header() == IpProtocol::Udp
                            && UdpPacket::new_checked(ip.payload()).unwrap().dst_port() == 51820;
                        !wg
                    }
                    _ => true,
                }
            })
            .cloned()
            .collect()
    }
}

fn icmp4_of(pkt: &[u8]) -> (Ipv4Address, u8, u8, u32) {
    let ip = Ipv4Packet::new_checked(pkt).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.next_header(), IpProtocol::Icmp, "not ICMP: {pkt:?}");
    let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
    assert!(icmp.verify_checksum());
    let p = ip.payload();
    (
        ip.src_addr(),
        p[0],
        p[1],
        u32::from_be_bytes([p[4], p[5], p[6], p[7]]),
    )
}

#[test]
fn segment_hosts_reach_each_other_through_the_tunnel_v4_and_v6() {
    let mut m = Mesh::new("");
    let p4 = udp4(host_v4(1), host_v4(2), 100, 64, false);
    m.hosts[0].send_ip(&p4);
    let p6 = udp6(host_v6(1), host_v6(2), 100, 64);
    m.hosts[0].send_ip(&p6);
    m.run(100);
    let got = m.hosts[1].take_inbox();
    assert_eq!(got.len(), 2, "{got:?}\n{}", m.console);
    let v4 = got.iter().find(|p| p[0] >> 4 == 4).unwrap();
    let ip = Ipv4Packet::new_checked(&v4[..]).unwrap();
    assert!(ip.verify_checksum());
    // Two routers on the way: TTL 64 → 62, payload unchanged.
    assert_eq!(ip.hop_limit(), 62);
    assert_eq!(&v4[20..], &p4[20..]);
    let v6 = got.iter().find(|p| p[0] >> 4 == 6).unwrap();
    assert_eq!(v6[7], 62);
    assert_eq!(&v6[40..], &p6[40..]);
    // And back.
    m.hosts[1].send_ip(&udp4(host_v4(2), host_v4(1), 5, 64, false));
    m.run(50);
    assert_eq!(m.hosts[0].take_inbox().len(), 1);
    assert!(
        m.underlay_strays().is_empty(),
        "clear traffic on the underlay"
    );
    let fwd = m.apps[0].router_counters().forwarded;
    assert!(fwd >= 3, "forwarded {fwd}");
}

#[test]
fn ttl_running_out_in_the_router_returns_time_exceeded_from_the_segment_address() {
    let mut m = Mesh::new("");
    let p = udp4(host_v4(1), host_v4(2), 10, 1, false);
    m.hosts[0].send_ip(&p);
    m.run(20);
    let got = m.hosts[0].take_inbox();
    assert_eq!(got.len(), 1, "{got:?}");
    let (src, ty, code, _) = icmp4_of(&got[0]);
    assert_eq!((src, ty, code), (router_v4(1), 11, 0));
    // The error quotes the offending header.
    assert_eq!(&got[0][28..48], &p[..20]);
    assert!(m.hosts[1].take_inbox().is_empty());
    // IPv6: hop limit 1 gets "hop limit exceeded in transit".
    m.hosts[0].send_ip(&udp6(host_v6(1), host_v6(2), 10, 1));
    m.run(20);
    let got = m.hosts[0].take_inbox();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0][6], got[0][40], got[0][41]), (58, 3, 0));
    assert_eq!(
        m.apps[0].router_counters().drop_count(Discard::TtlExceeded),
        2
    );
}

#[test]
fn a_df_packet_too_big_for_the_tunnel_gets_fragmentation_needed_with_its_mtu() {
    let mut m = Mesh::new("");
    m.hosts[0].send_ip(&udp4(host_v4(1), host_v4(2), 1472, 64, true));
    m.run(20);
    let got = m.hosts[0].take_inbox();
    assert_eq!(got.len(), 1, "{got:?}");
    let (src, ty, code, word) = icmp4_of(&got[0]);
    // 1500 - 80 bytes of WireGuard over IPv6.
    assert_eq!((src, ty, code, word & 0xffff), (router_v4(1), 3, 4, 1420));
    // It quotes the packet as it arrived (TTL 64, not yet spent).
    assert_eq!(got[0][28 + 8], 64);
    m.hosts[0].send_ip(&udp6(host_v6(1), host_v6(2), 1452, 64));
    m.run(20);
    let got = m.hosts[0].take_inbox();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0][40], 2, "packet too big");
    assert_eq!(&got[0][44..48], &1420u32.to_be_bytes());
    // Without DF the packet is fragmented and both pieces arrive.
    let p = udp4(host_v4(1), host_v4(2), 1472, 64, false);
    m.hosts[0].send_ip(&p);
    m.run(50);
    let got = m.hosts[1].take_inbox();
    assert_eq!(got.len(), 2, "{got:?}");
    let mut data = Vec::new();
    for f in &got {
        let ip = Ipv4Packet::new_checked(&f[..]).unwrap();
        assert!(ip.verify_checksum() && f.len() <= 1420);
        data.extend_from_slice(ip.payload());
    }
    assert_eq!(&data[..], &p[20..]);
}

#[test]
fn a_segment_reaches_no_underlay_address_by_default() {
    let mut m = Mesh::new("");
    let before = m.underlay.len();
    for dst in [
        Ipv4Address::new(192, 168, 0, 2),
        Ipv4Address::new(192, 168, 0, 1),
        Ipv4Address::new(192, 168, 0, 77),
        Ipv4Address::new(8, 8, 8, 8),
    ] {
        m.hosts[0].send_ip(&udp4(host_v4(1), dst, 10, 64, false));
    }
    m.run(50);
    assert!(m.underlay_strays().is_empty());
    // Nothing but keepalive-free silence: no new frame toward those addresses.
    let new: Vec<_> = m.underlay[before..]
        .iter()
        .filter(|f| f.windows(4).any(|w| w == [192, 168, 0, 77]))
        .collect();
    assert!(new.is_empty());
    let got = m.hosts[0].take_inbox();
    assert_eq!(got.len(), 4, "{got:?}");
    for g in &got {
        let (_, ty, code, _) = icmp4_of(g);
        assert!(
            (ty, code) == (3, 13) || (ty, code) == (3, 0),
            "type {ty} code {code}"
        );
    }
}

#[test]
fn the_underlay_reaches_no_segment_host() {
    let mut m = Mesh::new("");
    let p = udp4(Ipv4Address::new(192, 168, 0, 2), host_v4(1), 10, 64, false);
    let mut f = vec![0u8; 14 + p.len()];
    crate::router::packet::write_eth(
        &mut f,
        EthernetAddress(router_mac(1, 1)),
        EthernetAddress(router_mac(2, 1)),
        EthernetProtocol::Ipv4,
    );
    f[14..].copy_from_slice(&p);
    let private = m.apps[0].router_counters().drop_count(Discard::Private);
    m.wan[0].borrow_mut().rx.push_back(f);
    m.run(20);
    assert!(m.hosts[0].take_inbox().is_empty());
    assert_eq!(
        m.apps[0].router_counters().drop_count(Discard::Private),
        private + 1
    );
}

#[test]
fn malformed_frames_on_every_port_are_dropped_and_counted() {
    let mut m = Mesh::new("");
    let good = udp4(host_v4(1), host_v4(2), 10, 64, false);
    let mut bad_sum = good.clone();
    bad_sum[10] ^= 0xff;
    let mut bad_len = good.clone();
    bad_len[2..4].copy_from_slice(&2000u16.to_be_bytes());
    let mut bad_ihl = good.clone();
    bad_ihl[0] = 0x43;
    let samples: Vec<(EthernetProtocol, Vec<u8>)> = vec![
        (EthernetProtocol::Ipv4, bad_sum),
        (EthernetProtocol::Ipv4, bad_len),
        (EthernetProtocol::Ipv4, bad_ihl),
        (EthernetProtocol::Ipv4, good[..10].to_vec()),
        (EthernetProtocol::Ipv6, good.clone()),
        (EthernetProtocol::Arp, vec![0, 1, 8, 0, 6, 4]),
        (EthernetProtocol::Ipv6, vec![0x60; 20]),
    ];
    let before: Vec<_> = m.apps.iter().map(|a| a.counters()).collect();
    for (node, app_nics) in [(1u8, 0usize), (2, 1)] {
        for nic in 1..=2u8 {
            for (ty, payload) in &samples {
                let mut f = vec![0u8; 14 + payload.len()];
                crate::router::packet::write_eth(
                    &mut f,
                    EthernetAddress(router_mac(node, nic)),
                    EthernetAddress(host_mac(node)),
                    *ty,
                );
                f[14..].copy_from_slice(payload);
                if nic == 1 {
                    m.wan[app_nics].borrow_mut().rx.push_back(f);
                } else {
                    m.hosts[app_nics].q.borrow_mut().rx.push_back(f);
                }
            }
            // A runt frame too.
            let runt = vec![1u8, 2, 3];
            if nic == 1 {
                m.wan[app_nics].borrow_mut().rx.push_back(runt);
            } else {
                m.hosts[app_nics].q.borrow_mut().rx.push_back(runt);
            }
        }
    }
    m.run(20);
    for (k, a) in m.apps.iter().enumerate() {
        for (l, c) in a.counters().iter().enumerate() {
            assert_eq!(
                c.malformed - before[k][l].malformed,
                samples.len() as u64 + 1,
                "node {k} link {l}"
            );
        }
    }
    // The mesh still works.
    m.hosts[0].send_ip(&good);
    m.run(50);
    assert_eq!(m.hosts[1].take_inbox().len(), 1);
}

/// A minimal DHCPDISCOVER from `mac`.
fn dhcp_discover(mac: [u8; 6]) -> Vec<u8> {
    let mut b = vec![0u8; 240];
    b[0] = 1;
    b[1] = 1;
    b[2] = 6;
    b[4..8].copy_from_slice(&[1, 2, 3, 4]);
    b[10] = 0x80;
    b[28..34].copy_from_slice(&mac);
    b[236..240].copy_from_slice(&[99, 130, 83, 99]);
    b.extend_from_slice(&[53, 1, 1, 255]);
    let src = Ipv4Address::UNSPECIFIED;
    let dst = Ipv4Address::BROADCAST;
    use crate::router::packet::*;
    let mut p = vec![0u8; IPV4_HEADER + UDP_HEADER + b.len()];
    p[28..].copy_from_slice(&b);
    write_udp(&mut p[IPV4_HEADER..], 68, 67, b.len());
    udp4_checksum(&mut p[IPV4_HEADER..], &src, &dst);
    write_ipv4(&mut p, src, dst, IpProtocol::Udp, UDP_HEADER + b.len(), 64);
    p
}

#[test]
fn a_dhcp_discover_on_the_segment_gets_an_offer_inside_it() {
    let mut m = Mesh::new("");
    let p = dhcp_discover(host_mac(1));
    m.hosts[0].send([0xff; 6], EthernetProtocol::Ipv4, &p);
    m.run(5);
    let got = m.hosts[0].take_inbox();
    assert_eq!(got.len(), 1, "{got:?}");
    let ip = Ipv4Packet::new_checked(&got[0][..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!(ip.src_addr(), router_v4(1));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!((udp.src_port(), udp.dst_port()), (67, 68));
    let bootp = udp.payload();
    assert_eq!(bootp[0], 2, "BOOTREPLY");
    let yiaddr = Ipv4Address::from_octets([bootp[16], bootp[17], bootp[18], bootp[19]]);
    assert_eq!(&yiaddr.octets()[..3], &[10, 20, 1]);
    assert_ne!(yiaddr, router_v4(1));
    assert_eq!(m.apps[0].router_counters().dhcp_replies, 1);
}

#[test]
fn router_solicitation_gets_an_advertisement_of_the_segment_prefix() {
    let mut m = Mesh::new("");
    // Periodic advertisements already went out at start.
    m.hosts[0].take_inbox();
    let ra_before = m.apps[0].router_counters().router_adverts;
    assert!(ra_before >= 1);
    let rs = Icmpv6Repr::Ndisc(NdiscRepr::RouterSolicit {
        lladdr: Some(EthernetAddress(host_mac(1)).into()),
    });
    let src = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 0x10);
    let dst = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let mut b = vec![0u8; 40 + rs.buffer_len()];
    crate::router::packet::write_ipv6(&mut b, src, dst, IpProtocol::Icmpv6, rs.buffer_len(), 255);
    rs.emit(
        &src,
        &dst,
        &mut Icmpv6Packet::new_unchecked(&mut b[40..]),
        &ChecksumCapabilities::default(),
    );
    m.hosts[0].send([0x33, 0x33, 0, 0, 0, 2], EthernetProtocol::Ipv6, &b);
    let adverts: Vec<Vec<u8>> = {
        m.t += 1000;
        let mut out = String::new();
        m.apps[0].poll(m.t, 0, &mut out);
        m.hosts[0].q.borrow_mut().tx.drain(..).collect()
    };
    let ra = adverts
        .iter()
        .find_map(|f| {
            let eth = EthernetFrame::new_checked(&f[..]).ok()?;
            let ip = Ipv6Packet::new_checked(eth.payload()).ok()?;
            let icmp = Icmpv6Packet::new_checked(ip.payload()).ok()?;
            match Icmpv6Repr::parse(
                &ip.src_addr(),
                &ip.dst_addr(),
                &icmp,
                &ChecksumCapabilities::default(),
            ) {
                Ok(Icmpv6Repr::Ndisc(NdiscRepr::RouterAdvert { prefix_info, .. })) => {
                    Some(prefix_info)
                }
                _ => None,
            }
        })
        .expect("a router advertisement");
    let prefix = ra.expect("with prefix information");
    assert_eq!(prefix.prefix, Ipv6Address::new(0xfd20, 0, 0, 1, 0, 0, 0, 0));
    assert_eq!(prefix.prefix_len, 64);
}

#[test]
fn egress_nat_masquerades_segment_traffic_and_brings_replies_back() {
    let mut m = Mesh::new("Egress = nat\n");
    let outside = Ipv4Address::new(192, 168, 0, 50);
    m.hosts[0].send_ip(&udp4(host_v4(1), outside, 10, 64, false));
    m.run(5);
    // Node 1 asks who has .50; answer it.
    let asked = m
        .underlay
        .iter()
        .any(|f| f.len() >= 42 && f[12..14] == [8, 6] && f[38..42] == outside.octets());
    assert!(asked, "no ARP for the outside host");
    let outside_mac = [0x02, 0, 0, 0, 0, 0x50];
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(outside_mac),
        source_protocol_addr: outside,
        target_hardware_addr: EthernetAddress(router_mac(1, 1)),
        target_protocol_addr: Ipv4Address::new(192, 168, 0, 1),
    };
    let mut b = vec![0u8; 14 + 28];
    crate::router::packet::write_eth(
        &mut b,
        EthernetAddress(router_mac(1, 1)),
        EthernetAddress(outside_mac),
        EthernetProtocol::Arp,
    );
    reply.emit(&mut ArpPacket::new_unchecked(&mut b[14..]));
    m.wan[0].borrow_mut().rx.push_back(b);
    let start = m.underlay.len();
    m.run(5);
    let sent = m.underlay[start..]
        .iter()
        .find(|f| f[0..6] == outside_mac)
        .expect("the datagram left masqueraded")
        .clone();
    let ip = Ipv4Packet::new_checked(&sent[14..]).unwrap();
    assert_eq!(ip.src_addr(), Ipv4Address::new(192, 168, 0, 1));
    assert_eq!(ip.hop_limit(), 63);
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(udp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
    let public_port = udp.src_port();
    // The outside host answers to the public port; the host behind gets it.
    let mut answer = udp4(outside, Ipv4Address::new(192, 168, 0, 1), 3, 64, false);
    answer[20..22].copy_from_slice(&5000u16.to_be_bytes());
    answer[22..24].copy_from_slice(&public_port.to_be_bytes());
    {
        use crate::router::packet::*;
        let (s, d) = (outside, Ipv4Address::new(192, 168, 0, 1));
        udp4_checksum(&mut answer[IPV4_HEADER..], &s, &d);
    }
    let mut f = vec![0u8; 14 + answer.len()];
    crate::router::packet::write_eth(
        &mut f,
        EthernetAddress(router_mac(1, 1)),
        EthernetAddress(outside_mac),
        EthernetProtocol::Ipv4,
    );
    f[14..].copy_from_slice(&answer);
    m.wan[0].borrow_mut().rx.push_back(f);
    m.run(5);
    let got = m.hosts[0].take_inbox();
    assert_eq!(got.len(), 1, "{got:?}");
    let ip = Ipv4Packet::new_checked(&got[0][..]).unwrap();
    assert_eq!(ip.dst_addr(), host_v4(1));
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert_eq!(udp.dst_port(), 4000);
    assert!(udp.verify_checksum(&ip.src_addr().into(), &ip.dst_addr().into()));
}

#[test]
fn fragments_for_the_appliance_itself_are_dropped_and_counted() {
    let mut m = Mesh::new("");
    let mut p = udp4(host_v4(1), router_v4(1), 100, 64, false);
    // Turn it into a first fragment (more fragments follow).
    p[6] = 0x20;
    crate::router::packet::set_ipv4_checksum(&mut p[..20]);
    let before = m.apps[0].router_counters();
    m.hosts[0].send_ip(&p);
    m.run(5);
    let after = m.apps[0].router_counters();
    assert_eq!(
        after.drop_count(Discard::Unsupported),
        before.drop_count(Discard::Unsupported) + 1
    );
    assert_eq!(after.local_in, before.local_in);
}

#[test]
fn a_df_packet_too_big_for_the_egress_link_gets_its_error_before_masquerade() {
    let mut m = Mesh::new("MTU = 1400\nEgress = nat\n");
    let outside = Ipv4Address::new(192, 168, 0, 50);
    m.hosts[0].send_ip(&udp4(host_v4(1), outside, 1472, 64, true));
    m.run(5);
    let got = m.hosts[0].take_inbox();
    assert_eq!(got.len(), 1, "{got:?}");
    let (src, ty, code, word) = icmp4_of(&got[0]);
    assert_eq!((src, ty, code, word & 0xffff), (router_v4(1), 3, 4, 1400));
    // The quoted header still has the workload's own source address.
    assert_eq!(&got[0][28 + 12..28 + 16], &host_v4(1).octets());
    assert_eq!(m.apps[0].router_counters().drop_count(Discard::Nat), 0);
}
