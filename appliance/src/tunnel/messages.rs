//! The four WireGuard message formats (whitepaper section 5.4) as checked, zero-copy views.
//!
//! [`Message::parse`] is the only way untrusted bytes enter the tunnel: it checks the type,
//! the reserved bytes and the exact (or minimum) length, and returns a typed view whose
//! accessors cannot go out of bounds. Offsets live in [`field`] and are shared with the
//! code that writes messages.

use super::counters::DropReason;

/// Byte ranges of every field, per message type.
pub mod field {
    use core::ops::Range;

    /// The little-endian u32 type word (type in byte 0, three reserved zero bytes).
    pub const TYPE: Range<usize> = 0..4;

    /// Handshake initiation (type 1).
    pub mod initiation {
        use core::ops::Range;
        /// Initiator's index.
        pub const SENDER: Range<usize> = 4..8;
        /// Unencrypted ephemeral public key.
        pub const EPHEMERAL: Range<usize> = 8..40;
        /// AEAD(static public key).
        pub const STATIC: Range<usize> = 40..88;
        /// AEAD(TAI64N).
        pub const TIMESTAMP: Range<usize> = 88..116;
        /// mac1.
        pub const MAC1: Range<usize> = 116..132;
        /// mac2.
        pub const MAC2: Range<usize> = 132..148;
    }

    /// Handshake response (type 2).
    pub mod response {
        use core::ops::Range;
        /// Responder's index.
        pub const SENDER: Range<usize> = 4..8;
        /// Initiator's index.
        pub const RECEIVER: Range<usize> = 8..12;
        /// Unencrypted ephemeral public key.
        pub const EPHEMERAL: Range<usize> = 12..44;
        /// AEAD(empty).
        pub const EMPTY: Range<usize> = 44..60;
        /// mac1.
        pub const MAC1: Range<usize> = 60..76;
        /// mac2.
        pub const MAC2: Range<usize> = 76..92;
    }

    /// Cookie reply (type 3).
    pub mod cookie_reply {
        use core::ops::Range;
        /// Index of the handshake message being answered.
        pub const RECEIVER: Range<usize> = 4..8;
        /// XChaCha20 nonce.
        pub const NONCE: Range<usize> = 8..32;
        /// XAEAD(cookie).
        pub const COOKIE: Range<usize> = 32..64;
    }

    /// Transport data (type 4).
    pub mod data {
        use core::ops::Range;
        /// Receiver's index.
        pub const RECEIVER: Range<usize> = 4..8;
        /// Little-endian nonce counter.
        pub const COUNTER: Range<usize> = 8..16;
        /// Start of AEAD(padded packet).
        pub const PAYLOAD: usize = 16;
    }
}

/// Message type of a handshake initiation.
pub const TYPE_INITIATION: u8 = 1;
/// Message type of a handshake response.
pub const TYPE_RESPONSE: u8 = 2;
/// Message type of a cookie reply.
pub const TYPE_COOKIE_REPLY: u8 = 3;
/// Message type of transport data.
pub const TYPE_DATA: u8 = 4;

/// Size of a handshake initiation.
pub const INITIATION_LEN: usize = 148;
/// Size of a handshake response.
pub const RESPONSE_LEN: usize = 92;
/// Size of a cookie reply.
pub const COOKIE_REPLY_LEN: usize = 64;
/// Size of the data message header (type, receiver, counter).
pub const DATA_HEADER_LEN: usize = 16;
/// Size of a data message with an empty payload (a keepalive): header plus tag.
pub const DATA_MIN_LEN: usize = DATA_HEADER_LEN + 16;
/// Bytes a data message adds to the inner packet, before padding.
pub const DATA_OVERHEAD: usize = DATA_MIN_LEN;

fn le32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

fn array<const N: usize>(b: &[u8]) -> &[u8; N] {
    b.try_into().expect("range matches the array length")
}

/// A parsed message, borrowing the datagram.
#[derive(Clone, Copy, Debug)]
pub enum Message<'a> {
    /// Type 1.
    Initiation(Initiation<'a>),
    /// Type 2.
    Response(Response<'a>),
    /// Type 3.
    CookieReply(CookieReply<'a>),
    /// Type 4.
    Data(Data<'a>),
}

impl<'a> Message<'a> {
    /// Checks type, reserved bytes and length; never panics.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, DropReason> {
        if bytes.len() < 4 {
            return Err(DropReason::Malformed);
        }
        if bytes[1..4] != [0, 0, 0] {
            return Err(DropReason::Malformed);
        }
        match (bytes[0], bytes.len()) {
            (TYPE_INITIATION, INITIATION_LEN) => Ok(Self::Initiation(Initiation {
                bytes: array(bytes),
            })),
            (TYPE_RESPONSE, RESPONSE_LEN) => Ok(Self::Response(Response {
                bytes: array(bytes),
            })),
            (TYPE_COOKIE_REPLY, COOKIE_REPLY_LEN) => Ok(Self::CookieReply(CookieReply {
                bytes: array(bytes),
            })),
            (TYPE_DATA, n) if n >= DATA_MIN_LEN => Ok(Self::Data(Data { bytes })),
            _ => Err(DropReason::Malformed),
        }
    }

    /// The sender index of a handshake message (initiation or response): what admission
    /// control (mac1/mac2, cookies, rate limit) looks at. `None` for the other types.
    pub fn handshake_sender(&self) -> Option<u32> {
        match self {
            Message::Initiation(i) => Some(i.sender()),
            Message::Response(r) => Some(r.sender()),
            _ => None,
        }
    }
}

/// Handshake initiation view (exactly [`INITIATION_LEN`] bytes).
#[derive(Clone, Copy, Debug)]
pub struct Initiation<'a> {
    bytes: &'a [u8; INITIATION_LEN],
}

impl<'a> Initiation<'a> {
    /// The whole message.
    pub fn bytes(&self) -> &'a [u8; INITIATION_LEN] {
        self.bytes
    }
    /// Initiator's index.
    pub fn sender(&self) -> u32 {
        le32(&self.bytes[field::initiation::SENDER])
    }
    /// Initiator's ephemeral public key.
    pub fn ephemeral(&self) -> &'a [u8; 32] {
        array(&self.bytes[field::initiation::EPHEMERAL])
    }
    /// Encrypted static public key.
    pub fn encrypted_static(&self) -> &'a [u8; 48] {
        array(&self.bytes[field::initiation::STATIC])
    }
    /// Encrypted timestamp.
    pub fn encrypted_timestamp(&self) -> &'a [u8; 28] {
        array(&self.bytes[field::initiation::TIMESTAMP])
    }
}

/// Handshake response view (exactly [`RESPONSE_LEN`] bytes).
#[derive(Clone, Copy, Debug)]
pub struct Response<'a> {
    bytes: &'a [u8; RESPONSE_LEN],
}

impl<'a> Response<'a> {
    /// The whole message.
    pub fn bytes(&self) -> &'a [u8; RESPONSE_LEN] {
        self.bytes
    }
    /// Responder's index.
    pub fn sender(&self) -> u32 {
        le32(&self.bytes[field::response::SENDER])
    }
    /// Initiator's index (ours).
    pub fn receiver(&self) -> u32 {
        le32(&self.bytes[field::response::RECEIVER])
    }
    /// Responder's ephemeral public key.
    pub fn ephemeral(&self) -> &'a [u8; 32] {
        array(&self.bytes[field::response::EPHEMERAL])
    }
    /// Encrypted empty payload (only a tag).
    pub fn encrypted_empty(&self) -> &'a [u8; 16] {
        array(&self.bytes[field::response::EMPTY])
    }
}

/// Cookie reply view (exactly [`COOKIE_REPLY_LEN`] bytes).
#[derive(Clone, Copy, Debug)]
pub struct CookieReply<'a> {
    bytes: &'a [u8; COOKIE_REPLY_LEN],
}

impl<'a> CookieReply<'a> {
    /// Index of the handshake message this answers (ours).
    pub fn receiver(&self) -> u32 {
        le32(&self.bytes[field::cookie_reply::RECEIVER])
    }
    /// XChaCha20 nonce.
    pub fn nonce(&self) -> &'a [u8; 24] {
        array(&self.bytes[field::cookie_reply::NONCE])
    }
    /// Encrypted cookie and tag.
    pub fn encrypted_cookie(&self) -> &'a [u8; 32] {
        array(&self.bytes[field::cookie_reply::COOKIE])
    }
}

/// Transport data view (at least [`DATA_MIN_LEN`] bytes).
#[derive(Clone, Copy, Debug)]
pub struct Data<'a> {
    bytes: &'a [u8],
}

impl<'a> Data<'a> {
    /// Receiver's index (ours).
    pub fn receiver(&self) -> u32 {
        le32(&self.bytes[field::data::RECEIVER])
    }
    /// The nonce counter.
    pub fn counter(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.bytes[field::data::COUNTER]);
        u64::from_le_bytes(a)
    }
    /// Ciphertext and tag (at least 16 bytes).
    pub fn payload(&self) -> &'a [u8] {
        &self.bytes[field::data::PAYLOAD..]
    }
}

/// Either handshake message, as seen by the mac1/mac2 check.
pub(crate) fn macs_split(msg: &[u8]) -> (&[u8], &[u8; 16], &[u8], &[u8; 16]) {
    // Both handshake messages end in mac1 || mac2.
    let n = msg.len();
    (
        &msg[..n - 32],
        array(&msg[n - 32..n - 16]),
        &msg[..n - 16],
        array(&msg[n - 16..]),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(ty: u8, len: usize) -> std::vec::Vec<u8> {
        let mut v = std::vec![0u8; len];
        v[0] = ty;
        v
    }

    #[test]
    fn parses_each_type_at_its_exact_length() {
        assert!(matches!(
            Message::parse(&msg(1, 148)),
            Ok(Message::Initiation(_))
        ));
        assert!(matches!(
            Message::parse(&msg(2, 92)),
            Ok(Message::Response(_))
        ));
        assert!(matches!(
            Message::parse(&msg(3, 64)),
            Ok(Message::CookieReply(_))
        ));
        assert!(matches!(Message::parse(&msg(4, 32)), Ok(Message::Data(_))));
        assert!(matches!(
            Message::parse(&msg(4, 1500)),
            Ok(Message::Data(_))
        ));
    }

    #[test]
    fn rejects_wrong_lengths_types_and_reserved_bytes() {
        for (ty, len) in [
            (1, 147),
            (1, 149),
            (2, 91),
            (3, 65),
            (4, 31),
            (5, 148),
            (0, 148),
        ] {
            assert_eq!(
                Message::parse(&msg(ty, len)).unwrap_err(),
                DropReason::Malformed
            );
        }
        let mut m = msg(1, 148);
        m[2] = 1;
        assert_eq!(Message::parse(&m).unwrap_err(), DropReason::Malformed);
        assert!(Message::parse(&[]).is_err());
        assert!(Message::parse(&[4, 0, 0]).is_err());
    }

    #[test]
    fn data_fields_decode_little_endian() {
        let mut m = msg(4, 32);
        m[4..8].copy_from_slice(&0x1122_3344u32.to_le_bytes());
        m[8..16].copy_from_slice(&7u64.to_le_bytes());
        let Ok(Message::Data(d)) = Message::parse(&m) else {
            panic!()
        };
        assert_eq!(d.receiver(), 0x1122_3344);
        assert_eq!(d.counter(), 7);
        assert_eq!(d.payload().len(), 16);
    }

    #[test]
    fn initiation_fields_cover_the_message() {
        let mut m = msg(1, 148);
        m[4] = 9;
        m[8] = 0xee;
        m[40] = 0x5a;
        m[88] = 0xa5;
        let Ok(Message::Initiation(i)) = Message::parse(&m) else {
            panic!()
        };
        assert_eq!(i.sender(), 9);
        assert_eq!(i.ephemeral()[0], 0xee);
        assert_eq!(i.encrypted_static()[0], 0x5a);
        assert_eq!(i.encrypted_timestamp()[0], 0xa5);
        let (m1_covered, _, m2_covered, _) = macs_split(i.bytes());
        assert_eq!(m1_covered.len(), 116);
        assert_eq!(m2_covered.len(), 132);
    }
}
