//! Random numbers from the CPU (RDSEED, else RDRAND); each is also a source for the
//! [`entropy`](crate::entropy) mixer.

use core::arch::x86_64::{_rdrand64_step, _rdseed64_step};

/// Which instruction the RNG draws from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    RdSeed,
    RdRand,
}

/// The CPU's hardware random number generator.
#[derive(Clone, Copy, Debug)]
pub struct Rng {
    source: Source,
}

/// The CPU has neither RDSEED nor RDRAND, or they kept failing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoEntropy;

impl Rng {
    /// Uses RDSEED where the CPU has it, else RDRAND; `None` if it has neither.
    pub fn new() -> Option<Rng> {
        Rng::with_source(Source::RdSeed).or_else(|| Rng::with_source(Source::RdRand))
    }

    /// Uses `source` if the CPU has it and it works; `None` otherwise.
    pub fn with_source(source: Source) -> Option<Rng> {
        let f = crate::cpu::features();
        let has = match source {
            Source::RdSeed => f.rdseed,
            Source::RdRand => f.rdrand,
        };
        if !has {
            return None;
        }
        let rng = Rng { source };
        // A CPU can advertise the instruction and still fail every call (known firmware
        // bugs return all ones); check once that it works.
        let (a, b) = (rng.try_next_u64().ok()?, rng.try_next_u64().ok()?);
        if a == b {
            return None;
        }
        Some(rng)
    }

    /// Every instruction source the CPU has that works (RDSEED, RDRAND), for the mixer.
    pub fn sources() -> alloc::vec::Vec<alloc::boxed::Box<dyn crate::entropy::EntropySource>> {
        let mut v: alloc::vec::Vec<alloc::boxed::Box<dyn crate::entropy::EntropySource>> =
            alloc::vec::Vec::new();
        for s in [Source::RdSeed, Source::RdRand] {
            if let Some(r) = Rng::with_source(s) {
                v.push(alloc::boxed::Box::new(r));
            }
        }
        v
    }

    /// Which instruction this RNG uses.
    pub fn source(&self) -> Source {
        self.source
    }

    /// One 64-bit random value, retrying a bounded number of times as Intel advises.
    pub fn try_next_u64(&self) -> Result<u64, NoEntropy> {
        let mut v = 0u64;
        for _ in 0..128 {
            // SAFETY: `new` checked CPUID for the instruction used here.
            let ok = unsafe {
                match self.source {
                    #[cfg(target_feature = "rdseed")]
                    Source::RdSeed => _rdseed64_step(&mut v),
                    #[cfg(not(target_feature = "rdseed"))]
                    Source::RdSeed => rdseed(&mut v),
                    #[cfg(target_feature = "rdrand")]
                    Source::RdRand => _rdrand64_step(&mut v),
                    #[cfg(not(target_feature = "rdrand"))]
                    Source::RdRand => rdrand(&mut v),
                }
            };
            if ok == 1 {
                return Ok(v);
            }
            core::hint::spin_loop();
        }
        Err(NoEntropy)
    }

    /// Fills `buf` with random bytes.
    pub fn fill(&self, buf: &mut [u8]) -> Result<(), NoEntropy> {
        for chunk in buf.chunks_mut(8) {
            let v = self.try_next_u64()?.to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

// The intrinsics need the target feature enabled at compile time; the image is built for a
// baseline CPU and checks CPUID at run time instead, so call them through wrappers that
// enable the feature for this function only.
#[cfg(not(target_feature = "rdseed"))]
#[target_feature(enable = "rdseed")]
unsafe fn rdseed(v: &mut u64) -> i32 {
    _rdseed64_step(v)
}

#[cfg(not(target_feature = "rdrand"))]
#[target_feature(enable = "rdrand")]
unsafe fn rdrand(v: &mut u64) -> i32 {
    _rdrand64_step(v)
}

impl rand_core::RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.next_u64_or_halt() as u32
    }

    fn next_u64(&mut self) -> u64 {
        self.next_u64_or_halt()
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        // As `next_u64_or_halt`: never hand out bytes that are not random.
        while self.fill(dest).is_err() {
            core::hint::spin_loop();
        }
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill(dest).map_err(|_| {
            rand_core::Error::from(
                core::num::NonZeroU32::new(rand_core::Error::CUSTOM_START)
                    .unwrap_or(core::num::NonZeroU32::MIN),
            )
        })
    }
}

/// RDSEED/RDRAND are the kernel's only entropy: a CPU whose generator stopped working
/// cannot safely make keys.
impl rand_core::CryptoRng for Rng {}

impl Rng {
    fn next_u64_or_halt(&self) -> u64 {
        loop {
            if let Ok(v) = self.try_next_u64() {
                return v;
            }
            // `next_u64` already retried 128 times; an RNG that keeps failing is a CPU
            // fault. Waiting is the safe answer: never hand out non-random key material.
            core::hint::spin_loop();
        }
    }
}

/// RDSEED or RDRAND as one of the mixer's sources.
impl crate::entropy::EntropySource for Rng {
    fn name(&self) -> &'static str {
        match self.source {
            Source::RdSeed => "RDSEED",
            Source::RdRand => "RDRAND",
        }
    }

    fn fill(&mut self, buf: &mut [u8]) -> Result<usize, crate::entropy::SourceError> {
        let n = buf.len().min(64);
        Rng::fill(self, &mut buf[..n]).map_err(|_| crate::entropy::SourceError::Cpu)?;
        Ok(n)
    }
}

/// A seed from the jitter of timed port writes, for machines without RDSEED/RDRAND.
///
/// This is NOT cryptographic-grade entropy: it is only good enough to make TCP initial
/// sequence numbers and ephemeral ports unpredictable to a casual observer. The image
/// refuses to run a WireGuard interface without a real entropy source.
pub fn timer_jitter_seed() -> u64 {
    let mut h: u64 = 0x243f_6a88_85a3_08d3;
    for _ in 0..256 {
        let t0 = crate::cpu::rdtsc();
        // SAFETY: port 0x80 is the POST diagnostic port, conventionally written as an I/O
        // delay; nothing reads it.
        unsafe { crate::port::outb(0x80, 0) };
        let d = crate::cpu::rdtsc().wrapping_sub(t0);
        h = (h ^ d ^ t0).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        h ^= h >> 29;
    }
    h
}
