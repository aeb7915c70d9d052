//! Untrusted bytes into Babel: the packet parser, then a routing core.
//!
//! Every TLV the parser yields must be usable (prefixes normalised, re-encodable ones
//! re-parse to the same value), and a core fed the bytes from a live neighbour, polled
//! as time advances, must never panic, keep its tables within their bounds and emit
//! packets of at most `MAX_PACKET` octets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smoltcp::time::{Duration, Instant};
use smoltcp::wire::{IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr};
use vdcnet_appliance::routing::wire::{normalize, Reader, Tlv, Writer};
use vdcnet_appliance::routing::{Babel, NeighbourId, RouterId, Settings, MAX_PACKET};

fn plan() -> [IpCidr; 3] {
    [
        IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(10, 0, 0, 0), 8)),
        IpCidr::Ipv6(Ipv6Cidr::new(
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 0),
            8,
        )),
        IpCidr::Ipv6(Ipv6Cidr::new(
            Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 0),
            10,
        )),
    ]
}

fuzz_target!(|data: &[u8]| {
    if let Ok(reader) = Reader::new(data) {
        for tlv in reader.flatten() {
            if let Tlv::Update(u) = tlv {
                if let Some(p) = u.prefix {
                    assert_eq!(normalize(p), p);
                }
            }
            // A TLV that can be written again parses back to itself (updates get the
            // packet's router-id and next hop, so they are left out).
            if !matches!(tlv, Tlv::Update(_) | Tlv::Unknown { .. }) {
                let mut buf = [0u8; 128];
                let mut w = Writer::new(&mut buf).unwrap();
                if w.push(&tlv).is_ok() {
                    let n = w.finish();
                    let back: Vec<_> = Reader::new(&buf[..n]).unwrap().collect();
                    assert_eq!(back, vec![Ok(tlv)]);
                }
            }
        }
    }

    let settings = Settings {
        max_routes: 64,
        max_sources: 64,
        ..Settings::default()
    };
    let mut now = Instant::from_secs(1);
    let mut core = Babel::new(RouterId([1; 8]), settings, &plan()).unwrap();
    core.add_neighbour(
        now,
        NeighbourId(1),
        Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0, 0, 2),
        None,
    )
    .unwrap();
    // Split the input into packets after each 0xff octet, so several packets (Hellos,
    // then Updates) can build on each other.
    for chunk in data.split_inclusive(|b| *b == 0xff) {
        core.receive(now, NeighbourId(1), chunk);
        core.poll(now, |_, p| assert!(p.len() <= MAX_PACKET));
        now += Duration::from_millis(100);
    }
    for _ in 0..20 {
        now += Duration::from_millis(500);
        core.poll(now, |_, p| assert!(p.len() <= MAX_PACKET));
    }
    let (routes, sources, adverts) = core.table_sizes();
    assert!(routes <= 64 && sources <= 64 && adverts <= 64 + settings.max_local);
    core.drain_changes(|_| {});
});
