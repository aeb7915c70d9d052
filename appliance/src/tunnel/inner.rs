//! Just enough of the inner IPv4/IPv6 header to route a packet: version, total length,
//! source and destination. Used to strip the padding from a decrypted packet, to check
//! its source against AllowedIPs, and to pick the peer for an outbound packet.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;

/// What the tunnel needs to know about an inner packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerHeader {
    /// IPv4: length from the header, source, destination.
    V4 {
        /// Total length field.
        len: usize,
        /// Source address.
        src: Ipv4Addr,
        /// Destination address.
        dst: Ipv4Addr,
    },
    /// IPv6: length from the header (payload length + 40), source, destination.
    V6 {
        /// Payload length + 40.
        len: usize,
        /// Source address.
        src: Ipv6Addr,
        /// Destination address.
        dst: Ipv6Addr,
    },
}

impl InnerHeader {
    /// Parses the header of `packet`; `None` if it is not IPv4/IPv6, is shorter than its
    /// header, or claims to be longer than `packet`.
    pub fn parse(packet: &[u8]) -> Option<Self> {
        let version = packet.first()? >> 4;
        match version {
            4 if packet.len() >= IPV4_HEADER => {
                let len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
                if len < IPV4_HEADER || len > packet.len() {
                    return None;
                }
                let src: [u8; 4] = packet[12..16].try_into().ok()?;
                let dst: [u8; 4] = packet[16..20].try_into().ok()?;
                Some(Self::V4 {
                    len,
                    src: src.into(),
                    dst: dst.into(),
                })
            }
            6 if packet.len() >= IPV6_HEADER => {
                let len = usize::from(u16::from_be_bytes([packet[4], packet[5]])) + IPV6_HEADER;
                if len > packet.len() {
                    return None;
                }
                let src: [u8; 16] = packet[8..24].try_into().ok()?;
                let dst: [u8; 16] = packet[24..40].try_into().ok()?;
                Some(Self::V6 {
                    len,
                    src: src.into(),
                    dst: dst.into(),
                })
            }
            _ => None,
        }
    }

    /// The length the header claims.
    pub fn total_len(&self) -> usize {
        match self {
            Self::V4 { len, .. } | Self::V6 { len, .. } => *len,
        }
    }

    /// The source address.
    pub fn src(&self) -> IpAddr {
        match self {
            Self::V4 { src, .. } => IpAddr::V4(*src),
            Self::V6 { src, .. } => IpAddr::V6(*src),
        }
    }

    /// The destination address.
    pub fn dst(&self) -> IpAddr {
        match self {
            Self::V4 { dst, .. } => IpAddr::V4(*dst),
            Self::V6 { dst, .. } => IpAddr::V6(*dst),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 28-byte IPv4/UDP packet 10.0.0.1 -> 10.0.0.2 with 4 bytes of padding after it.
    static V4_PADDED: [u8; 32] = [
        0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2, //
        0x12, 0x34, 0x00, 0x35, 0, 8, 0, 0, //
        0, 0, 0, 0,
    ];

    #[test]
    fn ipv4_header_gives_length_and_addresses() {
        let h = InnerHeader::parse(&V4_PADDED).unwrap();
        assert_eq!(h.total_len(), 28);
        assert_eq!(h.src(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(h.dst(), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn ipv6_header_gives_length_and_addresses() {
        let mut p = [0u8; 48];
        p[0] = 0x60;
        p[5] = 8;
        p[8..24].copy_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        p[24..40].copy_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        let h = InnerHeader::parse(&p).unwrap();
        assert_eq!(h.total_len(), 48);
        assert_eq!(h.src(), "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(h.dst(), "fd00::2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn inconsistent_or_foreign_packets_are_refused() {
        assert!(InnerHeader::parse(&[]).is_none());
        assert!(InnerHeader::parse(&V4_PADDED[..19]).is_none());
        let mut long = V4_PADDED;
        long[3] = 33;
        assert!(InnerHeader::parse(&long).is_none());
        let mut short = V4_PADDED;
        short[3] = 19;
        assert!(InnerHeader::parse(&short).is_none());
        let mut v5 = V4_PADDED;
        v5[0] = 0x55;
        assert!(InnerHeader::parse(&v5).is_none());
        let mut p = [0u8; 40];
        p[0] = 0x60;
        p[5] = 1;
        assert!(InnerHeader::parse(&p).is_none());
    }
}
