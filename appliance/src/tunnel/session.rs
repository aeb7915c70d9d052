//! A transport keypair (whitepaper 5.4.6): the two ChaCha20-Poly1305 keys derived at the
//! end of a handshake, the send counter and the receive replay window.
//!
//! The two keys are expanded once when the keypair is created, reused for every packet and
//! zeroized when it is dropped. Encryption writes the whole data message into the caller's
//! buffer; decryption copies the ciphertext into the caller's buffer and opens it in place.
//! Neither allocates.

use smoltcp::time::Instant;

use super::counters::DropReason;
use super::crypto::{aead_cipher, aead_open, aead_seal, AeadKey, TAG_LEN};
use super::messages::{field, Data, DATA_HEADER_LEN, TYPE_DATA};
use super::replay::ReplayWindow;
use super::timers::{REJECT_AFTER_MESSAGES, REJECT_AFTER_TIME};

/// Plaintext is padded to a multiple of this (whitepaper 5.4.6).
const PAD_MULTIPLE: usize = 16;

/// One direction pair of transport keys plus counters.
#[cfg_attr(debug_assertions, derive(Clone))] // See `Device`.
pub struct Keypair {
    send: AeadKey,
    recv: AeadKey,
    send_counter: u64,
    replay: ReplayWindow,
    /// Our index: data messages to us carry it as receiver.
    pub local_index: u32,
    /// The peer's index: we put it in the receiver field.
    pub remote_index: u32,
    /// When the handshake that made this keypair completed.
    pub created: Instant,
    /// Whether we sent the initiation of that handshake.
    pub initiator: bool,
}

impl core::fmt::Debug for Keypair {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Keypair")
            .field("keys", &"<redacted>")
            .field("local_index", &self.local_index)
            .field("remote_index", &self.remote_index)
            .field("send_counter", &self.send_counter)
            .field("created", &self.created)
            .field("initiator", &self.initiator)
            .finish()
    }
}

/// Rounds a packet length up to the padded plaintext length.
#[inline]
pub fn padded_len(len: usize) -> usize {
    len.div_ceil(PAD_MULTIPLE) * PAD_MULTIPLE
}

impl Keypair {
    /// A keypair from the two derived keys (zeroized by the caller after this).
    pub fn new(
        send_key: &[u8; 32],
        recv_key: &[u8; 32],
        local_index: u32,
        remote_index: u32,
        created: Instant,
        initiator: bool,
    ) -> Self {
        Self {
            send: aead_cipher(send_key),
            recv: aead_cipher(recv_key),
            send_counter: 0,
            replay: ReplayWindow::new(),
            local_index,
            remote_index,
            created,
            initiator,
        }
    }

    /// The next counter we will send with.
    pub fn send_counter(&self) -> u64 {
        self.send_counter
    }

    /// Whether this keypair may still be used at `now` (REJECT_AFTER_TIME).
    pub fn is_fresh(&self, now: Instant) -> bool {
        now < self.created + REJECT_AFTER_TIME
    }

    /// Whether this keypair may still send (age and counter limits).
    pub fn can_send(&self, now: Instant) -> bool {
        self.is_fresh(now) && self.send_counter < REJECT_AFTER_MESSAGES
    }

    /// Encrypts `packet` into a complete data message in `out`; returns its length.
    pub fn encrypt(&mut self, packet: &[u8], out: &mut [u8]) -> Result<usize, DropReason> {
        if self.send_counter >= REJECT_AFTER_MESSAGES {
            return Err(DropReason::CounterExhausted);
        }
        let padded = padded_len(packet.len());
        let total = DATA_HEADER_LEN + padded + TAG_LEN;
        if out.len() < total {
            return Err(DropReason::TooLarge);
        }
        let counter = self.send_counter;
        self.send_counter += 1;
        out[field::TYPE].copy_from_slice(&u32::from(TYPE_DATA).to_le_bytes());
        out[field::data::RECEIVER].copy_from_slice(&self.remote_index.to_le_bytes());
        out[field::data::COUNTER].copy_from_slice(&counter.to_le_bytes());
        let body = &mut out[DATA_HEADER_LEN..total];
        body[..packet.len()].copy_from_slice(packet);
        body[packet.len()..padded].fill(0);
        aead_seal(&self.send, counter, body, &[]);
        Ok(total)
    }

    /// Decrypts `msg` into `out`, then checks the replay window; returns the plaintext
    /// length (still padded). `out` must hold the ciphertext.
    pub fn decrypt(&mut self, msg: &Data<'_>, out: &mut [u8]) -> Result<usize, DropReason> {
        let ct = msg.payload();
        if out.len() < ct.len() {
            return Err(DropReason::TooLarge);
        }
        let counter = msg.counter();
        let buf = &mut out[..ct.len()];
        buf.copy_from_slice(ct);
        if !aead_open(&self.recv, counter, buf, &[]) {
            return Err(DropReason::DecryptFailed);
        }
        if !self.replay.check_and_update(counter, REJECT_AFTER_MESSAGES) {
            return Err(DropReason::Replay);
        }
        Ok(ct.len() - TAG_LEN)
    }
}

#[cfg(test)]
mod tests {
    use super::super::messages::Message;
    use super::*;

    fn pair() -> (Keypair, Keypair) {
        let t = Instant::from_secs(1);
        (
            Keypair::new(&[1; 32], &[2; 32], 10, 20, t, true),
            Keypair::new(&[2; 32], &[1; 32], 20, 10, t, false),
        )
    }

    #[test]
    fn data_round_trips_with_padding_and_counter() {
        let (mut a, mut b) = pair();
        let mut wire = [0u8; 256];
        let mut plain = [0u8; 256];
        for i in 0..3u64 {
            let n = a.encrypt(b"hello", &mut wire).unwrap();
            assert_eq!(n, 16 + 16 + 16);
            let Ok(Message::Data(d)) = Message::parse(&wire[..n]) else {
                panic!()
            };
            assert_eq!(d.receiver(), 20);
            assert_eq!(d.counter(), i);
            let m = b.decrypt(&d, &mut plain).unwrap();
            assert_eq!(m, 16);
            assert_eq!(&plain[..5], b"hello");
            assert_eq!(&plain[5..16], &[0; 11]);
        }
    }

    #[test]
    fn replayed_message_is_rejected_after_decrypting() {
        let (mut a, mut b) = pair();
        let mut wire = [0u8; 64];
        let mut plain = [0u8; 64];
        let n = a.encrypt(b"x", &mut wire).unwrap();
        let Ok(Message::Data(d)) = Message::parse(&wire[..n]) else {
            panic!()
        };
        assert!(b.decrypt(&d, &mut plain).is_ok());
        assert_eq!(b.decrypt(&d, &mut plain), Err(DropReason::Replay));
    }

    #[test]
    fn forged_counter_does_not_move_the_window() {
        let (mut a, mut b) = pair();
        let mut wire = [0u8; 64];
        let mut plain = [0u8; 64];
        let n = a.encrypt(b"x", &mut wire).unwrap();
        let mut forged = wire;
        forged[8..16].copy_from_slice(&1_000_000u64.to_le_bytes());
        let Ok(Message::Data(f)) = Message::parse(&forged[..n]) else {
            panic!()
        };
        assert_eq!(b.decrypt(&f, &mut plain), Err(DropReason::DecryptFailed));
        let Ok(Message::Data(d)) = Message::parse(&wire[..n]) else {
            panic!()
        };
        assert!(b.decrypt(&d, &mut plain).is_ok());
    }

    #[test]
    fn small_output_buffer_is_refused_not_overrun() {
        let (mut a, _) = pair();
        let mut wire = [0u8; 47];
        assert_eq!(a.encrypt(b"hello", &mut wire), Err(DropReason::TooLarge));
        assert_eq!(a.send_counter(), 0);
    }
}
