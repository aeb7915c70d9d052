//! The peer stream: how packets follow each other on a Mycelium TCP connection.
//!
//! A connection carries no handshake, only packets, each behind a 4-octet header
//! `01 TT xx xx` (version 1; type 0 data, 1 control; the last two octets are written as
//! zero and ignored on reading, as mycelium does). What follows says how long it is:
//!
//! ```text
//! control  01 01 00 00 | 2a 03 LL LL | TLV (LL octets: type, length, contents)
//! data     01 00 00 00 | xx LL LL HL | source(16) | destination(16) | body (LL octets)
//! ```
//!
//! (`HL` is the hop limit; the data header's first octet is ignored, as mycelium masks
//! it out.) [`Framer`] reassembles whole packets from arbitrary TCP chunks in one
//! bounded buffer, [`Framer::MAX_FRAME`] octets, with no allocation after creation: a
//! data body over [`MAX_DATA_BODY`], a control body over 257 octets, an unknown version
//! or type, or a control header that is not Mycelium's Babel is a [`FrameError`], after
//! which the stream has no framing left and the caller drops the connection.

use alloc::vec;
use alloc::vec::Vec;
use core::net::Ipv6Addr;

use super::wire;

/// The stream's packet header length.
pub const HEADER_LEN: usize = 4;
/// The stream's protocol version.
pub const VERSION: u8 = 1;
/// Packet type: data.
pub const TYPE_DATA: u8 = 0;
/// Packet type: control.
pub const TYPE_CONTROL: u8 = 1;
/// Octets of a data packet before its body: the stream header, length and hop limit,
/// source and destination.
pub const DATA_HEADER_LEN: usize = HEADER_LEN + 4 + 32;
/// The largest data body accepted: a 1500-octet IPv6 packet behind its 4-octet inner
/// header, sealed (16-octet tag, 12-octet nonce). Mycelium's own nodes send at most 1432
/// (a 1400-octet TUN MTU).
pub const MAX_DATA_BODY: usize = 4 + 1500 + 28;

/// One packet from the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A control packet: the Babel header and its TLV, for [`wire::parse`].
    Control(&'a [u8]),
    /// A data packet.
    Data(DataFrame<'a>),
}

/// A data packet, its body still sealed.
#[derive(Debug, PartialEq, Eq)]
pub struct DataFrame<'a> {
    pub hop_limit: u8,
    pub src: Ipv6Addr,
    pub dst: Ipv6Addr,
    /// The sealed body (writable, so it can be opened in place).
    pub body: &'a mut [u8],
}

/// Why the stream lost its framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum FrameError {
    /// The stream header's version octet is not 1.
    Version(u8),
    /// The stream header's type octet is neither data nor control.
    Type(u8),
    /// A control packet whose header is not magic 42, version 3.
    NotBabel,
    /// A control body longer than one TLV can be.
    ControlTooLong(u16),
    /// A data body over [`MAX_DATA_BODY`].
    DataTooLong(u16),
}

/// Writes the stream header of a packet of `kind` into `out[..4]`.
pub fn put_header(out: &mut [u8], kind: u8) {
    out[..HEADER_LEN].copy_from_slice(&[VERSION, kind, 0, 0]);
}

/// Writes a data packet's header (stream header, length, hop limit, addresses) into
/// `out[..DATA_HEADER_LEN]` for a body of `body_len` octets.
pub fn put_data_header(out: &mut [u8], body_len: u16, hop_limit: u8, src: Ipv6Addr, dst: Ipv6Addr) {
    put_header(out, TYPE_DATA);
    out[4] = 0;
    out[5..7].copy_from_slice(&body_len.to_be_bytes());
    out[7] = hop_limit;
    out[8..24].copy_from_slice(&src.octets());
    out[24..40].copy_from_slice(&dst.octets());
}

/// Reassembles packets from a peer's byte stream (see the module docs).
pub struct Framer {
    buf: Vec<u8>,
    /// Start of the first unread packet.
    start: usize,
    /// End of the bytes held.
    end: usize,
    /// Set once framing is lost: every later call returns it.
    error: Option<FrameError>,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    /// The buffer's size: the largest packet.
    pub const MAX_FRAME: usize = DATA_HEADER_LEN + MAX_DATA_BODY;

    pub fn new() -> Self {
        Self {
            buf: vec![0; Self::MAX_FRAME],
            start: 0,
            end: 0,
            error: None,
        }
    }

    /// Copies as much of `data` as the buffer has room for and returns how much; the
    /// caller takes packets out with [`Framer::next_frame`] and pushes the rest after. Never
    /// zero for a non-empty `data` once [`Framer::next_frame`] returned `Ok(None)`.
    pub fn push(&mut self, data: &[u8]) -> usize {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = data.len().min(self.buf.len() - self.end);
        self.buf[self.end..self.end + n].copy_from_slice(&data[..n]);
        self.end += n;
        n
    }

    /// Octets held that are not yet a whole packet.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The next whole packet, `Ok(None)` if more bytes are needed, or the error that
    /// ended the stream's framing.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FrameError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let held = &self.buf[self.start..self.end];
        let len = match Self::frame_len(held) {
            Ok(Some(len)) if len <= held.len() => len,
            Ok(_) => return Ok(None),
            Err(e) => {
                self.error = Some(e);
                return Err(e);
            }
        };
        let at = self.start;
        self.start += len;
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let packet = &mut self.buf[at..at + len];
        if packet[1] == TYPE_CONTROL {
            return Ok(Some(Frame::Control(&packet[HEADER_LEN..])));
        }
        let (head, body) = packet.split_at_mut(DATA_HEADER_LEN);
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src.copy_from_slice(&head[8..24]);
        dst.copy_from_slice(&head[24..40]);
        Ok(Some(Frame::Data(DataFrame {
            hop_limit: head[7],
            src: Ipv6Addr::from(src),
            dst: Ipv6Addr::from(dst),
            body,
        })))
    }

    /// The length of the packet starting `held`, once enough of it is there to tell.
    fn frame_len(held: &[u8]) -> Result<Option<usize>, FrameError> {
        if held.len() < 2 {
            return Ok(None);
        }
        if held[0] != VERSION {
            return Err(FrameError::Version(held[0]));
        }
        match held[1] {
            TYPE_CONTROL => {
                if held.len() < HEADER_LEN + wire::HEADER_LEN {
                    // Check what is there already: garbage is refused early.
                    return match held.get(HEADER_LEN..) {
                        Some(&[m, ..]) if m != wire::MAGIC => Err(FrameError::NotBabel),
                        Some(&[_, v, ..]) if v != wire::VERSION => Err(FrameError::NotBabel),
                        _ => Ok(None),
                    };
                }
                let b = &held[HEADER_LEN..];
                if b[0] != wire::MAGIC || b[1] != wire::VERSION {
                    return Err(FrameError::NotBabel);
                }
                let body = u16::from_be_bytes([b[2], b[3]]);
                if usize::from(body) > wire::MAX_PACKET - wire::HEADER_LEN {
                    return Err(FrameError::ControlTooLong(body));
                }
                Ok(Some(HEADER_LEN + wire::HEADER_LEN + usize::from(body)))
            }
            TYPE_DATA => {
                if held.len() < HEADER_LEN + 4 {
                    return Ok(None);
                }
                let body = u16::from_be_bytes([held[5], held[6]]);
                if usize::from(body) > MAX_DATA_BODY {
                    return Err(FrameError::DataTooLong(body));
                }
                Ok(Some(DATA_HEADER_LEN + usize::from(body)))
            }
            t => Err(FrameError::Type(t)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec::Vec;

    fn control(tlv: &wire::Tlv) -> Vec<u8> {
        let mut b = [0u8; HEADER_LEN + wire::MAX_PACKET];
        put_header(&mut b, TYPE_CONTROL);
        let n = wire::emit(tlv, &mut b[HEADER_LEN..]).unwrap();
        b[..HEADER_LEN + n].to_vec()
    }

    fn data(body: &[u8], hop: u8) -> Vec<u8> {
        let mut b = std::vec![0u8; DATA_HEADER_LEN + body.len()];
        put_data_header(
            &mut b,
            body.len() as u16,
            hop,
            Ipv6Addr::new(0x400, 0, 0, 0, 0, 0, 0, 1),
            Ipv6Addr::new(0x500, 0, 0, 0, 0, 0, 0, 2),
        );
        b[DATA_HEADER_LEN..].copy_from_slice(body);
        b
    }

    fn hello() -> wire::Tlv {
        wire::Tlv::Hello {
            unicast: true,
            seqno: 3,
            interval: 2000,
        }
    }

    /// Everything the framer returns, fed `stream` in chunks of `chunk` octets.
    fn frames(stream: &[u8], chunk: usize) -> Result<Vec<Vec<u8>>, FrameError> {
        let mut f = Framer::new();
        let mut out = Vec::new();
        for piece in stream.chunks(chunk) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = f.push(rest);
                rest = &rest[n..];
                while let Some(frame) = f.next_frame()? {
                    out.push(match frame {
                        Frame::Control(c) => c.to_vec(),
                        Frame::Data(d) => {
                            let mut v = std::vec![d.hop_limit];
                            v.extend_from_slice(&d.src.octets());
                            v.extend_from_slice(&d.dst.octets());
                            v.extend_from_slice(d.body);
                            v
                        }
                    });
                }
            }
        }
        Ok(out)
    }

    #[test]
    fn packets_survive_any_chunking() {
        let mut stream = control(&hello());
        stream.extend(data(&[0xaa; 100], 63));
        stream.extend(data(&[], 5));
        stream.extend(control(&wire::Tlv::RouteRequest {
            prefix: None,
            generation: 0,
        }));
        stream.extend(data(&[0x55; MAX_DATA_BODY], 1));
        let whole = frames(&stream, stream.len()).unwrap();
        assert_eq!(whole.len(), 5);
        assert_eq!(whole[0], &control(&hello())[4..]);
        assert_eq!(whole[1][0], 63);
        assert_eq!(whole[1].len(), 1 + 32 + 100);
        assert_eq!(whole[2].len(), 33);
        assert_eq!(whole[4].len(), 33 + MAX_DATA_BODY);
        for chunk in [1, 2, 3, 7, 40, 41, 1000, 1600] {
            assert_eq!(frames(&stream, chunk).unwrap(), whole, "chunk {chunk}");
        }
    }

    /// The data header's length is its middle two octets; the first is ignored.
    #[test]
    fn data_header_bytes() {
        let b = data(&[1, 2, 3], 64);
        assert_eq!(&b[..8], &[1, 0, 0, 0, 0, 0, 3, 64]);
        let mut odd = b.clone();
        odd[4] = 0xff;
        odd[2] = 0x12;
        assert_eq!(frames(&odd, 5).unwrap(), frames(&b, 5).unwrap());
    }

    #[test]
    fn garbage_ends_the_stream() {
        assert_eq!(
            frames(b"GET / HTTP/1.1\r\n", 3),
            Err(FrameError::Version(b'G'))
        );
        assert_eq!(frames(&[1, 2, 0, 0], 4), Err(FrameError::Type(2)));
        assert_eq!(
            frames(&[1, 1, 0, 0, 42, 2, 0, 8], 8),
            Err(FrameError::NotBabel),
            "RFC 8966 Babel"
        );
        assert_eq!(
            frames(&[1, 1, 0, 0, 0x2b], 8),
            Err(FrameError::NotBabel),
            "refused before the header is whole"
        );
        assert_eq!(
            frames(&[1, 1, 0, 0, 42, 3, 1, 2], 8),
            Err(FrameError::ControlTooLong(258))
        );
        let big = (MAX_DATA_BODY + 1) as u16;
        let [hi, lo] = big.to_be_bytes();
        assert_eq!(
            frames(&[1, 0, 0, 0, 0, hi, lo, 9], 8),
            Err(FrameError::DataTooLong(big))
        );
        // After an error the framer stays failed.
        let mut f = Framer::new();
        f.push(&[9, 9, 9]);
        assert!(f.next_frame().is_err());
        f.push(&control(&hello()));
        assert_eq!(f.next_frame(), Err(FrameError::Version(9)));
    }

    #[test]
    fn the_buffer_is_bounded() {
        let mut f = Framer::new();
        let big = data(&[7; MAX_DATA_BODY], 2);
        assert_eq!(big.len(), Framer::MAX_FRAME);
        let mut two = big.clone();
        two.extend_from_slice(&big);
        let n = f.push(&two);
        assert_eq!(n, Framer::MAX_FRAME, "takes one frame's worth");
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Data(_)))));
        assert_eq!(f.next_frame(), Ok(None));
        assert_eq!(f.push(&two[n..]), Framer::MAX_FRAME);
        assert!(matches!(f.next_frame(), Ok(Some(Frame::Data(_)))));
        assert_eq!(f.buffered(), 0);
    }
}
