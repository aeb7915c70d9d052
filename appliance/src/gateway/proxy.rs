//! PROXY protocol version 2: telling a backend who the client really is.
//!
//! A backend that asked for it (`ProxyProtocol = v2`) gets, before the client's first
//! byte, a binary header with the client's address and port and the public address and
//! port it connected to (the HAProxy PROXY protocol spec, section 2.2). [`header`] writes
//! it for TCP over IPv4 or IPv6; when the two addresses are of different families both
//! are written as IPv6 (IPv4-mapped).
//!
//! [`parse`] reads one back. The gateway never accepts PROXY headers from clients; the
//! parser is here for the tests and the fuzzer, and for a backend-side check.

use core::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The 12-byte signature every v2 header starts with.
pub const SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest header [`header`] writes (TCP over IPv6).
pub const MAX_HEADER_LEN: usize = 16 + 36;

const VERSION_2: u8 = 0x20;
const CMD_LOCAL: u8 = 0x00;
const CMD_PROXY: u8 = 0x01;
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;

/// A PROXY v2 header, ready to send: `len` bytes of `bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    bytes: [u8; MAX_HEADER_LEN],
    len: usize,
}

impl Header {
    /// The header's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

/// The header for a TCP connection from `client` to our public `local` address.
pub fn header(client: SocketAddr, local: SocketAddr) -> Header {
    let mut bytes = [0u8; MAX_HEADER_LEN];
    bytes[..12].copy_from_slice(&SIGNATURE);
    bytes[12] = VERSION_2 | CMD_PROXY;
    let len = match (client.ip(), local.ip()) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            bytes[13] = TCP4;
            bytes[14..16].copy_from_slice(&12u16.to_be_bytes());
            bytes[16..20].copy_from_slice(&src.octets());
            bytes[20..24].copy_from_slice(&dst.octets());
            bytes[24..26].copy_from_slice(&client.port().to_be_bytes());
            bytes[26..28].copy_from_slice(&local.port().to_be_bytes());
            28
        }
        (src, dst) => {
            bytes[13] = TCP6;
            bytes[14..16].copy_from_slice(&36u16.to_be_bytes());
            bytes[16..32].copy_from_slice(&as_v6(src).octets());
            bytes[32..48].copy_from_slice(&as_v6(dst).octets());
            bytes[48..50].copy_from_slice(&client.port().to_be_bytes());
            bytes[50..52].copy_from_slice(&local.port().to_be_bytes());
            52
        }
    };
    Header { bytes, len }
}

fn as_v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// A header read by [`parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parsed {
    /// Bytes the header takes, TLVs included; the connection's data starts after them.
    pub len: usize,
    /// `Some((client, local))` for a PROXY command over TCP4/TCP6; `None` for LOCAL (a
    /// health check from the proxy itself) and for other address families.
    pub addresses: Option<(SocketAddr, SocketAddr)>,
}

/// Why [`parse`] refused the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// The header is not complete yet.
    NeedMore,
    /// The bytes do not start with the v2 signature.
    NoSignature,
    /// Not version 2, or a command other than LOCAL and PROXY.
    BadVersionOrCommand,
    /// The address block is shorter than its family needs.
    BadLength,
}

/// Reads a PROXY v2 header at the start of `bytes`. Never panics.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ParseError> {
    let sig = bytes.len().min(SIGNATURE.len());
    if bytes[..sig] != SIGNATURE[..sig] {
        return Err(ParseError::NoSignature);
    }
    if bytes.len() < 16 {
        return Err(ParseError::NeedMore);
    }
    let version = bytes[12] & 0xf0;
    let command = bytes[12] & 0x0f;
    if version != VERSION_2 || (command != CMD_LOCAL && command != CMD_PROXY) {
        return Err(ParseError::BadVersionOrCommand);
    }
    let block = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    let len = 16 + block;
    if bytes.len() < len {
        return Err(ParseError::NeedMore);
    }
    let a = &bytes[16..len];
    let addresses = match (command, bytes[13]) {
        (CMD_PROXY, TCP4) => {
            if a.len() < 12 {
                return Err(ParseError::BadLength);
            }
            let ip = |at: usize| IpAddr::from([a[at], a[at + 1], a[at + 2], a[at + 3]]);
            let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
            Some((
                SocketAddr::new(ip(0), port(8)),
                SocketAddr::new(ip(4), port(10)),
            ))
        }
        (CMD_PROXY, TCP6) => {
            if a.len() < 36 {
                return Err(ParseError::BadLength);
            }
            let ip = |at: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&a[at..at + 16]);
                IpAddr::from(o)
            };
            let port = |at: usize| u16::from_be_bytes([a[at], a[at + 1]]);
            Some((
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            ))
        }
        _ => None,
    };
    Ok(Parsed { len, addresses })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, SocketAddrV6};

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::from(a), port)
    }

    #[test]
    fn tcp4_header_matches_the_spec_bytes() {
        let h = header(v4([198, 51, 100, 7], 40000), v4([203, 0, 113, 10], 443));
        let want: &[u8] = &[
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54,
            0x0a, // signature
            0x21, 0x11, 0x00, 0x0c, // v2 PROXY, TCP over IPv4, 12 bytes
            198, 51, 100, 7, 203, 0, 113, 10, // src, dst
            0x9c, 0x40, 0x01, 0xbb, // 40000, 443
        ];
        assert_eq!(h.as_bytes(), want);
    }

    #[test]
    fn tcp6_header_round_trips() {
        let client: SocketAddr = "[2001:db8::7]:51000".parse().unwrap();
        let local: SocketAddr = "[2001:db8::10]:443".parse().unwrap();
        let h = header(client, local);
        assert_eq!(h.as_bytes().len(), 52);
        assert_eq!(h.as_bytes()[13], 0x21);
        assert_eq!(
            parse(h.as_bytes()),
            Ok(Parsed {
                len: 52,
                addresses: Some((client, local))
            })
        );
    }

    #[test]
    fn mixed_families_are_written_as_mapped_ipv6() {
        let client = v4([198, 51, 100, 7], 1234);
        let local: SocketAddr = "[2001:db8::10]:80".parse().unwrap();
        let parsed = parse(header(client, local).as_bytes()).unwrap();
        let mapped = SocketAddr::V6(SocketAddrV6::new(
            Ipv4Addr::new(198, 51, 100, 7).to_ipv6_mapped(),
            1234,
            0,
            0,
        ));
        assert_eq!(parsed.addresses, Some((mapped, local)));
    }

    #[test]
    fn parse_needs_the_whole_header_and_skips_tlvs() {
        let h = header(v4([10, 0, 0, 1], 1), v4([10, 0, 0, 2], 2));
        let bytes = h.as_bytes();
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Err(ParseError::NeedMore), "cut {cut}");
        }
        // Same header with a 3-byte TLV (type 0x04 NOOP, length 0... here 0 bytes).
        let mut with_tlv = bytes.to_vec();
        with_tlv[15] += 3;
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x00, b'G']);
        let parsed = parse(&with_tlv).unwrap();
        assert_eq!(parsed.len, bytes.len() + 3);
        assert_eq!(&with_tlv[parsed.len..], b"G");
    }

    #[test]
    fn local_commands_and_other_families_carry_no_addresses() {
        let mut local = SIGNATURE.to_vec();
        local.extend_from_slice(&[0x20, 0x00, 0x00, 0x00]);
        assert_eq!(
            parse(&local),
            Ok(Parsed {
                len: 16,
                addresses: None
            })
        );
        let mut unix = SIGNATURE.to_vec();
        unix.extend_from_slice(&[0x21, 0x31, 0x00, 0x02, 0, 0]);
        assert_eq!(parse(&unix).unwrap().addresses, None);
    }

    #[test]
    fn bad_headers_are_refused() {
        assert_eq!(parse(b"PROXY TCP4 "), Err(ParseError::NoSignature));
        let mut v1 = SIGNATURE.to_vec();
        v1.extend_from_slice(&[0x11, 0x11, 0, 12]);
        assert_eq!(parse(&v1), Err(ParseError::BadVersionOrCommand));
        let mut cmd = SIGNATURE.to_vec();
        cmd.extend_from_slice(&[0x22, 0x11, 0, 12]);
        assert_eq!(parse(&cmd), Err(ParseError::BadVersionOrCommand));
        let mut short = SIGNATURE.to_vec();
        short.extend_from_slice(&[0x21, 0x11, 0, 4, 1, 2, 3, 4]);
        assert_eq!(parse(&short), Err(ParseError::BadLength));
        let mut short6 = SIGNATURE.to_vec();
        short6.extend_from_slice(&[0x21, 0x21, 0, 12]);
        short6.extend_from_slice(&[0; 12]);
        assert_eq!(parse(&short6), Err(ParseError::BadLength));
    }
}
