//! Host tests of neighbour resolution under a flood of forged sources: the whole
//! appliance over an in-memory NIC, time passed in.

use super::test_nic::{MockNic, Queues};
use super::*;
use crate::config;
use crate::router::neighbor::{PROBE_BURST, PROBE_RATE};
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetFrame, EthernetProtocol,
    EthernetRepr, Icmpv4Packet, Icmpv4Repr, IpProtocol, Ipv4Address, Ipv4Packet, Ipv4Repr,
};
use std::cell::RefCell;
use std::rc::Rc;

const OUR_MAC: [u8; 6] = [0x52, 0x54, 0, 0, 0, 1];
const HOST_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
const HOST: Ipv4Address = Ipv4Address::new(10, 0, 2, 2);
const US: Ipv4Address = Ipv4Address::new(10, 0, 2, 15);

type App = Appliance<MockNic, rand_core::OsRng>;

fn boot() -> (App, Rc<RefCell<Queues>>) {
    let cfg = config::parse(b"[Link]\nAddress = 10.0.2.15/24\n").expect("config parses");
    let (n, q) = MockNic::new(OUR_MAC);
    let opts = Options {
        seed: 1,
        stats_secs: Some(1),
        ..Options::default()
    };
    let app = Appliance::new(&cfg, vec![n], opts, Some(rand_core::OsRng), 0).unwrap();
    (app, q)
}

fn frame(src: [u8; 6], dst: [u8; 6], proto: EthernetProtocol, payload: &[u8]) -> Vec<u8> {
    let repr = EthernetRepr {
        src_addr: EthernetAddress(src),
        dst_addr: EthernetAddress(dst),
        ethertype: proto,
    };
    let mut buf = vec![0u8; repr.buffer_len() + payload.len()];
    let mut f = EthernetFrame::new_unchecked(&mut buf[..]);
    repr.emit(&mut f);
    f.payload_mut().copy_from_slice(payload);
    buf
}

fn arp_request_from_host() -> Vec<u8> {
    let arp = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: EthernetAddress(HOST_MAC),
        source_protocol_addr: HOST,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: US,
    };
    let mut p = vec![0u8; arp.buffer_len()];
    arp.emit(&mut ArpPacket::new_unchecked(&mut p[..]));
    frame(HOST_MAC, [0xff; 6], EthernetProtocol::Arp, &p)
}

/// An echo request to us from `src` (whose frame comes from `src_mac`).
fn ping(src_mac: [u8; 6], src: Ipv4Address, seq_no: u16) -> Vec<u8> {
    let icmp = Icmpv4Repr::EchoRequest {
        ident: 9,
        seq_no,
        data: b"who",
    };
    let ip = Ipv4Repr {
        src_addr: src,
        dst_addr: US,
        next_header: IpProtocol::Icmp,
        payload_len: icmp.buffer_len(),
        hop_limit: 64,
    };
    let caps = ChecksumCapabilities::default();
    let mut p = vec![0u8; ip.buffer_len() + icmp.buffer_len()];
    let mut pkt = Ipv4Packet::new_unchecked(&mut p[..]);
    ip.emit(&mut pkt, &caps);
    icmp.emit(&mut Icmpv4Packet::new_unchecked(pkt.payload_mut()), &caps);
    frame(src_mac, OUR_MAC, EthernetProtocol::Ipv4, &p)
}

/// What the appliance sent: ARP requests (by target), and echo replies to `HOST`.
fn sent(q: &Rc<RefCell<Queues>>) -> (Vec<Ipv4Address>, usize) {
    let mut arp = vec![];
    let mut replies = 0;
    for f in q.borrow_mut().tx.drain(..) {
        let Ok(f) = EthernetFrame::new_checked(&f[..]) else {
            continue;
        };
        match f.ethertype() {
            EthernetProtocol::Arp => {
                let a = ArpPacket::new_checked(f.payload()).and_then(|p| ArpRepr::parse(&p));
                if let Ok(ArpRepr::EthernetIpv4 {
                    operation: ArpOperation::Request,
                    target_protocol_addr,
                    ..
                }) = a
                {
                    arp.push(target_protocol_addr);
                }
            }
            EthernetProtocol::Ipv4 => {
                let Ok(ip) = Ipv4Packet::new_checked(f.payload()) else {
                    continue;
                };
                let echo = Icmpv4Packet::new_checked(ip.payload())
                    .and_then(|i| Icmpv4Repr::parse(&i, &ChecksumCapabilities::default()));
                if ip.dst_addr() == HOST
                    && f.dst_addr() == EthernetAddress(HOST_MAC)
                    && matches!(echo, Ok(Icmpv4Repr::EchoReply { .. }))
                {
                    replies += 1;
                }
            }
            _ => {}
        }
    }
    (arp, replies)
}

fn forged(n: u32) -> (Ipv4Address, [u8; 6]) {
    // 150 made-up on-link hosts: 10.0.2.100 ..= 10.0.2.249.
    let last = 100 + (n % 150) as u8;
    (
        Ipv4Address::new(10, 0, 2, last),
        [0x02, 0xee, 0, 0, 0, last],
    )
}

#[test]
fn a_flood_from_made_up_sources_costs_at_most_the_probe_budget() {
    let (mut app, q) = boot();
    let mut out = String::new();
    let wall = 1_700_000_000_000_000_000;
    // The real host resolves us (we learn it) and pings once: served at once.
    q.borrow_mut().rx.push_back(arp_request_from_host());
    q.borrow_mut().rx.push_back(ping(HOST_MAC, HOST, 0));
    app.poll(0, wall, &mut out);
    assert_eq!(sent(&q), (vec![], 1));

    // 4 s of 1,500 forged echo requests a second (one every 2/3 ms) from 150 sources, the
    // real host pinging every 100 ms throughout.
    let secs = 4;
    let (mut arps, mut replies, mut pings, mut forged_sent) = (vec![], 0, 0, 0u32);
    for ms in 1..=secs * 1000u64 {
        for _ in 0..if ms % 2 == 0 { 2 } else { 1 } {
            let (src, mac) = forged(forged_sent);
            q.borrow_mut()
                .rx
                .push_back(ping(mac, src, forged_sent as u16));
            forged_sent += 1;
        }
        if ms % 100 == 0 {
            pings += 1;
            q.borrow_mut().rx.push_back(ping(HOST_MAC, HOST, pings));
        }
        app.poll(ms * 1000, wall, &mut out);
        let (a, r) = sent(&q);
        arps.extend(a);
        replies += r;
    }
    assert_eq!(forged_sent, 6000);
    // Every ARP request went to a forged source (the host stayed resolved), and there
    // were no more than the link's budget allows, far below one per forged packet.
    assert!(!arps.contains(&HOST));
    let budget = u64::from(PROBE_BURST + PROBE_RATE * secs as u32);
    assert!(
        arps.len() as u64 <= budget,
        "{} ARP requests > {budget}",
        arps.len()
    );
    assert!(
        arps.len() as u64 >= budget / 2,
        "{} ARP requests",
        arps.len()
    );
    // No address was asked twice within a second... in fact the budget spreads them.
    let mut per_addr = std::collections::HashMap::new();
    for a in &arps {
        *per_addr.entry(*a).or_insert(0u32) += 1;
    }
    assert!(per_addr.values().all(|&n| n <= secs as u32), "{per_addr:?}");
    // The real host got every echo reply.
    assert_eq!(replies, pings as usize);
    // Counted, and on the stats line.
    let c = app.router_counters();
    assert_eq!(c.neighbor_probes, arps.len() as u64);
    assert!(c.probes_suppressed > 100, "{c:?}");
    assert!(c.drop_count(Discard::NeighborUnreachable) > 1000, "{c:?}");
    let last = out
        .lines()
        .rfind(|l| l.starts_with("vdcnet: stats"))
        .unwrap();
    assert!(
        last.contains(&format!(" probes={} ", c.neighbor_probes)),
        "{last}"
    );
    assert!(last.contains(" probes_limited="), "{last}");
}

#[test]
fn packets_to_a_failed_neighbour_are_dropped_without_new_probes() {
    let (mut app, q) = boot();
    let mut out = String::new();
    let wall = 1_700_000_000_000_000_000;
    let (src, mac) = forged(7);
    // One forged echo request every 100 ms for 28 s, never answered.
    let mut arps = vec![];
    for k in 0..280u64 {
        q.borrow_mut().rx.push_back(ping(mac, src, k as u16));
        app.poll(k * 100_000, wall, &mut out);
        arps.extend(sent(&q).0);
    }
    // Three probes, a second apart; then it is failed for 20 s; then three more.
    assert_eq!(arps.len(), 6, "{arps:?}");
    assert!(arps.iter().all(|a| *a == src));
    let c = app.router_counters();
    assert!(
        c.drop_count(Discard::NeighborFailed) >= 190,
        "{}",
        c.drop_count(Discard::NeighborFailed)
    );
    assert!(out.contains(" NeighborFailed="), "{out}");
}
