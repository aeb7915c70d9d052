//! CPU identification and the few privileged instructions the event loop needs.

use core::arch::asm;
use core::arch::x86_64::{__cpuid, __cpuid_count, _rdtsc};

/// What CPUID says about the features vdcnet cares about.
#[derive(Clone, Copy, Debug, Default)]
pub struct Features {
    pub rdrand: bool,
    pub rdseed: bool,
    pub invariant_tsc: bool,
    pub hypervisor: bool,
}

/// Reads the CPU's feature flags.
pub fn features() -> Features {
    // CPUID is available on every x86_64 CPU and has no side effects.
    let l1 = __cpuid(1);
    let max = __cpuid(0).eax;
    let l7 = if max >= 7 {
        __cpuid_count(7, 0)
    } else {
        __cpuid(0)
    };
    let ext_max = __cpuid(0x8000_0000).eax;
    let inv = ext_max >= 0x8000_0007 && (__cpuid(0x8000_0007).edx >> 8) & 1 == 1;
    Features {
        rdrand: (l1.ecx >> 30) & 1 == 1,
        rdseed: max >= 7 && (l7.ebx >> 18) & 1 == 1,
        invariant_tsc: inv,
        hypervisor: (l1.ecx >> 31) & 1 == 1,
    }
}

/// The CPU's brand string (CPUID leaves 0x8000_0002..4), NUL and space trimmed.
pub fn brand(buf: &mut [u8; 48]) -> &str {
    if __cpuid(0x8000_0000).eax < 0x8000_0004 {
        return "unknown CPU";
    }
    for (i, leaf) in (0x8000_0002u32..=0x8000_0004).enumerate() {
        let r = __cpuid(leaf);
        for (j, w) in [r.eax, r.ebx, r.ecx, r.edx].iter().enumerate() {
            let o = i * 16 + j * 4;
            buf[o..o + 4].copy_from_slice(&w.to_le_bytes());
        }
    }
    let s = core::str::from_utf8(buf).unwrap_or("unknown CPU");
    s.trim_matches(|c: char| c == '\0' || c == ' ')
}

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC only reads a counter; CR4.TSD is clear so it is allowed at CPL 0.
    unsafe { _rdtsc() }
}

/// Enables interrupts and halts until the next one arrives, atomically: an interrupt that
/// arrives between the check the caller made and this call still wakes the CPU, because
/// `sti` takes effect only after the following instruction.
#[inline]
pub fn wait_for_interrupt() {
    // SAFETY: the kernel has an IDT with a handler for every interrupt it unmasks, so
    // enabling interrupts here is sound; `hlt` only pauses the CPU.
    unsafe { asm!("sti; hlt; cli", options(nomem, nostack)) };
}

/// Disables interrupts.
#[inline]
pub fn disable_interrupts() {
    // SAFETY: masking interrupts cannot break memory safety.
    unsafe { asm!("cli", options(nomem, nostack)) };
}
