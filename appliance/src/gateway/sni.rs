//! The TLS ClientHello reader: which name a client asks for, without holding a key.
//!
//! A [`SniReader`] is fed the client's first bytes as they arrive, in any split. It walks
//! the TLS records (RFC 8446 §5.1), reassembles the first handshake message across as
//! many records as it takes, and once the whole ClientHello is there reads its
//! `server_name` extension (RFC 6066 §3). Until then it answers [`Sniff::NeedMore`]; the
//! first definite answer sticks.
//!
//! Everything the client sent stays in the reader ([`SniReader::buffered`]) so the caller
//! can forward it to the backend unchanged once it has picked one: passthrough never
//! rewrites a byte. The buffer is bounded: a ClientHello up to [`MAX_CLIENT_HELLO`] bytes
//! (post-quantum key shares make them 1.5–2 KB and more, spread over several records),
//! plus at most [`MAX_RECORD_OVERHEAD`] bytes of record headers.
//!
//! [`alert`] gives the bytes of the fatal alert to send before closing when the answer is
//! no good: `unrecognized_name` for a name we do not serve, `handshake_failure` for no
//! name or a ClientHello over the limit, `decode_error` for a malformed one.

use alloc::string::String;
use alloc::vec::Vec;

/// The largest ClientHello handshake message accepted, its 4-byte header included.
pub const MAX_CLIENT_HELLO: usize = 16 * 1024;
/// Record headers (5 bytes each) allowed on top of the ClientHello: about 200 records.
pub const MAX_RECORD_OVERHEAD: usize = 1024;
/// The longest host name accepted (RFC 1035 §2.3.4, without the trailing dot).
pub const MAX_NAME_LEN: usize = 253;

const CONTENT_HANDSHAKE: u8 = 22;
const HANDSHAKE_CLIENT_HELLO: u8 = 1;
const EXT_SERVER_NAME: u16 = 0;
const NAME_TYPE_HOST: u8 = 0;
/// TLSPlaintext.length may not exceed 2^14 (RFC 8446 §5.1).
const MAX_RECORD_LEN: usize = 1 << 14;

/// What the bytes so far say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sniff {
    /// The ClientHello is not complete yet.
    NeedMore,
    /// A ClientHello naming this host (lowercase, trailing dot removed).
    Sni(String),
    /// A well-formed ClientHello without a `server_name` extension.
    NoSni,
    /// The first byte is not a TLS handshake record: not TLS at all.
    NotTls,
    /// The ClientHello (or the records carrying it) is over the limits.
    TooLarge,
    /// Not a valid ClientHello: bad record, bad lengths, a bad or duplicate server name.
    Malformed,
}

/// Fatal alert descriptions the gateway sends (RFC 8446 §6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertDescription {
    /// 40: no acceptable way to go on (no name, too large).
    HandshakeFailure = 40,
    /// 50: the message could not be decoded.
    DecodeError = 50,
    /// 112: we serve no such name.
    UnrecognizedName = 112,
}

/// The 7 bytes of a fatal alert record (TLS 1.2 record version, as TLS 1.3 also sends).
pub const fn alert(description: AlertDescription) -> [u8; 7] {
    [0x15, 0x03, 0x03, 0x00, 0x02, 0x02, description as u8]
}

impl Sniff {
    /// The alert to send before closing, for an answer that ends the connection. `NotTls`
    /// gets none (the peer does not speak TLS); `Sni` gets `unrecognized_name`, for the
    /// caller that found no service by that name.
    pub fn alert(&self) -> Option<[u8; 7]> {
        match self {
            Sniff::NeedMore | Sniff::NotTls => None,
            Sniff::Sni(_) => Some(alert(AlertDescription::UnrecognizedName)),
            Sniff::NoSni | Sniff::TooLarge => Some(alert(AlertDescription::HandshakeFailure)),
            Sniff::Malformed => Some(alert(AlertDescription::DecodeError)),
        }
    }
}

/// Incremental ClientHello reader for one connection.
#[derive(Debug, Default)]
pub struct SniReader {
    /// Every byte fed so far.
    buf: Vec<u8>,
    /// Offset in `buf` of the next record header not yet walked.
    next_record: usize,
    /// Handshake bytes seen so far (summed over the walked records).
    handshake_len: usize,
    /// The handshake message's 4-byte header, as far as seen.
    header: [u8; 4],
    /// The answer, once there is one.
    done: Option<Sniff>,
}

impl SniReader {
    /// A reader that has seen nothing.
    pub fn new() -> SniReader {
        SniReader::default()
    }

    /// Takes the next bytes from the client and says what is known now. After the first
    /// answer other than `NeedMore`, further bytes are kept (up to the bound) but the
    /// answer does not change.
    pub fn feed(&mut self, bytes: &[u8]) -> Sniff {
        if let Some(done) = &self.done {
            let room = (MAX_CLIENT_HELLO + MAX_RECORD_OVERHEAD).saturating_sub(self.buf.len());
            self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
            return done.clone();
        }
        // Keep what fits; if the bytes that fit decide nothing, the hello is too large.
        // (Walking them first gives the same answer however the input was split.)
        let room = (MAX_CLIENT_HELLO + MAX_RECORD_OVERHEAD).saturating_sub(self.buf.len());
        let over = bytes.len() > room;
        self.buf.extend_from_slice(&bytes[..bytes.len().min(room)]);
        let mut answer = self.walk();
        if over && answer == Sniff::NeedMore {
            answer = Sniff::TooLarge;
        }
        if answer != Sniff::NeedMore {
            self.done = Some(answer.clone());
        }
        answer
    }

    /// The answer so far (`NeedMore` before there is one).
    pub fn state(&self) -> Sniff {
        self.done.clone().unwrap_or(Sniff::NeedMore)
    }

    /// Every byte fed so far, to forward to the backend once one is chosen.
    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// Gives up the buffered bytes.
    pub fn into_buffered(self) -> Vec<u8> {
        self.buf
    }

    /// Walks the records that are complete, then parses the ClientHello if it is.
    fn walk(&mut self) -> Sniff {
        if self.buf.first().is_some_and(|&b| b != CONTENT_HANDSHAKE) {
            return Sniff::NotTls;
        }
        loop {
            // The message type as soon as it is in, then its length: the same order as the
            // early look into an incomplete first record below.
            if self.handshake_len >= 1 && self.header[0] != HANDSHAKE_CLIENT_HELLO {
                return Sniff::Malformed;
            }
            if let Some(total) = self.message_len() {
                if total > MAX_CLIENT_HELLO {
                    return Sniff::TooLarge;
                }
                if self.handshake_len >= total {
                    return self.parse_message(total);
                }
            }
            let rest = &self.buf[self.next_record..];
            if rest.len() < 5 {
                // Check what is there already, so junk is refused without waiting.
                return match check_record_start(rest) {
                    Ok(()) => Sniff::NeedMore,
                    Err(answer) => answer,
                };
            }
            if let Err(answer) = check_record_start(rest) {
                return answer;
            }
            let len = usize::from(u16::from_be_bytes([rest[3], rest[4]]));
            if len == 0 || len > MAX_RECORD_LEN {
                return Sniff::Malformed;
            }
            if rest.len() < 5 + len {
                // The usual case: the message header is at the start of the first record;
                // refuse a wrong type or an oversized message before it all arrives.
                if let (0, [_, _, _, _, _, kind, a, b, c, ..]) = (self.handshake_len, rest) {
                    let total =
                        4 + (usize::from(*a) << 16 | usize::from(*b) << 8 | usize::from(*c));
                    if *kind != HANDSHAKE_CLIENT_HELLO {
                        return Sniff::Malformed;
                    }
                    if total > MAX_CLIENT_HELLO {
                        return Sniff::TooLarge;
                    }
                }
                return Sniff::NeedMore;
            }
            for &b in &rest[5..5 + len] {
                if self.handshake_len < 4 {
                    self.header[self.handshake_len] = b;
                }
                self.handshake_len += 1;
            }
            self.next_record += 5 + len;
        }
    }

    /// The whole handshake message's length (header included), once its header is in.
    fn message_len(&self) -> Option<usize> {
        if self.handshake_len < 4 {
            return None;
        }
        let [_, a, b, c] = self.header;
        Some(4 + (usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c)))
    }

    fn parse_message(&self, total: usize) -> Sniff {
        if self.header[0] != HANDSHAKE_CLIENT_HELLO {
            return Sniff::Malformed;
        }
        // Gather the message out of its records.
        let mut message = Vec::with_capacity(total);
        let mut at = 0;
        while message.len() < total && at + 5 <= self.buf.len() {
            let len = usize::from(u16::from_be_bytes([self.buf[at + 3], self.buf[at + 4]]));
            let body = &self.buf[at + 5..(at + 5 + len).min(self.buf.len())];
            let take = body.len().min(total - message.len());
            message.extend_from_slice(&body[..take]);
            at += 5 + len;
        }
        if message.len() < total {
            return Sniff::Malformed;
        }
        parse_client_hello(&message[4..])
    }
}

/// The start of a record header, as far as it is there: handshake type, version 3.x.
fn check_record_start(rest: &[u8]) -> Result<(), Sniff> {
    match rest {
        [] => Ok(()),
        [t, ..] if *t != CONTENT_HANDSHAKE => Err(Sniff::Malformed),
        [_, major, ..] if *major != 3 => Err(Sniff::Malformed),
        _ => Ok(()),
    }
}

/// A cursor over untrusted bytes; every read is checked.
struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.bytes.len() < n {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }

    fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()?;
        self.take(usize::from(n))
    }

    fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()?;
        self.take(usize::from(n))
    }
}

/// The ClientHello body (RFC 8446 §4.1.2), after the handshake header.
fn parse_client_hello(body: &[u8]) -> Sniff {
    let mut r = Reader { bytes: body };
    let fields = (|| {
        let version = r.u16()?;
        r.take(32)?; // random
        let session_id = r.vec8()?;
        let suites = r.vec16()?;
        let compression = r.vec8()?;
        Some((version, session_id.len(), suites.len(), compression.len()))
    })();
    let Some((version, session_id_len, suites_len, compression_len)) = fields else {
        return Sniff::Malformed;
    };
    if version >> 8 != 3
        || session_id_len > 32
        || suites_len < 2
        || suites_len % 2 != 0
        || compression_len == 0
    {
        return Sniff::Malformed;
    }
    if r.bytes.is_empty() {
        return Sniff::NoSni; // no extensions at all (SSL 3.0 style)
    }
    let Some(extensions) = r.vec16() else {
        return Sniff::Malformed;
    };
    if !r.bytes.is_empty() {
        return Sniff::Malformed;
    }
    let mut ext = Reader { bytes: extensions };
    let mut name = None;
    while !ext.bytes.is_empty() {
        let (Some(kind), Some(data)) = (ext.u16(), ext.vec16()) else {
            return Sniff::Malformed;
        };
        if kind != EXT_SERVER_NAME {
            continue;
        }
        if name.is_some() {
            return Sniff::Malformed; // the same extension twice (RFC 8446 §4.2)
        }
        match server_name(data) {
            Some(host) => name = Some(host),
            None => return Sniff::Malformed,
        }
    }
    match name {
        Some(host) => Sniff::Sni(host),
        None => Sniff::NoSni,
    }
}

/// The `server_name` extension's data: a list holding one `host_name`.
fn server_name(data: &[u8]) -> Option<String> {
    let mut r = Reader { bytes: data };
    let list = r.vec16()?;
    if !r.bytes.is_empty() {
        return None;
    }
    let mut list = Reader { bytes: list };
    let mut host = None;
    while !list.bytes.is_empty() {
        let kind = list.u8()?;
        let name = list.vec16()?;
        if kind == NAME_TYPE_HOST {
            if host.is_some() {
                return None; // two host names (RFC 6066 §3 forbids it)
            }
            host = Some(host_name(name)?);
        }
    }
    host
}

/// A DNS host name as sent in SNI: ASCII letters, digits, `-`, `_` and dots, no empty
/// label; lowercased, one trailing dot removed.
pub(crate) fn host_name(name: &[u8]) -> Option<String> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return None;
    }
    let valid = name
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.');
    if !valid
        || name
            .split(|&b| b == b'.')
            .any(|label| label.is_empty() || label.len() > 63)
    {
        return None;
    }
    // All ASCII, checked above.
    Some(
        name.iter()
            .map(|b| char::from(b.to_ascii_lowercase()))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    const OPENSSL: &[u8] = include_bytes!("fixtures/openssl_shop.bin");
    const CURL: &[u8] = include_bytes!("fixtures/curl_www.bin");
    const FFDHE: &[u8] = include_bytes!("fixtures/openssl_ffdhe8192_big.bin");
    const NO_SNI: &[u8] = include_bytes!("fixtures/openssl_nosni.bin");

    fn sniff_all(chunks: &[&[u8]]) -> Sniff {
        let mut r = SniReader::new();
        let mut last = Sniff::NeedMore;
        for c in chunks {
            last = r.feed(c);
        }
        last
    }

    /// Re-frames the handshake bytes of a one-record fixture into records of `size`.
    fn reframe(record: &[u8], size: usize) -> Vec<u8> {
        let body = &record[5..];
        let mut out = Vec::new();
        for chunk in body.chunks(size) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    /// Builds a ClientHello with `name` and a padding extension of `pad` bytes, split into
    /// records of at most 16 000 bytes.
    fn synthetic(name: &[u8], pad: usize) -> Vec<u8> {
        let mut ext = Vec::new();
        let mut sni = Vec::new();
        sni.push(0);
        sni.extend_from_slice(&(name.len() as u16).to_be_bytes());
        sni.extend_from_slice(name);
        let mut sni_ext = (sni.len() as u16).to_be_bytes().to_vec();
        sni_ext.extend_from_slice(&sni);
        ext.extend_from_slice(&0u16.to_be_bytes());
        ext.extend_from_slice(&(sni_ext.len() as u16).to_be_bytes());
        ext.extend_from_slice(&sni_ext);
        ext.extend_from_slice(&21u16.to_be_bytes()); // padding (RFC 7685)
        ext.extend_from_slice(&(pad as u16).to_be_bytes());
        ext.extend(core::iter::repeat_n(0u8, pad));
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.push(0);
        body.extend_from_slice(&[0, 2, 0x13, 0x01, 1, 0]);
        body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
        body.extend_from_slice(&ext);
        let mut msg = vec![1];
        msg.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        msg.extend_from_slice(&body);
        let mut out = Vec::new();
        for chunk in msg.chunks(16_000) {
            out.extend_from_slice(&[22, 3, 1]);
            out.extend_from_slice(&(chunk.len() as u16).to_be_bytes());
            out.extend_from_slice(chunk);
        }
        out
    }

    #[test]
    fn real_client_hellos_name_their_hosts() {
        assert_eq!(sniff_all(&[OPENSSL]), Sniff::Sni("shop.example.org".into()));
        assert_eq!(sniff_all(&[CURL]), Sniff::Sni("www.example.org".into()));
        assert_eq!(sniff_all(&[FFDHE]), Sniff::Sni("big.example.org".into()));
        assert_eq!(sniff_all(&[NO_SNI]), Sniff::NoSni);
    }

    #[test]
    fn every_split_of_a_real_client_hello_gives_the_same_name() {
        for fixture in [OPENSSL, CURL, FFDHE] {
            let want = sniff_all(&[fixture]);
            for at in 0..=fixture.len() {
                let (a, b) = fixture.split_at(at);
                let mut r = SniReader::new();
                let first = r.feed(a);
                if at < fixture.len() {
                    assert_eq!(first, Sniff::NeedMore, "split at {at}");
                }
                assert_eq!(r.feed(b), want, "split at {at}");
                assert_eq!(r.buffered(), fixture, "split at {at}");
            }
        }
    }

    #[test]
    fn byte_by_byte_needs_more_until_the_last_byte() {
        let mut r = SniReader::new();
        for (i, b) in FFDHE.iter().enumerate() {
            let s = r.feed(core::slice::from_ref(b));
            if i + 1 < FFDHE.len() {
                assert_eq!(s, Sniff::NeedMore, "byte {i}");
            } else {
                assert_eq!(s, Sniff::Sni("big.example.org".into()));
            }
        }
    }

    #[test]
    fn a_client_hello_spread_over_many_records_is_reassembled() {
        for size in [1, 2, 3, 7, 100, 512, 1000] {
            let framed = reframe(FFDHE, size);
            assert_eq!(
                sniff_all(&[&framed]),
                Sniff::Sni("big.example.org".into()),
                "records of {size}"
            );
            for at in (0..framed.len()).step_by(97) {
                let (a, b) = framed.split_at(at);
                assert_eq!(
                    sniff_all(&[a, b]),
                    Sniff::Sni("big.example.org".into()),
                    "records of {size}, split at {at}"
                );
            }
        }
    }

    #[test]
    fn a_client_hello_of_16_kib_over_two_records_is_read_and_one_byte_more_is_too_large() {
        let name = b"pq.example.org";
        // Overhead of `synthetic` besides the padding: header 4, body 2+32+1+4+2+2, the
        // SNI extension 4+2+3+name, the padding extension's header 4.
        let fixed = 4 + 43 + 4 + 5 + name.len() + 4;
        let max = synthetic(name, MAX_CLIENT_HELLO - fixed);
        assert_eq!(max.len(), MAX_CLIENT_HELLO + 10, "two records");
        assert_eq!(sniff_all(&[&max]), Sniff::Sni("pq.example.org".into()));
        let over = synthetic(name, MAX_CLIENT_HELLO - fixed + 1);
        assert_eq!(sniff_all(&[&over[..10]]), Sniff::TooLarge);
    }

    #[test]
    fn the_answer_does_not_depend_on_the_split() {
        // Found by the fuzzer: a record holding a handshake of type 255 with a huge length
        // was TooLarge whole and Malformed when its record arrived in two pieces.
        let mut odd = vec![22, 3, 1, 1, 0x24];
        odd.extend_from_slice(&[0xff; 292]);
        assert_eq!(sniff_all(&[&odd]), Sniff::Malformed);
        assert_eq!(sniff_all(&[&odd[..20], &odd[20..]]), Sniff::Malformed);
        // Over the buffer bound: junk is still NotTls, whole or split.
        let junk = vec![b'G'; MAX_CLIENT_HELLO + MAX_RECORD_OVERHEAD + 1];
        assert_eq!(sniff_all(&[&junk]), Sniff::NotTls);
        assert_eq!(sniff_all(&[&junk[..1], &junk[1..]]), Sniff::NotTls);
    }

    #[test]
    fn http_and_junk_are_not_tls_at_once() {
        assert_eq!(sniff_all(&[b"G"]), Sniff::NotTls);
        assert_eq!(sniff_all(&[b"GET / HTTP/1.1\r\n"]), Sniff::NotTls);
        assert_eq!(sniff_all(&[&[0u8]]), Sniff::NotTls);
    }

    #[test]
    fn bad_records_and_messages_are_malformed() {
        // Record version 2.x.
        assert_eq!(sniff_all(&[&[22, 2]]), Sniff::Malformed);
        // Zero-length record, oversized record.
        assert_eq!(sniff_all(&[&[22, 3, 1, 0, 0]]), Sniff::Malformed);
        assert_eq!(sniff_all(&[&[22, 3, 1, 0x40, 1]]), Sniff::Malformed);
        // A handshake that is not a ClientHello (ServerHello, type 2).
        let mut server_hello = OPENSSL.to_vec();
        server_hello[5] = 2;
        assert_eq!(sniff_all(&[&server_hello]), Sniff::Malformed);
        // An alert record in the middle of the ClientHello's records.
        let mut framed = reframe(OPENSSL, 100);
        framed[105] = 21;
        assert_eq!(sniff_all(&[&framed]), Sniff::Malformed);
        // Truncated extensions: shorten the message by one byte everywhere it is stated.
        let mut cut = OPENSSL[..OPENSSL.len() - 1].to_vec();
        let rec = u16::from_be_bytes([cut[3], cut[4]]) - 1;
        cut[3..5].copy_from_slice(&rec.to_be_bytes());
        let msg = (u32::from_be_bytes([0, cut[6], cut[7], cut[8]]) - 1).to_be_bytes();
        cut[6..9].copy_from_slice(&msg[1..]);
        assert_eq!(sniff_all(&[&cut]), Sniff::Malformed);
    }

    #[test]
    fn bad_or_duplicate_names_are_malformed() {
        assert_eq!(sniff_all(&[&synthetic(b"a..b", 0)]), Sniff::Malformed);
        assert_eq!(sniff_all(&[&synthetic(b"a b.org", 0)]), Sniff::Malformed);
        assert_eq!(sniff_all(&[&synthetic(b"", 0)]), Sniff::Malformed);
        assert_eq!(sniff_all(&[&synthetic(&[b'a'; 254], 0)]), Sniff::Malformed);
        assert_eq!(
            sniff_all(&[&synthetic(b"Shop.Example.ORG.", 0)]),
            Sniff::Sni("shop.example.org".into())
        );
        // Two server_name extensions: append a copy of the first extension.
        let one = synthetic(b"a.org", 0);
        let msg = &one[5..];
        let ext_start = 4 + 43;
        let sni_ext = &msg[ext_start..ext_start + 4 + 5 + 5];
        let mut body = msg[4..ext_start - 2].to_vec();
        let exts: Vec<u8> = [&msg[ext_start..], sni_ext].concat();
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(&exts);
        let mut twice = vec![22, 3, 1];
        twice.extend_from_slice(&((body.len() + 4) as u16).to_be_bytes());
        twice.push(1);
        twice.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        twice.extend_from_slice(&body);
        assert_eq!(sniff_all(&[&twice]), Sniff::Malformed);
    }

    #[test]
    fn the_answer_sticks_and_later_bytes_are_kept_for_the_backend() {
        let mut r = SniReader::new();
        assert_eq!(r.feed(OPENSSL), Sniff::Sni("shop.example.org".into()));
        assert_eq!(
            r.feed(b"\x17\x03\x03"),
            Sniff::Sni("shop.example.org".into())
        );
        assert_eq!(r.state(), Sniff::Sni("shop.example.org".into()));
        assert_eq!(r.into_buffered(), [OPENSSL, b"\x17\x03\x03"].concat());
    }

    #[test]
    fn alerts_are_fatal_records_with_the_right_description() {
        assert_eq!(
            Sniff::Sni("x.org".into()).alert(),
            Some([0x15, 3, 3, 0, 2, 2, 112])
        );
        assert_eq!(Sniff::NoSni.alert(), Some([0x15, 3, 3, 0, 2, 2, 40]));
        assert_eq!(Sniff::TooLarge.alert(), Some([0x15, 3, 3, 0, 2, 2, 40]));
        assert_eq!(Sniff::Malformed.alert(), Some([0x15, 3, 3, 0, 2, 2, 50]));
        assert_eq!(Sniff::NotTls.alert(), None);
        assert_eq!(Sniff::NeedMore.alert(), None);
    }
}
