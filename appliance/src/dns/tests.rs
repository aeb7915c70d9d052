//! Host tests of the DNS server: hand-made query bytes in, answers read back with
//! `domain`'s parser (and, for the header, by hand). `tests/dns.rs` in the test crate
//! puts the same core behind real sockets and asks `dig` and `unbound`.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use domain::base::iana::Rtype;
use domain::base::name::ParsedName;
use domain::base::opt::{Opt, OptRecord};
use domain::base::{Message, RecordSection};
use domain::rdata::{Aaaa, Ns, Soa, A};
use smoltcp::time::Instant;

use super::*;
use crate::gateway::names::NamePattern;

const A_: u16 = 1;
const NS_: u16 = 2;
const SOA_: u16 = 6;
const MX_: u16 = 15;
const AAAA_: u16 = 28;
const AXFR_: u16 = 252;
const ANY_: u16 = 255;
const IN: u16 = 1;

fn spec() -> ServerSpec {
    ServerSpec {
        zones: vec![
            ZoneSpec {
                apex: "example.org".into(),
                hostmaster: "hostmaster.example.org".into(),
                serial: 7,
                refresh: 3600,
                retry: 600,
                expire: 604_800,
                minimum: 30,
                name_servers: vec![
                    (
                        "ns1.example.org".into(),
                        vec![ip("192.0.2.53"), ip("2001:db8::53")],
                    ),
                    ("ns.other.net".into(), vec![]),
                ],
            },
            ZoneSpec {
                apex: "example.net".into(),
                hostmaster: "hostmaster.example.net".into(),
                serial: 1,
                refresh: 3600,
                retry: 600,
                expire: 604_800,
                minimum: 7200,
                name_servers: vec![("ns1.example.org".into(), vec![])],
            },
        ],
        ttl: 30,
        zone_ttl: 3600,
        names: vec![
            NamePattern::parse("www.example.org").unwrap(),    // 0
            NamePattern::parse("*.apps.example.org").unwrap(), // 1
            NamePattern::parse("example.org").unwrap(),        // 2: the apex
            NamePattern::parse("deep.shop.example.org").unwrap(), // 3: no addresses
            NamePattern::parse("outside.test").unwrap(),       // 4: in no zone
        ],
        rate_limit: 0,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn server() -> DnsServer {
    let mut s = DnsServer::new(&spec()).unwrap();
    s.set_addresses(0, &[ip("192.0.2.1"), ip("192.0.2.2"), ip("2001:db8::1")])
        .unwrap();
    s.set_addresses(1, &[ip("198.51.100.9")]).unwrap();
    s.set_addresses(2, &[ip("192.0.2.100")]).unwrap();
    s
}

/// A query: `flags` is the second 16-bit word (RD = 0x0100), `opt` the OPT's payload
/// size and version.
fn query_with(
    id: u16,
    flags: u16,
    name: &str,
    qtype: u16,
    class: u16,
    opt: Option<(u16, u8)>,
) -> Vec<u8> {
    let mut q = Vec::new();
    q.extend(id.to_be_bytes());
    q.extend(flags.to_be_bytes());
    q.extend([0, 1, 0, 0, 0, 0, 0, u8::from(opt.is_some())]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        q.push(label.len() as u8);
        q.extend(label.bytes());
    }
    q.push(0);
    q.extend(qtype.to_be_bytes());
    q.extend(class.to_be_bytes());
    if let Some((payload, version)) = opt {
        q.extend([0, 0, 41]);
        q.extend(payload.to_be_bytes());
        q.extend([0, version, 0, 0, 0, 0]);
    }
    q
}

fn query(name: &str, qtype: u16) -> Vec<u8> {
    query_with(0x1234, 0x0100, name, qtype, IN, None)
}

fn edns_query(name: &str, qtype: u16, payload: u16) -> Vec<u8> {
    query_with(0x1234, 0x0100, name, qtype, IN, Some((payload, 0)))
}

/// An answer, read back.
#[derive(Debug)]
struct Answer {
    bytes: Vec<u8>,
    id: u16,
    aa: bool,
    tc: bool,
    rd: bool,
    ra: bool,
    /// The extended rcode (header and OPT together).
    rcode: u16,
    question: Vec<String>,
    answer: Vec<String>,
    authority: Vec<String>,
    additional: Vec<String>,
    /// The OPT record's payload size and version.
    opt: Option<(u16, u8)>,
}

fn records(section: RecordSection<'_, [u8]>) -> Vec<String> {
    let mut out = Vec::new();
    for rr in section {
        let rr = rr.unwrap();
        let head = format!("{} {}", rr.owner(), rr.ttl().as_secs());
        let text = match rr.rtype() {
            Rtype::A => format!("{head} A {}", rr.to_record::<A>().unwrap().unwrap().data()),
            Rtype::AAAA => format!(
                "{head} AAAA {}",
                rr.to_record::<Aaaa>().unwrap().unwrap().data()
            ),
            Rtype::NS => format!(
                "{head} NS {}",
                rr.to_record::<Ns<ParsedName<&[u8]>>>()
                    .unwrap()
                    .unwrap()
                    .data()
                    .nsdname()
            ),
            Rtype::SOA => {
                let r = rr.to_record::<Soa<ParsedName<&[u8]>>>().unwrap().unwrap();
                let s = r.data();
                format!(
                    "{head} SOA {} {} {} {} {} {} {}",
                    s.mname(),
                    s.rname(),
                    s.serial().0,
                    s.refresh().as_secs(),
                    s.retry().as_secs(),
                    s.expire().as_secs(),
                    s.minimum().as_secs()
                )
            }
            Rtype::OPT => continue,
            other => format!("{head} {other}"),
        };
        out.push(text);
    }
    out
}

fn read(bytes: &[u8]) -> Answer {
    let msg = Message::from_slice(bytes).expect("a header");
    let h = msg.header();
    assert!(h.qr(), "a response");
    let question = msg
        .question()
        .map(|q| {
            let q = q.unwrap();
            format!("{} {} {}", q.qname(), q.qtype(), q.qclass())
        })
        .collect();
    let answer = records(msg.answer().unwrap());
    let authority = records(msg.authority().unwrap());
    let additional = records(msg.additional().unwrap());
    let mut opt = None;
    for rr in msg.additional().unwrap() {
        let rr = rr.unwrap();
        if rr.rtype() == Rtype::OPT {
            let o = OptRecord::from(rr.to_record::<Opt<_>>().unwrap().unwrap());
            assert!(opt.is_none(), "one OPT");
            opt = Some((o.udp_payload_size(), o.version(), o.rcode(h).to_int()));
        }
    }
    Answer {
        bytes: bytes.to_vec(),
        id: h.id(),
        aa: h.aa(),
        tc: h.tc(),
        rd: h.rd(),
        ra: h.ra(),
        rcode: opt.map_or(u16::from(h.rcode().to_int()), |o| o.2),
        question,
        answer,
        authority,
        additional,
        opt: opt.map(|o| (o.0, o.1)),
    }
}

fn udp_from(s: &mut DnsServer, client: IpAddr, q: &[u8]) -> Option<Answer> {
    let mut out = [0u8; 1500];
    match s.answer_udp(Instant::from_millis(0), client, q, &mut out) {
        Reply::Send(n) => Some(read(&out[..n])),
        Reply::Drop => None,
    }
}

fn udp(s: &mut DnsServer, q: &[u8]) -> Answer {
    udp_from(s, ip("203.0.113.7"), q).expect("an answer")
}

const NOERROR: u16 = 0;
const FORMERR: u16 = 1;
const NXDOMAIN: u16 = 3;
const NOTIMP: u16 = 4;
const REFUSED: u16 = 5;
const BADVERS: u16 = 16;

const SOA_LINE: &str =
    "example.org 30 SOA ns1.example.org hostmaster.example.org 7 3600 600 604800 30";

#[test]
fn a_and_aaaa_of_a_service_name_are_its_addresses_authoritatively() {
    let mut s = server();
    let a = udp(&mut s, &query("www.example.org", A_));
    assert_eq!(
        (a.id, a.rcode, a.aa, a.tc, a.rd, a.ra),
        (0x1234, NOERROR, true, false, true, false)
    );
    assert_eq!(a.question, ["www.example.org A IN"]);
    let mut got = a.answer.clone();
    got.sort();
    assert_eq!(
        got,
        [
            "www.example.org 30 A 192.0.2.1",
            "www.example.org 30 A 192.0.2.2"
        ]
    );
    assert!(a.authority.is_empty() && a.additional.is_empty(), "{a:#?}");
    assert_eq!(a.opt, None, "no OPT without one in the query");
    let aaaa = udp(&mut s, &query("www.example.org", AAAA_));
    assert_eq!(aaaa.answer, ["www.example.org 30 AAAA 2001:db8::1"]);
    // The apex is a service name too.
    let apex = udp(&mut s, &query("example.org", A_));
    assert_eq!(apex.answer, ["example.org 30 A 192.0.2.100"]);
    assert_eq!(s.counters().answers, 3);
}

#[test]
fn answers_rotate_through_the_addresses() {
    let mut s = server();
    let four = ["192.0.2.1", "192.0.2.2", "192.0.2.3", "192.0.2.4"].map(ip);
    s.set_addresses(0, &four).unwrap();
    let mut firsts = Vec::new();
    for _ in 0..4 {
        let a = udp(&mut s, &query("www.example.org", A_));
        assert_eq!(a.answer.len(), 4);
        let mut sorted = a.answer.clone();
        sorted.sort();
        assert_eq!(sorted[0], "www.example.org 30 A 192.0.2.1");
        // Each answer is the list rotated: consecutive and wrapping.
        let order: Vec<&str> = a
            .answer
            .iter()
            .map(|l| l.rsplit(' ').next().unwrap())
            .collect();
        let start = four.iter().position(|x| x.to_string() == order[0]).unwrap();
        for (i, addr) in order.iter().enumerate() {
            assert_eq!(*addr, four[(start + i) % 4].to_string());
        }
        firsts.push(order[0].to_string());
    }
    firsts.sort();
    firsts.dedup();
    assert_eq!(
        firsts.len(),
        4,
        "every address comes first once in four answers"
    );
}

#[test]
fn names_match_in_any_case_and_the_question_keeps_its_case() {
    let mut s = server();
    let a = udp(&mut s, &query("WwW.ExAmPlE.oRg", A_));
    assert_eq!(a.rcode, NOERROR);
    assert_eq!(a.question, ["WwW.ExAmPlE.oRg A IN"]);
    assert_eq!(a.answer.len(), 2);
    // Answers point at the question's name (offset 12) instead of repeating it.
    let q_end = 12 + 17 + 4;
    assert_eq!(&a.bytes[q_end..q_end + 2], &[0xc0, 0x0c]);
    assert_eq!(a.bytes.len(), q_end + 2 * 16);
}

#[test]
fn soa_and_ns_at_the_apex_with_glue_for_in_zone_servers() {
    let mut s = server();
    let soa = udp(&mut s, &query("example.org", SOA_));
    assert_eq!(soa.rcode, NOERROR);
    assert!(soa.aa);
    assert_eq!(
        soa.answer,
        ["example.org 3600 SOA ns1.example.org hostmaster.example.org 7 3600 600 604800 30"]
    );
    let ns = udp(&mut s, &query("example.org", NS_));
    assert_eq!(
        ns.answer,
        [
            "example.org 3600 NS ns1.example.org",
            "example.org 3600 NS ns.other.net"
        ]
    );
    assert_eq!(
        ns.additional,
        [
            "ns1.example.org 3600 A 192.0.2.53",
            "ns1.example.org 3600 AAAA 2001:db8::53"
        ]
    );
    // The name server's own name answers with its glue.
    let glue = udp(&mut s, &query("ns1.example.org", A_));
    assert_eq!(glue.answer, ["ns1.example.org 3600 A 192.0.2.53"]);
    // The second zone: its NS is out of zone there, its glue comes from the first.
    let net = udp(&mut s, &query("example.net", NS_));
    assert_eq!(net.answer, ["example.net 3600 NS ns1.example.org"]);
    assert_eq!(net.additional.len(), 2);
    // SOA below the apex: NODATA.
    let below = udp(&mut s, &query("www.example.org", SOA_));
    assert_eq!((below.rcode, below.answer.len()), (NOERROR, 0));
    assert_eq!(below.authority, [SOA_LINE]);
}

#[test]
fn a_missing_name_is_nxdomain_with_the_soa_and_the_negative_ttl() {
    let mut s = server();
    let a = udp(&mut s, &query("nope.example.org", A_));
    assert_eq!((a.rcode, a.aa), (NXDOMAIN, true));
    assert!(a.answer.is_empty());
    // min(SOA TTL 3600, MINIMUM 30).
    assert_eq!(a.authority, [SOA_LINE]);
    // ... and min(3600, 7200) in the other zone.
    let net = udp(&mut s, &query("nope.example.net", AAAA_));
    assert_eq!(net.rcode, NXDOMAIN);
    assert!(
        net.authority[0].starts_with("example.net 3600 SOA"),
        "{net:#?}"
    );
    // Below a name that exists, a name need not exist.
    assert_eq!(udp(&mut s, &query("x.www.example.org", A_)).rcode, NXDOMAIN);
    assert_eq!(s.counters().nxdomain, 3);
}

#[test]
fn existing_names_without_data_of_the_type_are_nodata() {
    let mut s = server();
    for (name, qtype) in [
        ("www.example.org", MX_),
        ("example.org", AAAA_),        // the apex has no IPv6 service address
        ("shop.example.org", A_),      // an empty non-terminal above deep.shop
        ("apps.example.org", A_),      // ... and above the wildcard
        ("deep.shop.example.org", A_), // a service name with no live gateway
        ("ns1.example.org", MX_),
    ] {
        let a = udp(&mut s, &query(name, qtype));
        assert_eq!((a.rcode, a.aa), (NOERROR, true), "{name}");
        assert!(a.answer.is_empty(), "{name}: {a:#?}");
        assert_eq!(a.authority, [SOA_LINE], "{name}");
    }
    assert_eq!(s.counters().nodata, 6);
    // Addresses set and cleared again.
    s.set_addresses(3, &[ip("192.0.2.9")]).unwrap();
    assert_eq!(
        udp(&mut s, &query("deep.shop.example.org", A_))
            .answer
            .len(),
        1
    );
    s.set_addresses(3, &[]).unwrap();
    assert_eq!(
        udp(&mut s, &query("deep.shop.example.org", A_))
            .answer
            .len(),
        0
    );
}

#[test]
fn wildcards_answer_every_name_below_them_with_the_asked_name() {
    let mut s = server();
    for name in [
        "x.apps.example.org",
        "A.b.Apps.example.org",
        "*.apps.example.org",
    ] {
        let a = udp(&mut s, &query(name, A_));
        assert_eq!(a.answer, [format!("{name} 30 A 198.51.100.9")], "{name}");
    }
}

#[test]
fn names_outside_the_zones_other_classes_and_transfers_are_refused() {
    let mut s = server();
    for q in [
        query("www.example.com", A_),
        query("outside.test", A_), // a service name, but in no zone
        query("org", NS_),
        query("", NS_),
        query_with(1, 0x0100, "www.example.org", A_, 3, None), // CHAOS
        query("example.org", AXFR_),
    ] {
        let a = udp(&mut s, &q);
        assert_eq!((a.rcode, a.aa, a.ra), (REFUSED, false, false), "{a:#?}");
        assert!(a.answer.is_empty() && a.authority.is_empty());
        assert_eq!(a.question.len(), 1);
    }
    assert_eq!(s.counters().refused, 6);
}

#[test]
fn any_gets_one_rrset() {
    let mut s = server();
    let apex = udp(&mut s, &query("example.org", ANY_));
    assert_eq!(apex.answer.len(), 1);
    assert!(apex.answer[0].contains(" SOA "), "{apex:#?}");
    let www = udp(&mut s, &query("www.example.org", ANY_));
    assert_eq!(www.answer.len(), 2);
    assert!(www.answer.iter().all(|l| l.contains(" A ")), "{www:#?}");
    s.set_addresses(0, &[ip("2001:db8::1")]).unwrap();
    let v6 = udp(&mut s, &query("www.example.org", ANY_));
    assert_eq!(v6.answer, ["www.example.org 30 AAAA 2001:db8::1"]);
    let none = udp(&mut s, &query("deep.shop.example.org", ANY_));
    assert_eq!((none.rcode, none.answer.len()), (NOERROR, 0));
    assert_eq!(
        udp(&mut s, &query("nope.example.org", ANY_)).rcode,
        NXDOMAIN
    );
}

#[test]
fn other_opcodes_are_not_implemented() {
    let mut s = server();
    for opcode in [1u16, 2, 4, 5, 15] {
        let a = udp(
            &mut s,
            &query_with(9, opcode << 11, "www.example.org", A_, IN, None),
        );
        assert_eq!(a.rcode, NOTIMP, "opcode {opcode}");
        assert_eq!(a.bytes[2] >> 3 & 0xf, opcode as u8, "the opcode is echoed");
        assert!(a.answer.is_empty());
    }
}

#[test]
fn malformed_queries_get_formerr_or_are_dropped() {
    let mut s = server();
    let good = query("www.example.org", A_);
    // No question; two questions.
    let mut none = good[..12].to_vec();
    none[5] = 0;
    let mut two = good.clone();
    two[5] = 2;
    two.extend_from_slice(&good[12..]);
    // A question cut short; a name with a pointer loop; an answer count with no answer.
    let cut = good[..good.len() - 2].to_vec();
    let mut looped = good[..12].to_vec();
    looped.extend([0xc0, 12, 0, 1, 0, 1]);
    let mut phantom = good.clone();
    phantom[7] = 1;
    // Two OPTs; an OPT whose owner is not the root; OPT as the question type.
    let mut two_opts = edns_query("www.example.org", A_, 1232);
    two_opts[11] = 2;
    let opt = two_opts[two_opts.len() - 11..].to_vec();
    two_opts.extend(opt);
    let mut owned_opt = good.clone();
    owned_opt[11] = 1;
    owned_opt.extend([1, b'x', 0, 0, 41, 4, 0, 0, 0, 0, 0, 0, 0]);
    let opt_type = query("www.example.org", 41);
    for (what, q) in [
        ("no question", &none),
        ("two questions", &two),
        ("cut", &cut),
        ("pointer loop", &looped),
        ("phantom answer", &phantom),
        ("two OPTs", &two_opts),
        ("OPT not at the root", &owned_opt),
        ("OPT question", &opt_type),
    ] {
        let a = udp(&mut s, q);
        assert_eq!(a.rcode, FORMERR, "{what}");
        assert_eq!(a.id, 0x1234, "{what}");
        assert!(a.answer.is_empty(), "{what}");
    }
    assert_eq!(s.counters().formerr, 8);
    // Shorter than a header, or a response: nothing.
    let client = ip("203.0.113.7");
    assert!(udp_from(&mut s, client, &good[..11]).is_none());
    assert!(udp_from(&mut s, client, &[]).is_none());
    let mut response = good.clone();
    response[2] |= 0x80;
    assert!(udp_from(&mut s, client, &response).is_none());
    let c = s.counters();
    assert_eq!((c.dropped_short, c.dropped_responses), (2, 1));
}

#[test]
fn edns_gets_an_opt_back_and_a_later_version_gets_badvers() {
    let mut s = server();
    let a = udp(&mut s, &edns_query("www.example.org", A_, 4096));
    assert_eq!((a.rcode, a.opt), (NOERROR, Some((UDP_PAYLOAD, 0))));
    assert_eq!(a.answer.len(), 2);
    let bad = udp(
        &mut s,
        &query_with(5, 0x0100, "www.example.org", A_, IN, Some((1232, 1))),
    );
    assert_eq!(bad.rcode, BADVERS);
    assert_eq!(
        bad.bytes[3] & 0xf,
        0,
        "the header holds BADVERS's low bits, 0"
    );
    assert_eq!(bad.opt, Some((UDP_PAYLOAD, 0)));
    assert!(bad.answer.is_empty());
    // Errors carry the OPT too.
    let refused = udp(&mut s, &edns_query("www.example.com", A_, 1232));
    assert_eq!((refused.rcode, refused.opt.is_some()), (REFUSED, true));
    let nx = udp(&mut s, &edns_query("nope.example.org", A_, 1232));
    assert_eq!(
        (nx.rcode, nx.opt.is_some(), nx.authority.len()),
        (NXDOMAIN, true, 1)
    );
    assert_eq!(s.counters().badvers, 1);
}

#[test]
fn an_answer_too_big_for_udp_is_truncated_to_the_question_and_whole_over_tcp() {
    let mut s = server();
    let many: Vec<IpAddr> = (1..=32u16)
        .map(|i| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, i)))
        .collect();
    s.set_addresses(0, &many).unwrap();
    // 32 AAAA records need 12 + 21 + 32 * 28 = 929 bytes: over 512.
    let plain = udp(&mut s, &query("www.example.org", AAAA_));
    assert!(plain.tc);
    assert_eq!(plain.question.len(), 1);
    assert!(plain.answer.is_empty() && plain.authority.is_empty() && plain.additional.is_empty());
    let small = udp(&mut s, &edns_query("www.example.org", AAAA_, 512));
    assert!(small.tc);
    assert_eq!(
        small.opt,
        Some((UDP_PAYLOAD, 0)),
        "the OPT survives truncation"
    );
    // A payload size under 512 counts as 512.
    assert!(udp(&mut s, &edns_query("www.example.org", AAAA_, 100)).tc);
    let big = udp(&mut s, &edns_query("www.example.org", AAAA_, 1232));
    assert!(!big.tc);
    assert_eq!(big.answer.len(), 32);
    assert!(big.bytes.len() <= 1232);
    assert_eq!(s.counters().truncated, 3);
    // Over TCP it all comes.
    let mut conn = TcpQueries::new();
    let q = query("www.example.org", AAAA_);
    let mut framed = (q.len() as u16).to_be_bytes().to_vec();
    framed.extend(&q);
    assert_eq!(conn.receive(&framed), framed.len());
    let mut out = [0u8; TCP_RESPONSE + 2];
    let TcpReply::Send(n) = s.answer_tcp(&mut conn, &mut out) else {
        panic!("an answer")
    };
    assert_eq!(usize::from(u16::from_be_bytes([out[0], out[1]])), n - 2);
    let a = read(&out[2..n]);
    assert!(!a.tc);
    assert_eq!(a.answer.len(), 32);
    // Addresses past the cap are not kept.
    let more: Vec<IpAddr> = (1..=40u8)
        .map(|i| IpAddr::V4(Ipv4Addr::new(192, 0, 2, i)))
        .collect();
    s.set_addresses(0, &more).unwrap();
    let big = udp(&mut s, &edns_query("www.example.org", A_, 1232));
    assert_eq!(big.answer.len(), MAX_ADDRESSES);
}

#[test]
fn a_buffer_too_small_for_the_question_drops_the_query() {
    let mut s = server();
    let mut out = [0u8; 20];
    let q = query("www.example.org", A_);
    assert_eq!(
        s.answer_udp(Instant::from_millis(0), ip("192.0.2.7"), &q, &mut out),
        Reply::Drop
    );
    assert_eq!(s.counters().dropped_no_room, 1);
}

#[test]
fn tcp_carries_several_queries_per_connection_split_anywhere() {
    let mut s = server();
    let mut stream = Vec::new();
    for (name, qtype) in [
        ("www.example.org", A_),
        ("example.org", SOA_),
        ("nope.example.org", A_),
    ] {
        let q = query(name, qtype);
        stream.extend((q.len() as u16).to_be_bytes());
        stream.extend(q);
    }
    for chunk in [1, 2, 7, stream.len()] {
        let mut conn = TcpQueries::new();
        let mut rcodes = Vec::new();
        let mut rest: &[u8] = &stream;
        let mut out = [0u8; TCP_RESPONSE + 2];
        loop {
            let taken = conn.receive(&rest[..chunk.min(rest.len())]);
            rest = &rest[taken..];
            loop {
                match s.answer_tcp(&mut conn, &mut out) {
                    TcpReply::Send(n) => rcodes.push(read(&out[2..n]).rcode),
                    TcpReply::Wait => break,
                    TcpReply::Close => panic!("closed"),
                }
            }
            if rest.is_empty() {
                break;
            }
        }
        assert_eq!(rcodes, [NOERROR, NOERROR, NXDOMAIN], "chunks of {chunk}");
        assert!(!conn.is_mid_query());
    }
    assert_eq!(s.counters().tcp_queries, 12);
    // A zero length, or a query that is not worth an answer, closes the connection.
    let mut conn = TcpQueries::new();
    conn.receive(&[0, 0]);
    let mut out = [0u8; 600];
    assert_eq!(s.answer_tcp(&mut conn, &mut out), TcpReply::Close);
    let mut conn = TcpQueries::new();
    conn.receive(&[0, 3, 1, 2, 3]);
    assert_eq!(s.answer_tcp(&mut conn, &mut out), TcpReply::Close);
    assert_eq!(s.counters().tcp_closed, 2);
}

#[test]
fn the_rate_limiter_slips_every_second_excess_answer_and_drops_the_rest() {
    let mut sp = spec();
    sp.rate_limit = 3;
    let mut s = DnsServer::new(&sp).unwrap();
    s.set_addresses(0, &[ip("192.0.2.1")]).unwrap();
    let q = query("www.example.org", A_);
    let flooder = ip("198.51.100.1");
    let mut tc = 0;
    let mut full = 0;
    let mut dropped = 0;
    for _ in 0..13 {
        match udp_from(&mut s, flooder, &q) {
            Some(a) if a.tc => {
                assert!(a.answer.is_empty());
                tc += 1
            }
            Some(_) => full += 1,
            None => dropped += 1,
        }
    }
    assert_eq!((full, tc, dropped), (3, 5, 5));
    // Another network is answered; TCP is never limited.
    assert!(!udp_from(&mut s, ip("203.0.113.1"), &q).unwrap().tc);
    let c = s.counters();
    assert_eq!((c.rate_limited_slipped, c.rate_limited_dropped), (5, 5));
}

#[test]
fn set_addresses_checks_the_index_and_drops_duplicates() {
    let mut s = server();
    assert_eq!(s.set_addresses(5, &[]), Err(SetAddressesError::NoSuchName));
    s.set_addresses(0, &[ip("192.0.2.1"), ip("192.0.2.1"), ip("192.0.2.3")])
        .unwrap();
    assert_eq!(udp(&mut s, &query("www.example.org", A_)).answer.len(), 2);
}

#[test]
fn bad_specs_are_refused() {
    let mut sp = spec();
    sp.zones.push(sp.zones[0].clone());
    assert!(DnsServer::new(&sp).is_err());
    let mut sp = spec();
    sp.zones[0].name_servers.clear();
    assert!(DnsServer::new(&sp).is_err());
    let mut sp = spec();
    sp.zones[0].apex = "a..b".into();
    assert!(DnsServer::new(&sp).is_err());
}

/// xorshift64*: deterministic noise for the robustness test.
fn noise(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

#[test]
fn random_and_mutated_bytes_never_panic_and_every_answer_parses() {
    let mut s = server();
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let seeds = [
        query("www.example.org", A_),
        edns_query("x.apps.example.org", AAAA_, 1232),
        query("example.org", NS_),
        query("nope.example.org", ANY_),
    ];
    let mut out = [0u8; 1232];
    for i in 0..20_000 {
        let mut q = seeds[i % seeds.len()].clone();
        let flips = 1 + noise(&mut state) % 4;
        for _ in 0..flips {
            let at = (noise(&mut state) as usize) % q.len();
            q[at] = noise(&mut state) as u8;
        }
        if i % 7 == 0 {
            q.truncate((noise(&mut state) as usize) % (q.len() + 1));
        }
        if i % 11 == 0 {
            q = (0..noise(&mut state) % 64)
                .map(|_| noise(&mut state) as u8)
                .collect();
        }
        if let Reply::Send(n) = s.answer_udp(Instant::from_millis(0), ip("192.0.2.7"), &q, &mut out)
        {
            let msg = Message::from_slice(&out[..n]).unwrap();
            assert!(msg.header().qr());
            for section in [msg.answer(), msg.authority(), msg.additional()] {
                for rr in section.unwrap() {
                    rr.unwrap();
                }
            }
            assert_eq!(&out[..2], &q[..2], "the id is echoed");
        }
    }
}
