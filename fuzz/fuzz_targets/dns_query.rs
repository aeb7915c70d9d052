//! Raw bytes into the authoritative DNS server, as a UDP datagram and as a TCP stream
//! split at the bytes' own say. None may panic; every answer is a well-formed response
//! to the query (its id, QR set, RA clear), a UDP answer fits 1232 bytes, and a
//! truncated one holds no records but the OPT.
#![no_main]

use domain::base::Message;
use libfuzzer_sys::fuzz_target;
use smoltcp::time::Instant;
use vdcnet_appliance::config::NamePattern;
use vdcnet_appliance::dns::{
    DnsServer, Reply, ServerSpec, TcpQueries, TcpReply, ZoneSpec, TCP_RESPONSE, UDP_PAYLOAD,
};

fn server() -> DnsServer {
    let ip = |s: &str| s.parse().unwrap();
    let spec = ServerSpec {
        zones: vec![ZoneSpec {
            apex: "example.org".into(),
            hostmaster: "hostmaster.example.org".into(),
            serial: 1,
            refresh: 3600,
            retry: 600,
            expire: 604_800,
            minimum: 30,
            name_servers: vec![(
                "ns1.example.org".into(),
                vec![ip("192.0.2.53"), ip("2001:db8::53")],
            )],
        }],
        ttl: 30,
        zone_ttl: 3600,
        names: ["www.example.org", "*.apps.example.org", "example.org"]
            .iter()
            .map(|n| NamePattern::parse(n).unwrap())
            .collect(),
        rate_limit: 50,
    };
    let mut s = DnsServer::new(&spec).unwrap();
    let many: Vec<_> = (1..=32u16)
        .map(|i| core::net::IpAddr::from([0x2001, 0xdb8, 0, 0, 0, 0, 0, i]))
        .chain((1..=32u8).map(|i| core::net::IpAddr::from([192, 0, 2, i])))
        .collect();
    s.set_addresses(0, &many).unwrap();
    s.set_addresses(1, &many[..3]).unwrap();
    s
}

fn check(query: &[u8], answer: &[u8]) {
    let msg = Message::from_slice(answer).expect("a header");
    let h = msg.header();
    assert!(h.qr() && !h.ra());
    assert_eq!(&answer[..2], &query[..2], "the id is echoed");
    let counts = msg.header_counts();
    if h.tc() {
        assert_eq!((counts.ancount(), counts.nscount()), (0, 0));
        assert!(counts.arcount() <= 1);
    }
    for section in [msg.answer(), msg.authority(), msg.additional()] {
        for rr in section.expect("sections parse") {
            rr.expect("records parse");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, data)) = data.split_first() else {
        return;
    };
    let mut s = server();
    let now = Instant::from_millis(0);
    let client = core::net::IpAddr::from([198, 51, 100, mode]);
    let mut out = [0u8; TCP_RESPONSE + 2];
    if mode & 1 == 0 {
        if let Reply::Send(n) =
            s.answer_udp(now, client, data, &mut out[..usize::from(UDP_PAYLOAD)])
        {
            check(data, &out[..n]);
        }
        return;
    }
    // A TCP stream, fed in chunks of 1..=16 bytes.
    let chunk = usize::from(mode >> 4) + 1;
    let mut conn = TcpQueries::new();
    let mut rest = data;
    let mut consumed = Vec::new();
    'stream: loop {
        let taken = conn.receive(&rest[..chunk.min(rest.len())]);
        consumed.extend_from_slice(&rest[..taken]);
        rest = &rest[taken..];
        loop {
            match s.answer_tcp(&mut conn, &mut out) {
                TcpReply::Send(n) => {
                    let len = usize::from(u16::from_be_bytes([out[0], out[1]]));
                    assert_eq!(len + 2, n);
                    // The query answered is the last frame of what was consumed.
                    let qlen = usize::from(u16::from_be_bytes([consumed[0], consumed[1]]));
                    check(&consumed[2..2 + qlen], &out[2..n]);
                    consumed.drain(..2 + qlen);
                }
                TcpReply::Wait => break,
                TcpReply::Close => break 'stream,
            }
        }
        if rest.is_empty() || taken == 0 {
            break;
        }
    }
});
