//! IPv6 router advertisements for SLAAC on a segment (RFC 4861, RFC 4862), and recognition
//! of router solicitations.
//!
//! [`build_ra`] writes a whole IPv6 packet (header and ICMPv6 router advertisement with its
//! checksum) that makes a Linux host with `accept_ra=1` autoconfigure an address in each
//! advertised /64 and install a default route via the sender. [`parse_rs`] checks a received
//! IPv6 packet is a valid router solicitation (RFC 4861 6.1.1). Sans-I/O: timing (send an
//! RA every [`RA_INTERVAL_SECS`] and in answer to solicitations) is the caller's.
//!
//! What it does not do: DHCPv6 (the M and O flags are clear), DNS options (RDNSS/DNSSL,
//! RFC 8106), route information options, router preference, prefixes other than /64
//! (SLAAC needs /64; others are skipped), extension headers in solicitations.

use smoltcp::wire::{EthernetAddress, Ipv6Address, Ipv6Cidr};

/// Period of unsolicited router advertisements.
pub const RA_INTERVAL_SECS: u64 = 30;
/// Router lifetime to advertise: how long hosts keep the default route through us without
/// hearing another RA (60 missed unsolicited RAs).
pub const ROUTER_LIFETIME_SECS: u16 = 1800;
/// Least time between two advertisements to all nodes (RFC 4861 `MIN_DELAY_BETWEEN_RAS`);
/// answers to solicitations should be rate limited to it.
pub const MIN_DELAY_BETWEEN_RAS_SECS: u64 = 3;
/// Valid lifetime of each advertised prefix.
pub const PREFIX_VALID_SECS: u32 = 86_400;
/// Preferred lifetime of each advertised prefix.
pub const PREFIX_PREFERRED_SECS: u32 = 14_400;
/// Hop limit advertised for hosts' own packets ("Cur Hop Limit").
pub const ADVERTISED_HOP_LIMIT: u8 = 64;
/// The all-nodes group, destination of unsolicited advertisements.
pub const ALL_NODES: Ipv6Address = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

const IPV6_HEADER_LEN: usize = 40;
const NEXT_HEADER_ICMPV6: u8 = 58;
const ND_HOP_LIMIT: u8 = 255;
const ICMPV6_ROUTER_SOLICIT: u8 = 133;
const ICMPV6_ROUTER_ADVERT: u8 = 134;
const RA_HEADER_LEN: usize = 16;
const OPT_SOURCE_LL: u8 = 1;
const OPT_PREFIX_INFO: u8 = 3;
const OPT_MTU: u8 = 5;
const SOURCE_LL_LEN: usize = 8;
const MTU_OPT_LEN: usize = 8;
const PREFIX_OPT_LEN: usize = 32;
const PREFIX_FLAG_ON_LINK: u8 = 0x80;
const PREFIX_FLAG_AUTONOMOUS: u8 = 0x40;
/// The IPv6 minimum MTU; a smaller MTU is not advertised (hosts would ignore it).
const MIN_MTU: u16 = 1280;

/// Whether `prefix` is advertised: a /64 that is not link-local or multicast.
fn advertised(prefix: &Ipv6Cidr) -> bool {
    let a = prefix.address();
    prefix.prefix_len() == 64 && !a.is_unicast_link_local() && !a.is_multicast()
}

/// Length of the packet [`build_ra`] writes for these prefixes and MTU.
pub fn ra_len(prefixes: &[Ipv6Cidr], mtu: u16) -> usize {
    let mtu_len = if mtu >= MIN_MTU { MTU_OPT_LEN } else { 0 };
    let count = prefixes.iter().filter(|p| advertised(p)).count();
    IPV6_HEADER_LEN + RA_HEADER_LEN + SOURCE_LL_LEN + mtu_len + count * PREFIX_OPT_LEN
}

/// Writes a whole IPv6 packet (header + ICMPv6 RA with correct checksum, hop limit 255) into
/// `out`, returns its length.
///
/// The RA carries: current hop limit [`ADVERTISED_HOP_LIMIT`], M/O flags clear, the given
/// router lifetime (0 = not a default router), reachable time and retransmit timer
/// unspecified, the source link-layer address `mac`, the MTU option if `mtu >= 1280`, and a
/// Prefix Information option (on-link and autonomous, valid [`PREFIX_VALID_SECS`], preferred
/// [`PREFIX_PREFERRED_SECS`]) for each /64 in `prefixes` (others are skipped; host bits are
/// cleared). `src_link_local` must be the router's fe80::/10 address (hosts ignore RAs from
/// other sources); `dst` is [`ALL_NODES`] or the soliciting host.
///
/// Returns 0 and writes nothing if `out` is shorter than [`ra_len`].
pub fn build_ra(
    out: &mut [u8],
    src_link_local: Ipv6Address,
    dst: Ipv6Address,
    mac: EthernetAddress,
    prefixes: &[Ipv6Cidr],
    mtu: u16,
    router_lifetime_secs: u16,
) -> usize {
    let len = ra_len(prefixes, mtu);
    let Ok(icmp_len) = u16::try_from(len - IPV6_HEADER_LEN) else {
        return 0;
    };
    let Some(out) = out.get_mut(..len) else {
        return 0;
    };
    out.fill(0);

    // IPv6 header: version 6, traffic class and flow label 0.
    out[0] = 0x60;
    out[4..6].copy_from_slice(&icmp_len.to_be_bytes());
    out[6] = NEXT_HEADER_ICMPV6;
    out[7] = ND_HOP_LIMIT;
    out[8..24].copy_from_slice(&src_link_local.octets());
    out[24..40].copy_from_slice(&dst.octets());

    let icmp = &mut out[IPV6_HEADER_LEN..];
    icmp[0] = ICMPV6_ROUTER_ADVERT;
    icmp[4] = ADVERTISED_HOP_LIMIT;
    icmp[6..8].copy_from_slice(&router_lifetime_secs.to_be_bytes());
    // Reachable time (8..12) and retransmit timer (12..16) stay 0: unspecified.

    let mut at = RA_HEADER_LEN;
    icmp[at] = OPT_SOURCE_LL;
    icmp[at + 1] = 1; // in units of 8 octets
    icmp[at + 2..at + 8].copy_from_slice(&mac.0);
    at += SOURCE_LL_LEN;

    if mtu >= MIN_MTU {
        icmp[at] = OPT_MTU;
        icmp[at + 1] = 1;
        icmp[at + 4..at + 8].copy_from_slice(&u32::from(mtu).to_be_bytes());
        at += MTU_OPT_LEN;
    }

    for prefix in prefixes.iter().filter(|p| advertised(p)) {
        let o = &mut icmp[at..at + PREFIX_OPT_LEN];
        o[0] = OPT_PREFIX_INFO;
        o[1] = 4;
        o[2] = 64;
        o[3] = PREFIX_FLAG_ON_LINK | PREFIX_FLAG_AUTONOMOUS;
        o[4..8].copy_from_slice(&PREFIX_VALID_SECS.to_be_bytes());
        o[8..12].copy_from_slice(&PREFIX_PREFERRED_SECS.to_be_bytes());
        // 12..16 reserved; the prefix with its interface identifier cleared.
        o[16..24].copy_from_slice(&prefix.address().octets()[..8]);
        at += PREFIX_OPT_LEN;
    }

    let sum = icmpv6_checksum(&src_link_local, &dst, icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    len
}

/// A valid router solicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterSolicit {
    /// The soliciting host's address (unspecified if it has none yet).
    pub src: Ipv6Address,
    /// Its Source Link-Layer Address option, if it sent one.
    pub src_mac: Option<EthernetAddress>,
}

/// Recognizes a router solicitation in a whole IPv6 packet (`ip_packet` starts at the IPv6
/// header; bytes past the payload length, such as Ethernet padding, are ignored).
///
/// Returns `None` for anything else or anything invalid per RFC 4861 6.1.1: not ICMPv6
/// directly after the header, hop limit not 255, bad checksum, code not 0, shorter than 8
/// octets, an option of length 0 or overrunning, or a source link-layer option with an
/// unspecified source. The answer is an RA to [`ALL_NODES`] (simplest; needs no neighbor
/// entry), at most one per [`MIN_DELAY_BETWEEN_RAS_SECS`].
pub fn parse_rs(ip_packet: &[u8]) -> Option<RouterSolicit> {
    let header = ip_packet.get(..IPV6_HEADER_LEN)?;
    if header[0] >> 4 != 6 || header[6] != NEXT_HEADER_ICMPV6 || header[7] != ND_HOP_LIMIT {
        return None;
    }
    let payload_len = usize::from(u16::from_be_bytes([header[4], header[5]]));
    let icmp = ip_packet.get(IPV6_HEADER_LEN..IPV6_HEADER_LEN.checked_add(payload_len)?)?;
    let src = Ipv6Address::from(<[u8; 16]>::try_from(&header[8..24]).ok()?);
    let dst = Ipv6Address::from(<[u8; 16]>::try_from(&header[24..40]).ok()?);
    if icmp.len() < 8 || icmp[0] != ICMPV6_ROUTER_SOLICIT || icmp[1] != 0 {
        return None;
    }
    if icmpv6_checksum(&src, &dst, icmp) != 0 {
        return None;
    }
    let mut src_mac = None;
    let mut opts = &icmp[8..];
    // Each option is at least 8 octets long, so this ends.
    while !opts.is_empty() {
        let units = usize::from(*opts.get(1)?);
        if units == 0 {
            return None;
        }
        let (opt, rest) = opts.split_at_checked(units * 8)?;
        if opt[0] == OPT_SOURCE_LL {
            if src.is_unspecified() {
                return None;
            }
            if src_mac.is_none() {
                src_mac = Some(EthernetAddress::from_bytes(&opt[2..8]));
            }
        }
        opts = rest;
    }
    Some(RouterSolicit { src, src_mac })
}

/// The Ethernet address an IPv6 multicast destination maps to (RFC 2464 7: 33:33 and the
/// low 32 bits), e.g. 33:33:00:00:00:01 for [`ALL_NODES`].
pub fn multicast_mac(group: Ipv6Address) -> EthernetAddress {
    let o = group.octets();
    EthernetAddress([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The ICMPv6 checksum of `icmp` (RFC 4443 2.3) over the IPv6 pseudo-header. With the
/// checksum field zero this is the value to store; over a packet with a correct checksum it
/// is 0.
fn icmpv6_checksum(src: &Ipv6Address, dst: &Ipv6Address, icmp: &[u8]) -> u16 {
    fn add(sum: u64, data: &[u8]) -> u64 {
        let mut sum = sum;
        let mut chunks = data.chunks_exact(2);
        for pair in &mut chunks {
            sum += u64::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        if let [last] = chunks.remainder() {
            sum += u64::from(*last) << 8;
        }
        sum
    }
    let mut sum = add(0, &src.octets());
    sum = add(sum, &dst.octets());
    sum += icmp.len() as u64;
    sum += u64::from(NEXT_HEADER_ICMPV6);
    sum = add(sum, icmp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;
    use alloc::vec::Vec;
    use smoltcp::wire::{
        Icmpv6Packet, IpProtocol, Ipv6Packet, NdiscOption, NdiscOptionType, NdiscPrefixInfoFlags,
        NdiscRepr, NdiscRouterFlags, RawHardwareAddress,
    };

    const MAC: EthernetAddress = EthernetAddress([0x02, 0x00, 0x5e, 0x00, 0x00, 0x01]);
    const LL: Ipv6Address = Ipv6Address::new(0xfe80, 0, 0, 0, 0, 0x5eff, 0xfe00, 1);
    const HOST: Ipv6Address = Ipv6Address::new(0xfe80, 0, 0, 0, 0x1c2d, 0x3eff, 0xfe4f, 0x5a6b);

    fn cidr(a: Ipv6Address, len: u8) -> Ipv6Cidr {
        Ipv6Cidr::new(a, len)
    }

    #[test]
    fn ra_parses_with_smoltcp() {
        let prefixes = [
            cidr(Ipv6Address::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1), 64),
            cidr(Ipv6Address::new(0xfd00, 0, 0, 2, 0, 0, 0, 0), 64),
            cidr(Ipv6Address::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 48), // not SLAAC: skipped
            cidr(LL, 64),                                                // link-local: skipped
        ];
        let mut out = [0u8; 1280];
        let len = build_ra(&mut out, LL, ALL_NODES, MAC, &prefixes, 1420, 1800);
        assert_eq!(len, 40 + 16 + 8 + 8 + 2 * 32);
        assert_eq!(len, ra_len(&prefixes, 1420));

        let ip = Ipv6Packet::new_checked(&out[..len]).unwrap();
        assert_eq!(ip.version(), 6);
        assert_eq!(ip.hop_limit(), 255);
        assert_eq!(ip.next_header(), IpProtocol::Icmpv6);
        assert_eq!(ip.src_addr(), LL);
        assert_eq!(ip.dst_addr(), ALL_NODES);
        assert_eq!(usize::from(ip.payload_len()), len - 40);

        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&LL, &ALL_NODES));
        match NdiscRepr::parse(&icmp).unwrap() {
            NdiscRepr::RouterAdvert {
                hop_limit,
                flags,
                router_lifetime,
                reachable_time,
                retrans_time,
                lladdr,
                mtu,
                prefix_info,
            } => {
                assert_eq!(hop_limit, ADVERTISED_HOP_LIMIT);
                assert_eq!(flags, NdiscRouterFlags::empty());
                assert_eq!(router_lifetime.secs(), 1800);
                assert_eq!(reachable_time.secs(), 0);
                assert_eq!(retrans_time.secs(), 0);
                assert_eq!(lladdr, Some(RawHardwareAddress::from_bytes(&MAC.0)));
                assert_eq!(mtu, Some(1420));
                // smoltcp keeps the last prefix option.
                let p = prefix_info.unwrap();
                assert_eq!(p.prefix, Ipv6Address::new(0xfd00, 0, 0, 2, 0, 0, 0, 0));
                assert_eq!(p.prefix_len, 64);
                assert_eq!(
                    p.flags,
                    NdiscPrefixInfoFlags::ON_LINK | NdiscPrefixInfoFlags::ADDRCONF
                );
                assert_eq!(p.valid_lifetime.secs(), u64::from(PREFIX_VALID_SECS));
                assert_eq!(
                    p.preferred_lifetime.secs(),
                    u64::from(PREFIX_PREFERRED_SECS)
                );
            }
            other => panic!("not an RA: {other:?}"),
        }

        // Walk every option with smoltcp's option reader: all prefixes, host bits cleared.
        let mut seen = Vec::new();
        let mut opts = icmp.payload();
        while !opts.is_empty() {
            let o = NdiscOption::new_checked(opts).unwrap();
            if o.option_type() == NdiscOptionType::PrefixInformation {
                assert_eq!(
                    o.prefix_flags(),
                    NdiscPrefixInfoFlags::ON_LINK | NdiscPrefixInfoFlags::ADDRCONF
                );
                seen.push((o.prefix(), o.prefix_len()));
            }
            opts = &opts[usize::from(o.data_len()) * 8..];
        }
        assert_eq!(
            seen,
            vec![
                (Ipv6Address::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0), 64),
                (Ipv6Address::new(0xfd00, 0, 0, 2, 0, 0, 0, 0), 64),
            ]
        );
    }

    #[test]
    fn ra_unicast_no_prefixes_small_mtu_and_short_buffer() {
        let mut out = [0u8; 200];
        let len = build_ra(&mut out, LL, HOST, MAC, &[], 1000, 0);
        assert_eq!(len, 40 + 16 + 8, "no prefix, no MTU option below 1280");
        let ip = Ipv6Packet::new_checked(&out[..len]).unwrap();
        assert_eq!(ip.dst_addr(), HOST);
        let icmp = Icmpv6Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum(&LL, &HOST));
        assert!(matches!(
            NdiscRepr::parse(&icmp).unwrap(),
            NdiscRepr::RouterAdvert {
                mtu: None,
                prefix_info: None,
                ..
            }
        ));
        // A checksum check that can fail: flip a bit.
        let mut bad = out;
        bad[len - 1] ^= 1;
        let icmp = Icmpv6Packet::new_checked(&bad[40..len]).unwrap();
        assert!(!icmp.verify_checksum(&LL, &HOST));

        let p = [cidr(Ipv6Address::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 0), 64)];
        let need = ra_len(&p, 1500);
        let mut out = [0xeeu8; 200];
        assert_eq!(
            build_ra(&mut out[..need - 1], LL, ALL_NODES, MAC, &p, 1500, 1800),
            0
        );
        assert!(out.iter().all(|&b| b == 0xee), "nothing written");
        assert_eq!(
            build_ra(&mut out[..need], LL, ALL_NODES, MAC, &p, 1500, 1800),
            need
        );
    }

    /// A router solicitation built with smoltcp.
    fn rs(src: Ipv6Address, lladdr: Option<EthernetAddress>, hop_limit: u8) -> Vec<u8> {
        let repr = NdiscRepr::RouterSolicit {
            lladdr: lladdr.map(|m| RawHardwareAddress::from_bytes(&m.0)),
        };
        let dst = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
        let icmp_len = repr.buffer_len();
        let mut b = vec![0u8; 40 + icmp_len];
        b[0] = 0x60;
        b[4..6].copy_from_slice(&(icmp_len as u16).to_be_bytes());
        b[6] = 58;
        b[7] = hop_limit;
        b[8..24].copy_from_slice(&src.octets());
        b[24..40].copy_from_slice(&dst.octets());
        let mut icmp = Icmpv6Packet::new_unchecked(&mut b[40..]);
        repr.emit(&mut icmp);
        icmp.fill_checksum(&src, &dst);
        b
    }

    #[test]
    fn router_solicitations() {
        let host_mac = EthernetAddress([0x1e, 0x2d, 0x3e, 0x4f, 0x5a, 0x6b]);
        let good = rs(HOST, Some(host_mac), 255);
        assert_eq!(
            parse_rs(&good),
            Some(RouterSolicit {
                src: HOST,
                src_mac: Some(host_mac)
            })
        );
        // Ethernet padding after the payload is ignored.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 6]);
        assert!(parse_rs(&padded).is_some());
        // Unspecified source without a link-layer option is valid; with one it is not.
        let anon = rs(Ipv6Address::UNSPECIFIED, None, 255);
        assert_eq!(parse_rs(&anon).unwrap().src_mac, None);
        assert_eq!(
            parse_rs(&rs(Ipv6Address::UNSPECIFIED, Some(host_mac), 255)),
            None
        );
        // Forwarded (hop limit below 255), bad checksum, not an RS, zero-length option.
        assert_eq!(parse_rs(&rs(HOST, None, 254)), None);
        let mut b = good.clone();
        b[45] ^= 0x10;
        assert_eq!(parse_rs(&b), None);
        let mut out = [0u8; 200];
        let len = build_ra(&mut out, LL, ALL_NODES, MAC, &[], 1500, 1800);
        assert_eq!(parse_rs(&out[..len]), None);
        let mut b = good.clone();
        b[49] = 0;
        let (src, dst) = (HOST, Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 2));
        b[42..44].fill(0);
        let sum = icmpv6_checksum(&src, &dst, &b[40..]);
        b[42..44].copy_from_slice(&sum.to_be_bytes());
        assert_eq!(parse_rs(&b), None);
        // Every truncation fails cleanly (the payload length no longer fits).
        for cut in 0..good.len() {
            assert_eq!(parse_rs(&good[..cut]), None);
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let good = rs(HOST, Some(MAC), 255);
        for round in 0..50_000usize {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut b = if round % 2 == 0 {
                good.clone()
            } else {
                vec![0x60; (x % 120) as usize]
            };
            if !b.is_empty() {
                let at = (x >> 8) as usize % b.len();
                b[at] = (x >> 32) as u8;
            }
            let _ = parse_rs(&b);
        }
    }

    #[test]
    fn multicast_mapping() {
        assert_eq!(
            multicast_mac(ALL_NODES),
            EthernetAddress([0x33, 0x33, 0, 0, 0, 1])
        );
    }
}
