//! The image's one random number generator: every entropy source the machine has (RDSEED,
//! RDRAND, a virtio-rng device), mixed.
//!
//! At boot each source is asked for [`SEED_BYTES`]; BLAKE2s over everything that arrived
//! (and which source it came from) is the key of a ChaCha20 generator with fast key
//! erasure: every request runs ChaCha20 under the current key, keeps the first 32 bytes of
//! keystream as the next key and hands out the rest, so a key that leaks later says nothing
//! about bytes already handed out. After every [`RESEED_AFTER`] bytes of output the key is
//! hashed together with fresh input from every source still working.
//!
//! A source that fails (an error, no bytes, a timeout) is skipped and counted; after
//! [`MAX_FAILURES`] failures in a row it is retired and never asked again, so a broken
//! device costs a bounded number of bounded waits. Sans-I/O: the sources are behind
//! [`EntropySource`] (hardware in the image, test doubles in the tests).

use alloc::boxed::Box;
use alloc::vec::Vec;
use blake2::{Blake2s256, Digest};
use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::ChaCha20;

/// Bytes asked of each source when seeding and reseeding.
pub const SEED_BYTES: usize = 32;
/// Output after which the generator reseeds from its sources.
pub const RESEED_AFTER: u64 = 64 * 1024;
/// Failed requests in a row after which a source is retired.
pub const MAX_FAILURES: u32 = 3;
/// Most sources the generator mixes.
pub const MAX_SOURCES: usize = 4;

/// Output bytes per ChaCha20 run (one key per run): 32 bytes of the run become the next key.
const CHUNK: usize = 256;

/// Why a source delivered nothing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SourceError {
    /// The CPU instruction kept reporting failure.
    Cpu,
    /// The device did not answer within its bound.
    Timeout,
    /// The device answered with no bytes.
    Empty,
    /// The device reported more bytes than the buffer holds, or the queue failed.
    Device,
}

impl SourceError {
    /// A few words for the console and the log.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceError::Cpu => "the instruction kept failing",
            SourceError::Timeout => "no answer in time",
            SourceError::Empty => "answered with 0 bytes",
            SourceError::Device => "device error",
        }
    }
}

/// Something that yields random bytes.
pub trait EntropySource {
    /// The source's name on the console (`RDSEED`, `virtio-rng (PCI)`, ...).
    fn name(&self) -> &'static str;
    /// Writes up to `buf.len()` random bytes to the front of `buf`; returns how many
    /// (at least 1 on success).
    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, SourceError>;
}

/// What happened with one source.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SourceStats {
    pub name: &'static str,
    /// Bytes it delivered and the generator mixed in.
    pub bytes: u64,
    /// Requests that failed.
    pub failures: u64,
    /// The last failure, if any.
    pub last_error: Option<SourceError>,
    /// Failed [`MAX_FAILURES`] times in a row: no longer asked.
    pub retired: bool,
    /// Contributed to the first seed.
    pub seeded: bool,
}

struct Slot {
    source: Box<dyn EntropySource>,
    stats: SourceStats,
    failures_in_a_row: u32,
}

impl Slot {
    /// Fills `buf` completely, or gives up after the source fails [`MAX_FAILURES`] times
    /// in a row (and is retired); returns how many bytes arrived.
    fn gather(&mut self, buf: &mut [u8]) -> usize {
        let mut got = 0;
        while got < buf.len() && !self.stats.retired {
            match self.source.fill(&mut buf[got..]) {
                Ok(n) if n > 0 => {
                    let n = n.min(buf.len() - got);
                    got += n;
                    self.stats.bytes += n as u64;
                    self.failures_in_a_row = 0;
                }
                r => {
                    let e = r.err().unwrap_or(SourceError::Empty);
                    self.stats.failures += 1;
                    self.stats.last_error = Some(e);
                    self.failures_in_a_row += 1;
                    if self.failures_in_a_row >= MAX_FAILURES {
                        self.stats.retired = true;
                    }
                    #[cfg(feature = "defmt")]
                    defmt::warn!(
                        "entropy: {=str} failed: {=str}{=str}",
                        self.stats.name,
                        e.as_str(),
                        if self.stats.retired { " (retired)" } else { "" }
                    );
                }
            }
        }
        got
    }
}

/// No source delivered a seed.
#[derive(Debug)]
pub struct NoEntropy {
    /// Every source that was tried, with why it failed.
    pub tried: Vec<SourceStats>,
}

/// The mixed generator.
pub struct MixedRng {
    slots: Vec<Slot>,
    key: [u8; 32],
    since_reseed: u64,
    reseeds: u64,
    /// Reseeds at which no source delivered (the old key was kept, stirred).
    failed_reseeds: u64,
}

impl MixedRng {
    /// Seeds from every source that delivers [`SEED_BYTES`]; at most [`MAX_SOURCES`] are
    /// kept (the rest are ignored). Fails if none delivers.
    pub fn new(sources: Vec<Box<dyn EntropySource>>) -> Result<MixedRng, NoEntropy> {
        let slots: Vec<Slot> = sources
            .into_iter()
            .take(MAX_SOURCES)
            .map(|source| Slot {
                stats: SourceStats {
                    name: source.name(),
                    bytes: 0,
                    failures: 0,
                    last_error: None,
                    retired: false,
                    seeded: false,
                },
                source,
                failures_in_a_row: 0,
            })
            .collect();
        let mut rng = MixedRng {
            slots,
            key: [0; 32],
            since_reseed: 0,
            reseeds: 0,
            failed_reseeds: 0,
        };
        if rng.mix() == 0 {
            return Err(NoEntropy {
                tried: rng.sources().collect(),
            });
        }
        for s in &mut rng.slots {
            s.stats.seeded = s.stats.bytes >= SEED_BYTES as u64;
        }
        Ok(rng)
    }

    /// Hashes the current key with [`SEED_BYTES`] from every working source into a new
    /// key; returns how many sources delivered them in full. A source that delivers only
    /// part is still mixed in, but does not count.
    fn mix(&mut self) -> usize {
        let mut h = Blake2s256::new();
        h.update(b"vdcnet entropy mix v1");
        h.update(self.key);
        h.update(self.reseeds.to_le_bytes());
        let mut full = 0;
        for (i, slot) in self.slots.iter_mut().enumerate() {
            if slot.stats.retired {
                continue;
            }
            let mut buf = [0u8; SEED_BYTES];
            let got = slot.gather(&mut buf);
            // Domain-separate the sources: which one said what is part of the input.
            h.update([i as u8, got as u8]);
            h.update(slot.stats.name.as_bytes());
            h.update(&buf[..got]);
            buf.fill(0);
            if got == SEED_BYTES {
                full += 1;
            }
        }
        self.key = h.finalize().into();
        full
    }

    /// Reseeds now from every working source (it also happens on its own every
    /// [`RESEED_AFTER`] bytes); returns how many sources delivered.
    pub fn reseed(&mut self) -> usize {
        let n = self.mix();
        self.reseeds += 1;
        self.since_reseed = 0;
        if n == 0 {
            self.failed_reseeds += 1;
        }
        n
    }

    /// Every source with what it did.
    pub fn sources(&self) -> impl Iterator<Item = SourceStats> + '_ {
        self.slots.iter().map(|s| s.stats)
    }

    /// Reseeds done, and how many of them found no working source.
    pub fn reseeds(&self) -> (u64, u64) {
        (self.reseeds, self.failed_reseeds)
    }

    /// Fills `out` from the generator.
    pub fn generate(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(CHUNK) {
            let mut block = [0u8; 32 + CHUNK];
            let stream = &mut block[..32 + chunk.len()];
            let mut c = ChaCha20::new(&self.key.into(), &[0u8; 12].into());
            c.apply_keystream(stream);
            self.key.copy_from_slice(&stream[..32]);
            chunk.copy_from_slice(&stream[32..]);
            block.fill(0);
        }
        self.since_reseed += out.len() as u64;
        if self.since_reseed >= RESEED_AFTER {
            self.reseed();
        }
    }
}

impl rand_core::RngCore for MixedRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.generate(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.generate(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.generate(dest);
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.generate(dest);
        Ok(())
    }
}

/// Seeded from at least one source that delivered a full seed, then a ChaCha20 generator.
impl rand_core::CryptoRng for MixedRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::rc::Rc;
    use alloc::vec;
    use core::cell::Cell;
    use rand_core::RngCore;

    /// A test source: a fixed byte pattern, or scripted failures; counts the requests.
    struct Fake {
        name: &'static str,
        byte: u8,
        /// Results to give before working (each `Err` is one failed request).
        script: Vec<Result<usize, SourceError>>,
        /// Bytes per successful request.
        per_call: usize,
        calls: Rc<Cell<u32>>,
    }

    impl Fake {
        fn new(name: &'static str, byte: u8) -> (Fake, Rc<Cell<u32>>) {
            let calls = Rc::new(Cell::new(0));
            let f = Fake {
                name,
                byte,
                script: Vec::new(),
                per_call: 64,
                calls: calls.clone(),
            };
            (f, calls)
        }
    }

    impl EntropySource for Fake {
        fn name(&self) -> &'static str {
            self.name
        }
        fn fill(&mut self, buf: &mut [u8]) -> Result<usize, SourceError> {
            self.calls.set(self.calls.get() + 1);
            if !self.script.is_empty() {
                match self.script.remove(0) {
                    Err(e) => return Err(e),
                    Ok(0) => return Ok(0),
                    Ok(_) => {}
                }
            }
            let n = buf.len().min(self.per_call);
            buf[..n].fill(self.byte);
            Ok(n)
        }
    }

    fn boxed(f: Fake) -> Box<dyn EntropySource> {
        Box::new(f)
    }

    fn output(rng: &mut MixedRng) -> [u8; 64] {
        let mut b = [0u8; 64];
        rng.fill_bytes(&mut b);
        b
    }

    #[test]
    fn seeds_from_every_working_source_and_reports_each() {
        let (a, _) = Fake::new("A", 1);
        let (b, _) = Fake::new("B", 2);
        let rng = MixedRng::new(vec![boxed(a), boxed(b)]).unwrap();
        let s: Vec<_> = rng.sources().collect();
        assert_eq!(s.len(), 2);
        for st in &s {
            assert!(st.seeded && !st.retired, "{st:?}");
            assert_eq!(st.bytes, SEED_BYTES as u64);
        }
    }

    #[test]
    fn output_depends_on_every_source() {
        let make = |x: u8, y: u8| {
            let (a, _) = Fake::new("A", x);
            let (b, _) = Fake::new("B", y);
            output(&mut MixedRng::new(vec![boxed(a), boxed(b)]).unwrap())
        };
        let base = make(1, 2);
        assert_eq!(base, make(1, 2), "same inputs, same stream");
        assert_ne!(base, make(9, 2), "the first source counts");
        assert_ne!(base, make(1, 9), "the second source counts");
        // The same bytes from a differently named source are a different input.
        let (a, _) = Fake::new("C", 1);
        let (b, _) = Fake::new("B", 2);
        assert_ne!(
            base,
            output(&mut MixedRng::new(vec![boxed(a), boxed(b)]).unwrap())
        );
    }

    #[test]
    fn successive_outputs_differ_and_the_key_moves_on() {
        let (a, _) = Fake::new("A", 7);
        let mut rng = MixedRng::new(vec![boxed(a)]).unwrap();
        let key0 = rng.key;
        let x = output(&mut rng);
        let key1 = rng.key;
        let y = output(&mut rng);
        assert_ne!(x, y);
        assert_ne!(
            key0, key1,
            "fast key erasure: every request replaces the key"
        );
        assert_ne!(key1, rng.key);
        assert!(!x.iter().all(|&b| b == x[0]), "not a constant: {x:?}");
    }

    #[test]
    fn a_failing_source_is_skipped_counted_and_retired_without_being_asked_again() {
        let (good, _) = Fake::new("good", 3);
        let (mut bad, bad_calls) = Fake::new("bad", 4);
        bad.script = vec![Err(SourceError::Timeout); 100];
        let mut rng = MixedRng::new(vec![boxed(bad), boxed(good)]).unwrap();
        let s: Vec<_> = rng.sources().collect();
        assert_eq!(s[0].name, "bad");
        assert!(s[0].retired && !s[0].seeded, "{:?}", s[0]);
        assert_eq!(s[0].failures, u64::from(MAX_FAILURES));
        assert_eq!(s[0].last_error, Some(SourceError::Timeout));
        assert!(s[1].seeded, "{:?}", s[1]);
        assert_eq!(bad_calls.get(), MAX_FAILURES);
        rng.reseed();
        assert_eq!(
            bad_calls.get(),
            MAX_FAILURES,
            "a retired source is not asked again"
        );
    }

    #[test]
    fn a_source_answering_zero_bytes_forever_does_not_hang_and_yields_no_entropy() {
        let (mut zero, calls) = Fake::new("zero", 5);
        zero.script = vec![Ok(0); 1000];
        let e = MixedRng::new(vec![boxed(zero)])
            .err()
            .expect("no seed from 0 bytes");
        assert_eq!(calls.get(), MAX_FAILURES);
        assert_eq!(e.tried.len(), 1);
        assert_eq!(e.tried[0].last_error, Some(SourceError::Empty));
        assert!(e.tried[0].retired);
    }

    #[test]
    fn no_source_at_all_is_no_entropy() {
        assert!(MixedRng::new(Vec::new()).is_err());
    }

    #[test]
    fn a_source_that_recovers_after_a_failure_still_seeds() {
        let (mut flaky, _) = Fake::new("flaky", 6);
        flaky.script = vec![Err(SourceError::Empty)];
        flaky.per_call = 5; // short answers: gathered until the seed is full
        let rng = MixedRng::new(vec![boxed(flaky)]).unwrap();
        let s = rng.sources().next().unwrap();
        assert!(s.seeded && !s.retired, "{s:?}");
        assert_eq!((s.failures, s.bytes), (1, SEED_BYTES as u64));
    }

    #[test]
    fn reseeds_from_the_sources_after_the_output_bound() {
        let (a, calls) = Fake::new("A", 1);
        let mut rng = MixedRng::new(vec![boxed(a)]).unwrap();
        let after_seed = calls.get();
        let mut buf = vec![0u8; (RESEED_AFTER - 1) as usize];
        rng.fill_bytes(&mut buf);
        assert_eq!(calls.get(), after_seed, "no reseed before the bound");
        assert_eq!(rng.reseeds(), (0, 0));
        rng.fill_bytes(&mut [0u8; 1]);
        assert_eq!(calls.get(), after_seed + 1, "reseeded at the bound");
        assert_eq!(rng.reseeds(), (1, 0));
    }

    #[test]
    fn a_reseed_with_every_source_gone_keeps_going_and_is_counted() {
        let (mut a, calls) = Fake::new("A", 1);
        // Delivers the seed, then fails every request.
        a.script = vec![Ok(1)];
        a.script.extend([Err(SourceError::Device); 10]);
        let mut rng = MixedRng::new(vec![boxed(a)]).unwrap();
        let before = output(&mut rng);
        assert_eq!(rng.reseed(), 0);
        assert_eq!(rng.reseeds(), (1, 1));
        assert_eq!(calls.get(), 1 + MAX_FAILURES);
        let s = rng.sources().next().unwrap();
        assert!(s.seeded && s.retired, "{s:?}");
        assert_ne!(before, output(&mut rng), "still a working generator");
    }

    #[test]
    fn large_requests_span_several_keys() {
        let (a, _) = Fake::new("A", 1);
        let mut rng = MixedRng::new(vec![boxed(a)]).unwrap();
        let mut buf = vec![0u8; CHUNK * 3 + 7];
        rng.fill_bytes(&mut buf);
        // Each chunk comes from a different key: no two chunks are equal.
        let c: Vec<&[u8]> = buf.chunks(CHUNK).collect();
        assert_ne!(c[0], c[1]);
        assert_ne!(c[1], c[2]);
        assert!(buf[CHUNK * 3..].iter().any(|&b| b != 0));
    }
}
