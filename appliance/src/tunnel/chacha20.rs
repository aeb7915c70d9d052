//! ChaCha20 (RFC 8439 section 2.3 and 2.4): the stream cipher under the tunnel's AEAD.
//!
//! Portable, with no `unsafe` and no intrinsics. Keystream is made in batches of up to
//! [`BATCH`] blocks by one loop whose iterations are independent blocks, written so that
//! the compiler's loop vectorizer turns it into SIMD on x86-64 hosts: SSE2 (part of the
//! x86-64 baseline) holds one state word of four blocks per register, which makes a block
//! about twice as cheap as computing it alone. The image, built without SSE, runs the same
//! loop one block at a time with a batch of one. See `crypto.rs` for why the tunnel carries
//! its own ChaCha20-Poly1305.
//!
//! Callers pass the scratch space for the keystream (a [`Keystream`]); the key is zeroized
//! when dropped.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes per keystream block.
pub const BLOCK_LEN: usize = 64;

/// Blocks computed by one call to the block function. On SSE2 hosts this must stay at 16 or
/// more: LLVM's loop vectorizer leaves loops it can prove run fewer than 16 times scalar
/// (checked by `cargo bench --bench tunnel` and by reading the assembly of
/// `permute_and_add`, which has `paddd` when vectorized).
#[cfg(target_feature = "sse2")]
pub const BATCH: usize = 16;
/// Blocks computed by one call to the block function (no SIMD: one is as good as many).
#[cfg(not(target_feature = "sse2"))]
pub const BATCH: usize = 1;

/// Blocks the vectorized loop computes at once: asking for fewer costs as much (the rest
/// run one at a time, each about as slow as four vectorized).
#[cfg(target_feature = "sse2")]
const LANES: usize = 4;
/// Blocks the loop computes at once.
#[cfg(not(target_feature = "sse2"))]
const LANES: usize = 1;

/// Scratch space for one batch of keystream, as little-endian words.
pub type Keystream = [[u32; 16]; BATCH];

/// How many blocks to compute when `needed` are wanted and `scratch` fit: whole lanes
/// when there is room.
#[inline]
pub fn batch_len(needed: usize, scratch: usize) -> usize {
    needed.next_multiple_of(LANES).min(scratch)
}

/// `"expand 32-byte k"` as four little-endian words.
const SIGMA: [u32; 4] = [0x6170_7865, 0x3320_646e, 0x7962_2d32, 0x6b20_6574];

/// A 96-bit nonce as three little-endian words (RFC 8439 layout).
pub type Nonce = [u32; 3];

/// A ChaCha20 key, decoded into words once.
#[derive(Clone, Zeroize, ZeroizeOnDrop)]
pub struct ChaCha20 {
    key: [u32; 8],
}

impl core::fmt::Debug for ChaCha20 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("ChaCha20(<redacted>)")
    }
}

/// The little-endian word at the start of `b` (one load, not four).
#[inline(always)]
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes(*b.first_chunk().expect("at least 4 bytes"))
}

/// The ChaCha quarter round on words `a`, `b`, `c`, `d` of `x`.
#[inline(always)]
fn quarter_round(x: &mut [u32; 16], a: usize, b: usize, c: usize, d: usize) {
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(16);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(12);
    x[a] = x[a].wrapping_add(x[b]);
    x[d] = (x[d] ^ x[a]).rotate_left(8);
    x[c] = x[c].wrapping_add(x[d]);
    x[b] = (x[b] ^ x[c]).rotate_left(7);
}

/// Two rounds (a column round and a diagonal round).
#[inline(always)]
fn double_round(x: &mut [u32; 16]) {
    quarter_round(x, 0, 4, 8, 12);
    quarter_round(x, 1, 5, 9, 13);
    quarter_round(x, 2, 6, 10, 14);
    quarter_round(x, 3, 7, 11, 15);
    quarter_round(x, 0, 5, 10, 15);
    quarter_round(x, 1, 6, 11, 12);
    quarter_round(x, 2, 7, 8, 13);
    quarter_round(x, 3, 4, 9, 14);
}

/// The block function on each input state, in place: `state += 20 rounds of state`.
///
/// The ten double rounds are spelled out so that the loop body is straight-line code,
/// which the loop vectorizer can run four blocks at a time. (The straight-line vectorizer
/// will not vectorize the rotations, so a fixed, fully unrolled batch would stay scalar;
/// hence a loop over a slice, and no inlining into callers that would fix its length.)
#[inline(never)]
fn permute_and_add(states: &mut [[u32; 16]]) {
    for s in states.iter_mut() {
        let mut x = *s;
        double_round(&mut x);
        double_round(&mut x);
        double_round(&mut x);
        double_round(&mut x);
        double_round(&mut x);
        double_round(&mut x);
        double_round(&mut x);
        double_round(&mut x);
        double_round(&mut x);
        double_round(&mut x);
        for (s, x) in s.iter_mut().zip(x) {
            *s = s.wrapping_add(x);
        }
    }
}

/// XORs keystream into `data`: 64 bytes from each block of `ks` in turn, as far as both go.
#[inline]
pub fn xor_keystream(data: &mut [u8], ks: &[[u32; 16]]) {
    for (chunk, ks) in data.chunks_mut(BLOCK_LEN).zip(ks) {
        let whole_words = chunk.len() / 4;
        let mut words = chunk.chunks_exact_mut(4);
        for (d, k) in (&mut words).zip(ks) {
            let v = le32(d) ^ k;
            d.copy_from_slice(&v.to_le_bytes());
        }
        let tail = words.into_remainder();
        // Only the last, partial word of a partial block is left.
        for (d, k) in tail.iter_mut().zip(ks[whole_words % 16].to_le_bytes()) {
            *d ^= k;
        }
    }
}

impl ChaCha20 {
    /// A cipher under `key`.
    pub fn new(key: &[u8; 32]) -> Self {
        let mut words = [0u32; 8];
        for (w, b) in words.iter_mut().zip(key.chunks_exact(4)) {
            *w = le32(b);
        }
        Self { key: words }
    }

    /// Fills `out` with keystream blocks `counter`, `counter + 1`, ... for `nonce` (the
    /// 32-bit block counter wraps).
    #[inline]
    pub fn blocks(&self, nonce: &Nonce, counter: u32, out: &mut [[u32; 16]]) {
        let k = &self.key;
        for (i, s) in out.iter_mut().enumerate() {
            *s = [
                SIGMA[0],
                SIGMA[1],
                SIGMA[2],
                SIGMA[3],
                k[0],
                k[1],
                k[2],
                k[3],
                k[4],
                k[5],
                k[6],
                k[7],
                counter.wrapping_add(i as u32),
                nonce[0],
                nonce[1],
                nonce[2],
            ];
        }
        permute_and_add(out);
    }

    /// XORs the keystream for `nonce`, starting at block `counter`, into `data` (encrypts
    /// or decrypts in place), `ks.len()` blocks at a time through the scratch space `ks`,
    /// which must not be empty. The 32-bit block counter wraps after 256 GiB; callers pass
    /// datagrams.
    pub fn apply_keystream(
        &self,
        nonce: &Nonce,
        mut counter: u32,
        data: &mut [u8],
        ks: &mut [[u32; 16]],
    ) {
        for chunk in data.chunks_mut(BLOCK_LEN * ks.len()) {
            let n = batch_len(chunk.len().div_ceil(BLOCK_LEN), ks.len());
            self.blocks(nonce, counter, &mut ks[..n]);
            xor_keystream(chunk, ks);
            counter = counter.wrapping_add(n as u32);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rfc_key() -> [u8; 32] {
        core::array::from_fn(|i| i as u8)
    }

    /// RFC 8439 section 2.3.2: the block function with counter 1.
    #[test]
    fn block_matches_rfc8439_2_3_2() {
        let c = ChaCha20::new(&rfc_key());
        let nonce = [0x0900_0000, 0x4a00_0000, 0];
        let mut x = [[0; 16]; 1];
        c.blocks(&nonce, 1, &mut x);
        assert_eq!(
            x[0],
            [
                0xe4e7f110, 0x15593bd1, 0x1fdd0f50, 0xc47120a3, 0xc7f4d1c7, 0x0368c033, 0x9aaa2204,
                0x4e6cd4c3, 0x466482d2, 0x09aa9f07, 0x05d7c214, 0xa2028bd9, 0xd19c12b5, 0xb94e16de,
                0xe883d0cb, 0x4e3c50a2,
            ]
        );
    }

    /// RFC 8439 section 2.4.2: encrypting the "sunscreen" text from counter 1.
    #[test]
    fn encryption_matches_rfc8439_2_4_2() {
        let c = ChaCha20::new(&rfc_key());
        let nonce = [0, 0x4a00_0000, 0];
        let mut text = *b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.";
        let ks = &mut [[0; 16]; BATCH];
        c.apply_keystream(&nonce, 1, &mut text, ks);
        assert_eq!(
            &text[..16],
            &[
                0x6e, 0x2e, 0x35, 0x9a, 0x25, 0x68, 0xf9, 0x80, 0x41, 0xba, 0x07, 0x28, 0xdd, 0x0d,
                0x69, 0x81
            ]
        );
        assert_eq!(&text[text.len() - 2..], &[0x87, 0x4d]);
        c.apply_keystream(&nonce, 1, &mut text, ks);
        assert!(text.starts_with(b"Ladies and Gentlemen"));
    }

    /// Block-by-block keystream equals batched keystream for every batch size (1 is the
    /// image's) and every prefix length, so batches, partial blocks and partial words line
    /// up, and nothing past the data is touched.
    #[test]
    fn keystream_is_position_exact_across_batches_and_partial_blocks() {
        let c = ChaCha20::new(&[7; 32]);
        let nonce = [1, 2, 3];
        let mut by_block = [0u8; 600];
        for (i, chunk) in by_block.chunks_mut(BLOCK_LEN).enumerate() {
            let mut one = [[0; 16]; 1];
            c.blocks(&nonce, 5 + i as u32, &mut one);
            xor_keystream(chunk, &one);
        }
        for batch in [1, 2, 3, 4, 5, 7, 16, BATCH] {
            let ks = &mut [[0; 16]; 16][..batch];
            for len in 0..=600 {
                let mut prefix = [0u8; 601];
                c.apply_keystream(&nonce, 5, &mut prefix[..len], ks);
                assert_eq!(
                    prefix[..len],
                    by_block[..len],
                    "batch {batch}, length {len}"
                );
                assert!(prefix[len..].iter().all(|&b| b == 0));
            }
        }
    }

    /// The block counter wraps within a batch as it does between single blocks.
    #[test]
    fn counter_wraps_inside_a_batch() {
        let c = ChaCha20::new(&[9; 32]);
        let nonce = [0, 0, 0];
        let mut batch = [[0; 16]; BATCH];
        c.blocks(&nonce, u32::MAX, &mut batch);
        let mut one = [[0; 16]; 1];
        c.blocks(&nonce, u32::MAX, &mut one);
        assert_eq!(batch[0], one[0]);
        if BATCH > 1 {
            c.blocks(&nonce, 0, &mut one);
            assert_eq!(batch[1], one[0]);
        }
    }

    #[test]
    fn key_prints_redacted() {
        assert_eq!(
            std::format!("{:?}", ChaCha20::new(&[1; 32])),
            "ChaCha20(<redacted>)"
        );
    }
}
