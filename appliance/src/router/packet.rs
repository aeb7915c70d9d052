//! Byte-level helpers of the forwarding plane: header writers, checksum updates, ICMP
//! errors and IPv4 fragmentation. Every function works on caller-owned buffers and checks
//! lengths instead of trusting them.

use smoltcp::wire::{EthernetAddress, EthernetProtocol, IpProtocol, Ipv4Address, Ipv6Address};

/// The Internet checksum (RFC 1071) pieces: one's-complement sums, folded.
mod checksum {
    use super::{IpProtocol, Ipv4Address, Ipv6Address};

    fn add(mut acc: u32, data: &[u8]) -> u32 {
        let mut chunks = data.chunks_exact(2);
        for c in &mut chunks {
            acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        }
        if let [last] = chunks.remainder() {
            acc += u32::from(*last) << 8;
        }
        acc
    }

    fn fold(mut acc: u32) -> u16 {
        while acc > 0xffff {
            acc = (acc & 0xffff) + (acc >> 16);
        }
        acc as u16
    }

    /// The folded sum of `data`.
    pub fn data(data: &[u8]) -> u16 {
        // Sum in blocks so the 32-bit accumulator cannot overflow.
        let mut acc = 0u32;
        for block in data.chunks(1 << 15) {
            acc = u32::from(fold(add(acc, block)));
        }
        fold(acc)
    }

    /// The folded sum of several folded sums.
    pub fn combine(sums: &[u16]) -> u16 {
        fold(sums.iter().map(|&s| u32::from(s)).sum())
    }

    pub fn pseudo_header_v4(
        src: &Ipv4Address,
        dst: &Ipv4Address,
        proto: IpProtocol,
        len: u32,
    ) -> u16 {
        let mut acc = add(0, &src.octets());
        acc = add(acc, &dst.octets());
        acc += u32::from(u8::from(proto)) + len;
        fold(acc)
    }

    pub fn pseudo_header_v6(
        src: &Ipv6Address,
        dst: &Ipv6Address,
        proto: IpProtocol,
        len: u32,
    ) -> u16 {
        let mut acc = add(0, &src.octets());
        acc = add(acc, &dst.octets());
        acc += u32::from(u8::from(proto)) + (len >> 16) + (len & 0xffff);
        fold(acc)
    }
}

/// Ethernet header length.
pub const ETH_HEADER: usize = 14;
/// IPv4 header length without options.
pub const IPV4_HEADER: usize = 20;
/// IPv6 header length.
pub const IPV6_HEADER: usize = 40;
/// UDP header length.
pub const UDP_HEADER: usize = 8;
/// IPv6 packets the router generates (ICMPv6 errors) stay within the minimum MTU.
pub const IPV6_MIN_MTU: usize = 1280;
/// IPv4 errors quote at most this much: RFC 1812 §4.3.2.3 caps the error at 576 bytes.
pub const IPV4_ERROR_MAX: usize = 576;

/// Writes an Ethernet header into `buf[..14]`.
pub fn write_eth(buf: &mut [u8], dst: EthernetAddress, src: EthernetAddress, ty: EthernetProtocol) {
    buf[0..6].copy_from_slice(&dst.0);
    buf[6..12].copy_from_slice(&src.0);
    buf[12..14].copy_from_slice(&u16::from(ty).to_be_bytes());
}

/// The Internet checksum of `data` folded and complemented (ready to store).
fn finish(sum: u16) -> u16 {
    !sum
}

/// Writes a 20-byte IPv4 header (no options, DF clear, TTL 64) with its checksum.
pub fn write_ipv4(
    buf: &mut [u8],
    src: Ipv4Address,
    dst: Ipv4Address,
    proto: IpProtocol,
    payload_len: usize,
    ttl: u8,
) {
    let total = (IPV4_HEADER + payload_len) as u16;
    buf[0] = 0x45;
    buf[1] = 0;
    buf[2..4].copy_from_slice(&total.to_be_bytes());
    buf[4..8].copy_from_slice(&[0, 0, 0, 0]);
    buf[8] = ttl;
    buf[9] = u8::from(proto);
    buf[12..16].copy_from_slice(&src.octets());
    buf[16..20].copy_from_slice(&dst.octets());
    set_ipv4_checksum(&mut buf[..IPV4_HEADER]);
}

/// Computes and stores the header checksum of the IPv4 header `hdr` (options included).
pub fn set_ipv4_checksum(hdr: &mut [u8]) {
    hdr[10..12].copy_from_slice(&[0, 0]);
    let c = finish(checksum::data(hdr));
    hdr[10..12].copy_from_slice(&c.to_be_bytes());
}

/// Writes a 40-byte IPv6 header.
pub fn write_ipv6(
    buf: &mut [u8],
    src: Ipv6Address,
    dst: Ipv6Address,
    proto: IpProtocol,
    payload_len: usize,
    hop_limit: u8,
) {
    buf[0..4].copy_from_slice(&[0x60, 0, 0, 0]);
    buf[4..6].copy_from_slice(&(payload_len as u16).to_be_bytes());
    buf[6] = u8::from(proto);
    buf[7] = hop_limit;
    buf[8..24].copy_from_slice(&src.octets());
    buf[24..40].copy_from_slice(&dst.octets());
}

/// Writes a UDP header (checksum 0) for `payload_len` bytes already in place after it;
/// [`udp4_checksum`] / [`udp6_checksum`] fill the checksum in.
pub fn write_udp(buf: &mut [u8], src_port: u16, dst_port: u16, payload_len: usize) {
    let len = (UDP_HEADER + payload_len) as u16;
    buf[0..2].copy_from_slice(&src_port.to_be_bytes());
    buf[2..4].copy_from_slice(&dst_port.to_be_bytes());
    buf[4..6].copy_from_slice(&len.to_be_bytes());
    buf[6..8].copy_from_slice(&[0, 0]);
}

/// Fills in the checksum of the UDP datagram `udp` (header + payload) sent over IPv6.
pub fn udp6_checksum(udp: &mut [u8], src: &Ipv6Address, dst: &Ipv6Address) {
    udp[6..8].copy_from_slice(&[0, 0]);
    let c = finish(checksum::combine(&[
        checksum::pseudo_header_v6(src, dst, IpProtocol::Udp, udp.len() as u32),
        checksum::data(udp),
    ]));
    // 0 means "no checksum"; RFC 768 sends it as all ones.
    let c = if c == 0 { 0xffff } else { c };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
}

/// Fills in the checksum of the UDP datagram `udp` sent over IPv4.
pub fn udp4_checksum(udp: &mut [u8], src: &Ipv4Address, dst: &Ipv4Address) {
    udp[6..8].copy_from_slice(&[0, 0]);
    let c = finish(checksum::combine(&[
        checksum::pseudo_header_v4(src, dst, IpProtocol::Udp, udp.len() as u32),
        checksum::data(udp),
    ]));
    let c = if c == 0 { 0xffff } else { c };
    udp[6..8].copy_from_slice(&c.to_be_bytes());
}

/// Decrements the TTL of the IPv4 header `ip` and patches its checksum (RFC 1624).
pub fn decrement_ttl(ip: &mut [u8]) {
    let old = u16::from_be_bytes([ip[8], ip[9]]);
    ip[8] -= 1;
    let new = u16::from_be_bytes([ip[8], ip[9]]);
    let sum = u16::from_be_bytes([ip[10], ip[11]]);
    let patched = adjust(sum, old, new);
    ip[10..12].copy_from_slice(&patched.to_be_bytes());
}

/// The checksum `sum` after one 16-bit word changed from `old` to `new` (RFC 1624 eq. 3).
pub fn adjust(sum: u16, old: u16, new: u16) -> u16 {
    let mut acc = u32::from(!sum) + u32::from(!old) + u32::from(new);
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// An ICMPv4 error (`ty`, `code`, `word`: the 4 bytes after the checksum, e.g. the MTU of
/// "fragmentation needed") about `offender`, from `src`, written into `out`. Returns its
/// length, or `None` when `offender` must not get an error (RFC 1812 §4.3.2.7: not about an
/// ICMP error, a non-first fragment, or a packet from a non-unicast source).
pub fn icmpv4_error(
    out: &mut [u8],
    src: Ipv4Address,
    offender: &[u8],
    ty: u8,
    code: u8,
    word: u32,
) -> Option<usize> {
    if offender.len() < IPV4_HEADER {
        return None;
    }
    let ihl = usize::from(offender[0] & 0x0f) * 4;
    let frag_offset = u16::from_be_bytes([offender[6], offender[7]]) & 0x1fff;
    let dst = Ipv4Address::from_octets([offender[12], offender[13], offender[14], offender[15]]);
    if frag_offset != 0 || !is_v4_unicast(dst) {
        return None;
    }
    if offender[9] == u8::from(IpProtocol::Icmp) {
        // An error about an error (or anything we cannot tell) gets none.
        let t = *offender.get(ihl)?;
        if !matches!(t, 0 | 8 | 13 | 14 | 15 | 16 | 17 | 18) {
            return None;
        }
    }
    let icmp_len = icmp_error_body(out, IPV4_HEADER, IPV4_ERROR_MAX, offender, ty, code, word)?;
    let total = IPV4_HEADER + icmp_len;
    let icmp = &mut out[IPV4_HEADER..total];
    let c = finish(checksum::data(icmp));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    write_ipv4(out, src, dst, IpProtocol::Icmp, icmp_len, 64);
    Some(total)
}

/// Writes an ICMP(v6) error message (type, code, the 4-byte `word`, then as much of
/// `offender` as keeps the whole packet within `max`) at `out[header..]`, checksum zero;
/// returns its length, or `None` if `out` is too short.
fn icmp_error_body(
    out: &mut [u8],
    header: usize,
    max: usize,
    offender: &[u8],
    ty: u8,
    code: u8,
    word: u32,
) -> Option<usize> {
    let quote = offender.len().min(max - header - 8);
    let icmp = out.get_mut(header..header + 8 + quote)?;
    icmp[0] = ty;
    icmp[1] = code;
    icmp[2..4].copy_from_slice(&[0, 0]);
    icmp[4..8].copy_from_slice(&word.to_be_bytes());
    icmp[8..].copy_from_slice(&offender[..quote]);
    Some(8 + quote)
}

/// Whether an IPv4 address may be the destination of an error (or of forwarding).
pub fn is_v4_unicast(a: Ipv4Address) -> bool {
    !(a.is_unspecified() || a.is_broadcast() || a.is_multicast() || a.octets()[0] == 127)
}

/// An ICMPv6 error about `offender` from `src` (RFC 4443 §2.4: none about an ICMPv6 error
/// or to a multicast/unspecified source; quote as much as fits in 1280 bytes).
pub fn icmpv6_error(
    out: &mut [u8],
    src: Ipv6Address,
    offender: &[u8],
    ty: u8,
    code: u8,
    word: u32,
) -> Option<usize> {
    if offender.len() < IPV6_HEADER {
        return None;
    }
    let mut b = [0u8; 16];
    b.copy_from_slice(&offender[8..24]);
    let dst = Ipv6Address::from_octets(b);
    if dst.is_unspecified() || dst.is_multicast() {
        return None;
    }
    if offender[6] == u8::from(IpProtocol::Icmpv6) {
        // Informational messages have the high bit of the type set.
        let t = *offender.get(IPV6_HEADER)?;
        if t < 128 {
            return None;
        }
    }
    let icmp_len = icmp_error_body(out, IPV6_HEADER, IPV6_MIN_MTU, offender, ty, code, word)?;
    let total = IPV6_HEADER + icmp_len;
    let icmp = &mut out[IPV6_HEADER..total];
    let c = finish(checksum::combine(&[
        checksum::pseudo_header_v6(&src, &dst, IpProtocol::Icmpv6, icmp_len as u32),
        checksum::data(icmp),
    ]));
    icmp[2..4].copy_from_slice(&c.to_be_bytes());
    write_ipv6(out, src, dst, IpProtocol::Icmpv6, icmp_len, 64);
    Some(total)
}

/// How many fragments of at most `mtu` bytes the IPv4 packet `ip` (valid header) needs,
/// and the data bytes each carries; `None` if `mtu` leaves no room for data.
pub fn fragment_plan(ip: &[u8], mtu: usize) -> Option<(usize, usize)> {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    if ihl < IPV4_HEADER || total <= ihl {
        return None;
    }
    let per = mtu.checked_sub(ihl)? & !7;
    if per == 0 {
        return None;
    }
    Some(((total - ihl).div_ceil(per), per))
}

/// Builds fragment `k` of the plan [`fragment_plan`] made for `ip` into `out`; returns its
/// length. Options are copied into every fragment (RFC 791 asks that only for options
/// marked "copy"; options are rare in transit).
pub fn fragment(ip: &[u8], per: usize, k: usize, out: &mut [u8]) -> Option<usize> {
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([ip[2], ip[3]])).min(ip.len());
    let data = ip.get(ihl..total)?;
    let at = k.checked_mul(per)?;
    if at >= data.len() {
        return None;
    }
    let chunk = per.min(data.len() - at);
    let f = out.get_mut(..ihl + chunk)?;
    f[..ihl].copy_from_slice(&ip[..ihl]);
    f[ihl..].copy_from_slice(&data[at..at + chunk]);
    f[2..4].copy_from_slice(&((ihl + chunk) as u16).to_be_bytes());
    let flags_off = u16::from_be_bytes([ip[6], ip[7]]);
    let base = usize::from(flags_off & 0x1fff) * 8;
    let last = at + chunk == data.len();
    let mf = if last && flags_off & 0x2000 == 0 {
        0
    } else {
        0x2000
    };
    let off = ((base + at) / 8) as u16;
    f[6..8].copy_from_slice(&(off | mf).to_be_bytes());
    set_ipv4_checksum(&mut f[..ihl]);
    Some(ihl + chunk)
}

#[cfg(test)]
mod tests {
    use super::*;
    use smoltcp::wire::{Icmpv4Packet, Icmpv6Packet, Ipv4Packet};

    fn sample_v4(len: usize, df: bool) -> alloc::vec::Vec<u8> {
        let mut p = alloc::vec![0u8; len];
        write_ipv4(
            &mut p,
            Ipv4Address::new(10, 20, 1, 10),
            Ipv4Address::new(10, 20, 2, 10),
            IpProtocol::Udp,
            len - IPV4_HEADER,
            64,
        );
        if df {
            p[6] = 0x40;
            set_ipv4_checksum(&mut p[..20]);
        }
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        p
    }

    #[test]
    fn ttl_decrement_keeps_the_checksum_valid() {
        let mut p = sample_v4(60, true);
        for ttl in (1..64).rev() {
            decrement_ttl(&mut p);
            assert_eq!(p[8], ttl);
            assert!(Ipv4Packet::new_checked(&p[..]).unwrap().verify_checksum());
        }
    }

    #[test]
    fn icmpv4_error_quotes_the_offender_and_checks_out() {
        let p = sample_v4(1500, true);
        let mut out = [0u8; 1600];
        let src = Ipv4Address::new(10, 20, 1, 1);
        let n = icmpv4_error(&mut out, src, &p, 3, 4, 1420).unwrap();
        assert_eq!(n, IPV4_ERROR_MAX);
        let ip = Ipv4Packet::new_checked(&out[..n]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.dst_addr(), Ipv4Address::new(10, 20, 1, 10));
        let icmp = Icmpv4Packet::new_checked(ip.payload()).unwrap();
        assert!(icmp.verify_checksum());
        assert_eq!((icmp.msg_type().into(), icmp.msg_code()), (3u8, 4u8));
        assert_eq!(&ip.payload()[6..8], &1420u16.to_be_bytes());
        assert_eq!(&ip.payload()[8..28], &p[..20]);
    }

    #[test]
    fn no_icmp_error_about_an_error_or_a_later_fragment() {
        let src = Ipv4Address::new(10, 20, 1, 1);
        let mut out = [0u8; 600];
        let p = sample_v4(100, false);
        let n = icmpv4_error(&mut out, src, &p, 11, 0, 0).unwrap();
        let err = out[..n].to_vec();
        assert_eq!(icmpv4_error(&mut out, src, &err, 11, 0, 0), None);
        let mut frag = sample_v4(100, false);
        frag[7] = 3;
        assert_eq!(icmpv4_error(&mut out, src, &frag, 11, 0, 0), None);
        assert_eq!(icmpv4_error(&mut out, src, &p[..10], 11, 0, 0), None);
    }

    #[test]
    fn icmpv6_error_has_a_valid_checksum_and_fits_the_minimum_mtu() {
        let mut p = alloc::vec![0u8; 1500];
        let a = Ipv6Address::new(0xfd20, 0, 0, 1, 0, 0, 0, 10);
        let b = Ipv6Address::new(0xfd20, 0, 0, 2, 0, 0, 0, 10);
        write_ipv6(&mut p, a, b, IpProtocol::Udp, 1460, 64);
        let mut out = [0u8; 1500];
        let src = Ipv6Address::new(0xfd20, 0, 0, 1, 0, 0, 0, 1);
        let n = icmpv6_error(&mut out, src, &p, 2, 0, 1420).unwrap();
        assert_eq!(n, IPV6_MIN_MTU);
        let icmp = Icmpv6Packet::new_checked(&out[IPV6_HEADER..n]).unwrap();
        assert!(icmp.verify_checksum(&src, &a));
    }

    #[test]
    fn fragments_reassemble_to_the_original() {
        let p = sample_v4(1500, false);
        let mut scratch = [0u8; 1500];
        let mut data = alloc::vec::Vec::new();
        let mut offsets = alloc::vec::Vec::new();
        let (n, per) = fragment_plan(&p, 1420).unwrap();
        assert_eq!(n, 2);
        for k in 0..n {
            let len = fragment(&p, per, k, &mut scratch).unwrap();
            let f = &scratch[..len];
            let ip = Ipv4Packet::new_checked(f).unwrap();
            assert!(ip.verify_checksum());
            assert!(f.len() <= 1420);
            offsets.push((ip.frag_offset(), ip.more_frags()));
            data.extend_from_slice(ip.payload());
        }
        assert_eq!(fragment(&p, per, n, &mut scratch), None);
        assert_eq!(offsets, [(0, true), (1400, false)]);
        assert_eq!(&data[..], &p[20..]);
    }

    #[test]
    fn udp_checksums_verify() {
        use smoltcp::wire::UdpPacket;
        let mut d = [0u8; 8 + 13];
        d[8..].copy_from_slice(b"hello, world!");
        write_udp(&mut d, 51820, 51821, 13);
        let (s, t) = (Ipv4Address::new(1, 2, 3, 4), Ipv4Address::new(5, 6, 7, 8));
        udp4_checksum(&mut d, &s, &t);
        let u = UdpPacket::new_checked(&d[..]).unwrap();
        assert!(u.verify_checksum(&s.into(), &t.into()));
        let (s6, t6) = (
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Address::new(0xfd00, 0, 0, 0, 0, 0, 0, 2),
        );
        udp6_checksum(&mut d, &s6, &t6);
        let u = UdpPacket::new_checked(&d[..]).unwrap();
        assert!(u.verify_checksum(&s6.into(), &t6.into()));
    }
}
