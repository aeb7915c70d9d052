//! Poly1305 (RFC 8439 section 2.5): the one-time authenticator of the tunnel's AEAD.
//!
//! The accumulator and `r` are held in three limbs of 44, 44 and 42 bits, so one block
//! costs nine 64x64->128-bit multiplications and a few carries, all in plain integer code
//! that runs in constant time (no secret-dependent branches or indices). The AEAD only ever
//! feeds whole 16-byte blocks (its input is zero-padded), which is all this type takes.
//!
//! The state (the one-time key and the accumulator) is zeroized when dropped.

use zeroize::{Zeroize, ZeroizeOnDrop};

/// Bytes per block and per tag.
pub const BLOCK_LEN: usize = 16;

const MASK44: u64 = (1 << 44) - 1;
const MASK42: u64 = (1 << 42) - 1;
/// The 2^128 bit of a whole block, in the top limb (whose weight is 2^88).
const HIBIT: u64 = 1 << 40;

/// The little-endian u64 at the start of `b` (one load, not eight).
#[inline(always)]
fn le64(b: &[u8]) -> u64 {
    u64::from_le_bytes(*b.first_chunk().expect("at least 8 bytes"))
}

#[inline(always)]
fn mul(a: u64, b: u64) -> u128 {
    u128::from(a) * u128::from(b)
}

/// A Poly1305 computation under one one-time key.
#[derive(Zeroize, ZeroizeOnDrop)]
pub struct Poly1305 {
    /// Clamped `r` in limbs.
    r: [u64; 3],
    /// `r1 * 20` and `r2 * 20`: limb products that wrap past 2^130 come back times 5
    /// (2^130 = 5 mod p), and times 4 more for the 2-bit offset of the 44-bit limbs.
    r20: [u64; 2],
    /// The accumulator, partially reduced.
    h: [u64; 3],
    /// `s`, added at the end.
    s: [u64; 2],
}

impl core::fmt::Debug for Poly1305 {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Poly1305(<redacted>)")
    }
}

impl Poly1305 {
    /// Starts a computation under the one-time key `r || s`.
    pub fn new(key: &[u8; 32]) -> Self {
        let t0 = le64(&key[0..8]);
        let t1 = le64(&key[8..16]);
        // r &= 0x0ffffffc0ffffffc0ffffffc0fffffff, split 44/44/40 bits.
        let r0 = t0 & 0xffc_0fff_ffff;
        let r1 = ((t0 >> 44) | (t1 << 20)) & 0xfff_ffc0_ffff;
        let r2 = (t1 >> 24) & 0x00f_ffff_fc0f;
        Self {
            r: [r0, r1, r2],
            r20: [r1 * 20, r2 * 20],
            h: [0; 3],
            s: [le64(&key[16..24]), le64(&key[24..32])],
        }
    }

    /// Absorbs whole blocks; `hibit` is [`HIBIT`] for whole message blocks, 0 for a final
    /// block already padded with 0x01.
    #[inline(always)]
    fn blocks(&mut self, data: &[u8], hibit: u64) {
        let [r0, r1, r2] = self.r;
        let [s1, s2] = self.r20;
        let [mut h0, mut h1, mut h2] = self.h;
        for b in data.chunks_exact(BLOCK_LEN) {
            let t0 = le64(b);
            let t1 = le64(&b[8..]);
            h0 += t0 & MASK44;
            h1 += ((t0 >> 44) | (t1 << 20)) & MASK44;
            h2 += (t1 >> 24) | hibit;
            // h *= r (mod 2^130 - 5), limbs below 2^45 times limbs below 2^49: no overflow.
            let d0 = mul(h0, r0) + mul(h1, s2) + mul(h2, s1);
            let d1 = mul(h0, r1) + mul(h1, r0) + mul(h2, s2) + (d0 >> 44);
            let d2 = mul(h0, r2) + mul(h1, r1) + mul(h2, r0) + (d1 >> 44);
            h0 = d0 as u64 & MASK44;
            h1 = d1 as u64 & MASK44;
            h2 = d2 as u64 & MASK42;
            h0 += (d2 >> 42) as u64 * 5;
            h1 += h0 >> 44;
            h0 &= MASK44;
        }
        self.h = [h0, h1, h2];
    }

    /// Absorbs `data` zero-padded to a multiple of 16 bytes (the AEAD's `pad16`).
    pub fn update_padded(&mut self, data: &[u8]) {
        let whole = data.len() / BLOCK_LEN * BLOCK_LEN;
        self.blocks(&data[..whole], HIBIT);
        if whole < data.len() {
            let mut last = [0u8; BLOCK_LEN];
            last[..data.len() - whole].copy_from_slice(&data[whole..]);
            self.blocks(&last, HIBIT);
        }
    }

    /// The tag: the accumulator fully reduced mod 2^130 - 5, plus `s`, mod 2^128.
    pub fn finalize(mut self) -> [u8; BLOCK_LEN] {
        let [mut h0, mut h1, mut h2] = self.h;
        // Carry twice around; afterwards h < 2^130 with every limb in range.
        for _ in 0..2 {
            h2 += h1 >> 44;
            h1 &= MASK44;
            h0 += (h2 >> 42) * 5;
            h2 &= MASK42;
            h1 += h0 >> 44;
            h0 &= MASK44;
        }
        // g = h + 5 - 2^130; if that does not borrow, h >= p and the result is g.
        let mut g0 = h0 + 5;
        let mut g1 = h1 + (g0 >> 44);
        g0 &= MASK44;
        let g2 = (h2 + (g1 >> 44)).wrapping_sub(1 << 42);
        g1 &= MASK44;
        let use_g = (g2 >> 63).wrapping_sub(1);
        h0 = (h0 & !use_g) | (g0 & use_g);
        h1 = (h1 & !use_g) | (g1 & use_g);
        h2 = (h2 & !use_g) | (g2 & MASK42 & use_g);
        let h = u128::from(h0) | (u128::from(h1) << 44) | (u128::from(h2) << 88);
        let s = u128::from(self.s[0]) | (u128::from(self.s[1]) << 64);
        self.h = [0; 3];
        h.wrapping_add(s).to_le_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Poly1305 of a message of any length (RFC 8439 2.5.1: the last partial block gets a
    /// 0x01 byte and no 2^128 bit), built from the block function.
    fn mac(key: &[u8; 32], msg: &[u8]) -> [u8; 16] {
        let mut p = Poly1305::new(key);
        let whole = msg.len() / 16 * 16;
        p.blocks(&msg[..whole], HIBIT);
        if whole < msg.len() {
            let mut last = [0u8; 16];
            last[..msg.len() - whole].copy_from_slice(&msg[whole..]);
            last[msg.len() - whole] = 1;
            p.blocks(&last, 0);
        }
        p.finalize()
    }

    fn key(r: &[u8], s: &[u8]) -> [u8; 32] {
        let mut k = [0u8; 32];
        k[..r.len()].copy_from_slice(r);
        k[16..16 + s.len()].copy_from_slice(s);
        k
    }

    /// RFC 8439 section 2.5.2.
    #[test]
    fn matches_rfc8439_2_5_2() {
        let k = [
            0x85, 0xd6, 0xbe, 0x78, 0x57, 0x55, 0x6d, 0x33, 0x7f, 0x44, 0x52, 0xfe, 0x42, 0xd5,
            0x06, 0xa8, 0x01, 0x03, 0x80, 0x8a, 0xfb, 0x0d, 0xb2, 0xfd, 0x4a, 0xbf, 0xf6, 0xaf,
            0x41, 0x49, 0xf5, 0x1b,
        ];
        assert_eq!(
            mac(&k, b"Cryptographic Forum Research Group"),
            [
                0xa8, 0x06, 0x1d, 0xc1, 0x30, 0x51, 0x36, 0xc6, 0xc2, 0x2b, 0x8b, 0xaf, 0x0c, 0x01,
                0x27, 0xa9
            ]
        );
    }

    /// RFC 8439 appendix A.3 vectors 5 to 11: the accumulator lands on or above
    /// 2^130 - 5, or the final addition of `s` wraps, so the final reduction matters.
    #[test]
    fn final_reduction_matches_rfc8439_a3_edge_cases() {
        let ff = [0xffu8; 16];
        let mut one = [0u8; 16];
        one[0] = 1;
        let mut two = [0u8; 16];
        two[0] = 2;
        let mut tag3 = [0u8; 16];
        tag3[0] = 3;
        // #5: R = 2, message 2^128 - 1.
        assert_eq!(mac(&key(&two, &[]), &ff), tag3);
        // #6: R = 2, S = 2^128 - 1, message 2.
        assert_eq!(mac(&key(&two, &ff), &two), tag3);
        // #7: R = 1, h wraps to 5 past p.
        let mut m7 = [0u8; 48];
        m7[..16].copy_from_slice(&ff);
        m7[16] = 0xf0;
        m7[17..32].fill(0xff);
        m7[32] = 0x11;
        let mut tag5 = [0u8; 16];
        tag5[0] = 5;
        assert_eq!(mac(&key(&one, &[]), &m7), tag5);
        // #8: R = 1, the sum is exactly p: tag 0.
        let mut m8 = [0u8; 48];
        m8[..16].copy_from_slice(&ff);
        m8[16] = 0xfb;
        m8[17..32].fill(0xfe);
        m8[32..48].fill(0x01);
        assert_eq!(mac(&key(&one, &[]), &m8), [0; 16]);
        // #9: R = 2, message 2^128 - 3.
        let mut m9 = ff;
        m9[0] = 0xfd;
        let mut tag9 = ff;
        tag9[0] = 0xfa;
        assert_eq!(mac(&key(&two, &[]), &m9), tag9);
        // #10: R = 2^64 * 5 + ..., multiplication carries across limbs.
        let mut r10 = [0u8; 16];
        r10[0] = 1;
        r10[8] = 4;
        let m10: [u8; 64] = core::array::from_fn(|i| match i {
            0 => 0xe3,
            1 => 0x35,
            2 => 0x94,
            3 => 0xd7,
            4 => 0x50,
            5 => 0x5e,
            6 => 0x43,
            7 => 0xb9,
            16 => 0x33,
            17 => 0x94,
            18 => 0xd7,
            19 => 0x50,
            20 => 0x5e,
            21 => 0x43,
            22 => 0x79,
            23 => 0xcd,
            24 => 0x01,
            48 => 0x01,
            _ => 0,
        });
        let mut tag10 = [0u8; 16];
        tag10[0] = 0x14;
        tag10[8] = 0x55;
        assert_eq!(mac(&key(&r10, &[]), &m10), tag10);
        // #11: the same without the last block.
        let mut tag11 = [0u8; 16];
        tag11[0] = 0x13;
        assert_eq!(mac(&key(&r10, &[]), &m10[..48]), tag11);
    }

    /// RFC 8439 appendix A.3 vector 1: all zeros.
    #[test]
    fn zero_key_gives_zero_tag() {
        assert_eq!(mac(&[0; 32], &[0; 64]), [0; 16]);
    }
}
