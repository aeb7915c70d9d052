//! One response: read the query, decide what the answer holds (a [`Plan`]), compose it.
//!
//! Deciding and composing are apart so that an answer that does not fit can be composed
//! again, truncated, from the same plan: TC=1, the question and the OPT record only.

use core::cmp::{max, min};

use domain::base::iana::{Class, Opcode, OptRcode, Rtype};
use domain::base::message_builder::{MessageBuilder, PushError, StaticCompressor};
use domain::base::name::{ParsedName, ToLabelIter};
use domain::base::opt::{Opt, OptRecord};
use domain::base::{Message, Question, Serial, Ttl};
use domain::rdata::{Aaaa, Ns, Soa, A};

use super::target::SliceTarget;
use super::zone::{NodeKind, Place, MAX_WIRE_NAME};
use super::{DnsServer, UDP_PAYLOAD};

/// How the query came.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    Udp,
    Tcp,
}

/// The smallest UDP payload every client takes (RFC 1035 §4.2.1).
const MIN_UDP: usize = 512;
/// An OPT record without options.
const OPT_LEN: usize = 11;

/// What goes into the answer and authority sections.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Nothing (an error, or a truncated answer).
    None,
    /// The node's IPv4 addresses, starting at `start`.
    V4 { node: usize, start: usize },
    /// The node's IPv6 addresses, starting at `start`.
    V6 { node: usize, start: usize },
    /// The zone's SOA.
    Soa { zone: usize },
    /// The zone's NS records, their glue in the additional section.
    Ns { zone: usize },
    /// NODATA or NXDOMAIN: the zone's SOA in the authority section.
    Negative { zone: usize },
}

/// The response to compose.
struct Plan<'q> {
    id: u16,
    opcode: Opcode,
    rd: bool,
    cd: bool,
    aa: bool,
    rcode: OptRcode,
    question: Option<Question<ParsedName<&'q [u8]>>>,
    /// The query had an OPT record: answer with one.
    edns: bool,
    /// The requestor's UDP payload size (512 without EDNS).
    payload: usize,
    content: Content,
}

/// Answers `query` into `out`; `None` when nothing is to be sent (counted). `slip` sends
/// the truncated form whatever the answer (the rate limiter's choice).
pub(super) fn respond(
    server: &mut DnsServer,
    query: &[u8],
    transport: Transport,
    slip: bool,
    out: &mut [u8],
) -> Option<usize> {
    let Ok(msg) = Message::from_slice(query) else {
        server.counters.dropped_short += 1;
        return None;
    };
    let plan = plan(server, msg);
    let limit = match transport {
        Transport::Udp => min(
            out.len(),
            max(MIN_UDP, min(plan.payload, UDP_PAYLOAD.into())),
        ),
        Transport::Tcp => out.len(),
    };
    let out = &mut out[..limit];
    if slip {
        return compose(server, &plan, out, true).ok().or_else(|| {
            server.counters.dropped_no_room += 1;
            None
        });
    }
    let n = match compose(server, &plan, out, false) {
        Ok(n) => n,
        Err(_) => match compose(server, &plan, out, true) {
            Ok(n) => {
                server.counters.truncated += 1;
                n
            }
            Err(_) => {
                server.counters.dropped_no_room += 1;
                return None;
            }
        },
    };
    let c = &mut server.counters;
    match plan.rcode {
        OptRcode::NOERROR => match plan.content {
            Content::Negative { .. } | Content::None => c.nodata += 1,
            _ => c.answers += 1,
        },
        OptRcode::NXDOMAIN => c.nxdomain += 1,
        OptRcode::REFUSED => c.refused += 1,
        OptRcode::NOTIMP => c.notimp += 1,
        OptRcode::BADVERS => c.badvers += 1,
        _ => c.formerr += 1,
    }
    Some(n)
}

/// Decides the response to `msg` (its header is known to be there).
fn plan<'q>(server: &mut DnsServer, msg: &'q Message<[u8]>) -> Plan<'q> {
    let header = msg.header();
    let mut plan = Plan {
        id: header.id(),
        opcode: header.opcode(),
        rd: header.rd(),
        cd: header.cd(),
        aa: false,
        rcode: OptRcode::NOERROR,
        question: None,
        edns: false,
        payload: MIN_UDP,
        content: Content::None,
    };
    if header.opcode() != Opcode::QUERY {
        plan.rcode = OptRcode::NOTIMP;
        return plan;
    }
    plan.rcode = OptRcode::FORMERR;
    if msg.header_counts().qdcount() != 1 {
        return plan;
    }
    let Ok(question) = msg.sole_question() else {
        return plan;
    };
    let qtype = question.qtype();
    let qclass = question.qclass();
    let mut lower = [0u8; MAX_WIRE_NAME];
    let name = lowercase_wire(question.qname(), &mut lower);
    plan.question = Some(question);
    match edns(msg) {
        Err(()) => return plan,
        Ok(None) => {}
        Ok(Some((payload, version))) => {
            plan.edns = true;
            plan.payload = payload.into();
            if version > 0 {
                plan.rcode = OptRcode::BADVERS;
                return plan;
            }
        }
    }
    let Some(name) = name else {
        return plan;
    };
    if qtype == Rtype::OPT {
        return plan;
    }
    plan.rcode = OptRcode::REFUSED;
    if qclass != Class::IN || qtype == Rtype::AXFR || qtype == Rtype::IXFR {
        return plan;
    }
    let Place::Inside {
        zone,
        apex,
        node,
        exists,
    } = server.data.place(name)
    else {
        return plan;
    };
    plan.aa = true;
    plan.rcode = OptRcode::NOERROR;
    let (v4, v6) = node.map_or((0, 0), |i| {
        let n = &server.data.nodes[i];
        (n.v4.len(), n.v6.len())
    });
    let mut turn = |len: usize| {
        node.map_or(0, |i| {
            let n = &mut server.data.nodes[i];
            n.turn = n.turn.wrapping_add(1);
            n.turn as usize % len
        })
    };
    plan.content = match qtype {
        Rtype::SOA | Rtype::ANY if apex => Content::Soa { zone },
        Rtype::NS if apex => Content::Ns { zone },
        Rtype::A | Rtype::ANY if v4 > 0 => Content::V4 {
            node: node.unwrap_or(0),
            start: turn(v4),
        },
        Rtype::AAAA | Rtype::ANY if v6 > 0 => Content::V6 {
            node: node.unwrap_or(0),
            start: turn(v6),
        },
        _ => {
            if !exists {
                plan.rcode = OptRcode::NXDOMAIN;
            }
            Content::Negative { zone }
        }
    };
    plan
}

/// The OPT record's payload size and version; `Err` for a malformed message or OPT, or
/// two of them (RFC 6891 §6.1.1).
fn edns(msg: &Message<[u8]>) -> Result<Option<(u16, u8)>, ()> {
    let mut found = None;
    for record in msg.additional().map_err(|_| ())? {
        let record = record.map_err(|_| ())?;
        if record.rtype() != Rtype::OPT {
            continue;
        }
        if found.is_some() || !record.owner().is_root() {
            return Err(());
        }
        let Ok(Some(opt)) = record.to_record::<Opt<_>>() else {
            return Err(());
        };
        let opt = OptRecord::from(opt);
        found = Some((opt.udp_payload_size(), opt.version()));
    }
    Ok(found)
}

/// `name` in lowercase wire form in `buf`; `None` if it does not fit (it always does: the
/// parser takes no name over 255 bytes).
fn lowercase_wire<'b>(name: &ParsedName<&[u8]>, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let mut len = 0;
    for label in name.iter_labels() {
        let bytes = label.as_slice();
        let dst = buf.get_mut(len..len + 1 + bytes.len())?;
        dst[0] = bytes.len() as u8;
        for (d, s) in dst[1..].iter_mut().zip(bytes) {
            *d = s.to_ascii_lowercase();
        }
        len += dst.len();
    }
    buf.get(..len)
}

/// Composes `plan` into `out`, or its truncated form; the length written.
fn compose(
    server: &DnsServer,
    plan: &Plan<'_>,
    out: &mut [u8],
    truncated: bool,
) -> Result<usize, PushError> {
    let limit = out.len();
    let mut msg = MessageBuilder::from_target(StaticCompressor::new(SliceTarget::new(out)))
        .map_err(|_| PushError::ShortBuf)?;
    let h = msg.header_mut();
    h.set_id(plan.id);
    h.set_qr(true);
    h.set_opcode(plan.opcode);
    h.set_rd(plan.rd);
    h.set_cd(plan.cd);
    h.set_aa(plan.aa);
    h.set_tc(truncated);
    h.set_rcode(plan.rcode.rcode());
    if plan.edns {
        // The OPT record always fits: everything else stops short of its room.
        msg.set_push_limit(limit.checked_sub(OPT_LEN).ok_or(PushError::ShortBuf)?);
    }
    let mut question = msg.question();
    if let Some(q) = &plan.question {
        question.push(q)?;
    }
    let mut answer = question.answer();
    let data = &server.data;
    let record = |ttl: u32| (Class::IN, Ttl::from_secs(ttl));
    let (zone_ttl, ttl) = (server.zone_ttl, server.ttl);
    let content = match (&plan.question, truncated) {
        (Some(q), false) => Some((q.qname(), plan.content)),
        _ => None,
    };
    if let Some((qname, content)) = content {
        // A name server's addresses keep the zone's TTL, as in the glue.
        let ttl = match content {
            Content::V4 { node, .. } | Content::V6 { node, .. }
                if data.nodes[node].kind == NodeKind::Glue =>
            {
                zone_ttl
            }
            _ => ttl,
        };
        let (class, ttl) = record(ttl);
        match content {
            Content::V4 { node, start } => {
                let list = &data.nodes[node].v4;
                for i in 0..list.len() {
                    let addr = list[(start + i) % list.len()];
                    answer.push((qname, class, ttl, A::new(addr)))?;
                }
            }
            Content::V6 { node, start } => {
                let list = &data.nodes[node].v6;
                for i in 0..list.len() {
                    let addr = list[(start + i) % list.len()];
                    answer.push((qname, class, ttl, Aaaa::new(addr)))?;
                }
            }
            Content::Soa { zone } => {
                let (class, ttl) = record(zone_ttl);
                answer.push((qname, class, ttl, soa(server, zone)))?;
            }
            Content::Ns { zone } => {
                let (class, ttl) = record(zone_ttl);
                for ns in &data.zones[zone].name_servers {
                    answer.push((qname, class, ttl, Ns::new(ns)))?;
                }
            }
            Content::None | Content::Negative { .. } => {}
        }
    }
    let mut authority = answer.authority();
    if let Some((_, Content::Negative { zone })) = content {
        let z = &data.zones[zone];
        let (class, ttl) = record(min(zone_ttl, z.minimum));
        authority.push((&z.apex, class, ttl, soa(server, zone)))?;
    }
    let mut additional = authority.additional();
    if let Some((_, Content::Ns { zone })) = content {
        let (class, ttl) = record(zone_ttl);
        for ns in &data.zones[zone].name_servers {
            let Some(glue) = data.glue(ns.as_slice()) else {
                continue;
            };
            for addr in &glue.v4 {
                additional.push((ns, class, ttl, A::new(*addr)))?;
            }
            for addr in &glue.v6 {
                additional.push((ns, class, ttl, Aaaa::new(*addr)))?;
            }
        }
    }
    if plan.edns {
        additional.as_builder_mut().clear_push_limit();
        additional.opt(|opt| {
            opt.set_udp_payload_size(UDP_PAYLOAD);
            opt.set_rcode(plan.rcode);
            Ok(())
        })?;
    }
    Ok(additional.finish().into_target().len())
}

/// The SOA record data of zone `zone`.
fn soa(server: &DnsServer, zone: usize) -> Soa<&domain::base::Name<alloc::vec::Vec<u8>>> {
    let z = &server.data.zones[zone];
    // A zone has at least one name server (checked in `Data::new`).
    let mname = z.name_servers.first().unwrap_or(&z.apex);
    Soa::new(
        mname,
        &z.hostmaster,
        Serial(z.serial),
        Ttl::from_secs(z.refresh),
        Ttl::from_secs(z.retry),
        Ttl::from_secs(z.expire),
        Ttl::from_secs(z.minimum),
    )
}
