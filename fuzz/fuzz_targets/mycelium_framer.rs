//! Untrusted bytes on a Mycelium peer stream: the framer, the control TLV parser, then a
//! node.
//!
//! The framer must cut the same packets out of the stream however it is chunked (the
//! first octet picks a chunk size), and stop for good at the first framing error. Every
//! control packet must parse without panicking, and a TLV that parses must be written
//! back to the same bytes' meaning (re-parse equal). A node fed the stream from a peer,
//! polled as time advances, must never panic, and keeps its tables and its send buffers
//! within their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rand_core::{CryptoRng, RngCore};
use smoltcp::time::{Duration, Instant};
use vdcnet_appliance::mycelium::wire::{self, Tlv, MAX_PACKET};
use vdcnet_appliance::mycelium::{Frame, FrameError, Framer, Node, PeerId, SecretKey, Settings};

/// A deterministic generator (fuzzing needs no secrecy, only repeatability).
struct Counter(u64);

impl RngCore for Counter {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest.iter_mut() {
            *b = (self.next_u64() >> 56) as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Counter {}

/// What the framer makes of `data` pushed `chunk` octets at a time: each packet's bytes
/// (the control body, or hop limit, addresses and data body), then the error if any.
fn frames(data: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Option<FrameError>) {
    let mut f = Framer::new();
    let mut out = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        let mut rest = piece;
        while !rest.is_empty() {
            let n = f.push(rest);
            assert!(n > 0, "the framer always takes more once it wants more");
            rest = &rest[n..];
            loop {
                match f.next_frame() {
                    Ok(Some(Frame::Control(c))) => out.push(c.to_vec()),
                    Ok(Some(Frame::Data(d))) => {
                        let mut v = vec![d.hop_limit];
                        v.extend_from_slice(&d.src.octets());
                        v.extend_from_slice(&d.dst.octets());
                        v.extend_from_slice(d.body);
                        out.push(v);
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert_eq!(f.next_frame().err(), Some(e), "errors stick");
                        return (out, Some(e));
                    }
                }
            }
            assert!(f.buffered() <= Framer::MAX_FRAME);
        }
    }
    (out, None)
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, stream)) = data.split_first() else {
        return;
    };
    let whole = frames(stream, stream.len());
    assert_eq!(frames(stream, usize::from(first % 64) + 1), whole);

    let mut f = Framer::new();
    let mut rest = stream;
    'outer: while !rest.is_empty() {
        let n = f.push(rest);
        rest = &rest[n..];
        while let Ok(Some(frame)) = f.next_frame() {
            let Frame::Control(c) = frame else { continue };
            assert!(c.len() <= MAX_PACKET);
            let Ok(tlv) = wire::parse(c) else { continue };
            if matches!(tlv, Tlv::Unknown { .. }) {
                continue;
            }
            let mut buf = [0u8; MAX_PACKET];
            let n = wire::emit(&tlv, &mut buf).expect("a parsed TLV fits again");
            assert_eq!(wire::parse(&buf[..n]), Ok(tlv));
        }
        if f.next_frame().is_err() {
            break 'outer;
        }
    }

    let settings = Settings {
        max_routes: 16,
        max_sources: 16,
        max_secrets: 4,
        max_queries: 8,
        max_pending: 4,
        tx_limit: 4096,
        ..Settings::default()
    };
    let mut now = Instant::from_secs(1);
    let key = SecretKey::from_bytes([7; 32]);
    let mut node = Node::new(now, key, settings, Counter(1));
    node.add_peer(now, PeerId(1), 15).unwrap();
    node.add_peer(now, PeerId(2), 15).unwrap();
    for piece in stream.chunks(usize::from(first % 64) + 1) {
        let r = node.receive(now, PeerId(1), piece, |p| assert!(p.len() >= 40));
        for id in [PeerId(1), PeerId(2)] {
            let n = node.transmit(id).len();
            assert!(n <= settings.tx_limit);
            node.transmitted(id, n);
        }
        if r.is_err() {
            break;
        }
        now += Duration::from_millis(700);
        node.poll(now);
    }
    for _ in 0..4 {
        now += Duration::from_secs(5);
        node.poll(now);
    }
    let (routes, sources, secrets, queries, pending) = node.table_sizes();
    assert!(routes <= 16 && sources <= 16 && secrets <= 4 && queries <= 8 && pending <= 4);
});
