//! Just enough ACPI: the RSDP (from the loader or the BIOS area), the RSDT/XSDT, the MCFG
//! table's ECAM base for PCI segment 0, and the MADT's I/O APICs.

use core::ptr::read_unaligned;

/// Where the memory-mapped configuration space of segment 0 lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ecam {
    pub base: u64,
    pub start_bus: u8,
    pub end_bus: u8,
}

/// # Safety
/// `paddr..paddr+size_of::<T>()` is identity-mapped readable memory.
unsafe fn rd<T: Copy>(paddr: u64) -> T {
    // SAFETY: the caller guarantees the range is mapped; unaligned reads are allowed.
    unsafe { read_unaligned(paddr as usize as *const T) }
}

/// # Safety
/// `paddr..paddr+len` is identity-mapped readable memory.
unsafe fn checksum_ok(paddr: u64, len: usize) -> bool {
    let mut sum = 0u8;
    for i in 0..len as u64 {
        // SAFETY: forwarded from the caller.
        sum = sum.wrapping_add(unsafe { rd::<u8>(paddr + i) });
    }
    sum == 0
}

/// Finds the RSDP: at `hint` if the loader gave one, else by scanning the BIOS read-only
/// area 0xe0000..0x100000 on 16-byte boundaries.
///
/// # Safety
/// The first MiB of physical memory (and `hint`) is identity-mapped and readable.
pub unsafe fn find_rsdp(hint: Option<u64>) -> Option<u64> {
    // SAFETY: forwarded from the caller.
    unsafe {
        if let Some(h) = hint.filter(|&h| h != 0) {
            if rd::<[u8; 8]>(h) == *b"RSD PTR " && checksum_ok(h, 20) {
                return Some(h);
            }
        }
        (0xe_0000u64..0x10_0000)
            .step_by(16)
            .find(|&a| rd::<[u8; 8]>(a) == *b"RSD PTR " && checksum_ok(a, 20))
    }
}

/// Finds the table with signature `sig` through the RSDT/XSDT of the RSDP at `rsdp`, and
/// returns its address and length (checksum verified).
///
/// # Safety
/// `rsdp` is a valid RSDP and the ACPI tables it leads to are identity-mapped (they sit
/// below 4 GiB on the machines vdcnet boots on).
unsafe fn find_table(rsdp: u64, sig: &[u8; 4]) -> Option<(u64, u64)> {
    // SAFETY: forwarded from the caller; every length read bounds the reads that follow.
    unsafe {
        let revision: u8 = rd(rsdp + 15);
        let (root, entry_size) = if revision >= 2 && rd::<u64>(rsdp + 24) != 0 {
            (rd::<u64>(rsdp + 24), 8u64)
        } else {
            (rd::<u32>(rsdp + 16) as u64, 4u64)
        };
        if root == 0 || root >= 1 << 32 {
            return None;
        }
        let len = rd::<u32>(root + 4) as u64;
        if !(36..=64 * 1024).contains(&len) || !checksum_ok(root, len as usize) {
            return None;
        }
        let mut e = root + 36;
        while e + entry_size <= root + len {
            let table = if entry_size == 8 {
                rd::<u64>(e)
            } else {
                rd::<u32>(e) as u64
            };
            e += entry_size;
            if table == 0 || table >= 1 << 32 || rd::<[u8; 4]>(table) != *sig {
                continue;
            }
            let tlen = rd::<u32>(table + 4) as u64;
            if !(36..=64 * 1024).contains(&tlen) || !checksum_ok(table, tlen as usize) {
                return None;
            }
            return Some((table, tlen));
        }
        None
    }
}

/// Reads the MCFG table reachable from the RSDP at `rsdp`.
///
/// # Safety
/// As for [`find_table`].
pub unsafe fn find_ecam(rsdp: u64) -> Option<Ecam> {
    // SAFETY: forwarded from the caller; reads stay inside the table's checked length.
    unsafe {
        let (table, tlen) = find_table(rsdp, b"MCFG")?;
        let mut a = table + 44;
        while a + 16 <= table + tlen {
            let base: u64 = rd(a);
            let segment: u16 = rd(a + 8);
            let (start_bus, end_bus): (u8, u8) = (rd(a + 10), rd(a + 11));
            if segment == 0 && base != 0 && base < 1 << 32 {
                return Some(Ecam {
                    base,
                    start_bus,
                    end_bus,
                });
            }
            a += 16;
        }
        None
    }
}

/// An I/O APIC from the MADT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoApicInfo {
    pub addr: u64,
    /// The first global system interrupt (GSI) it serves.
    pub gsi_base: u32,
}

/// The I/O APICs the MADT lists.
///
/// # Safety
/// As for [`find_table`].
pub unsafe fn find_ioapics(rsdp: u64) -> heapless::Vec<IoApicInfo, 4> {
    let mut out = heapless::Vec::new();
    // SAFETY: forwarded from the caller; reads stay inside the table's checked length and
    // each entry's own length.
    unsafe {
        let Some((table, tlen)) = find_table(rsdp, b"APIC") else {
            return out;
        };
        let mut e = table + 44;
        while e + 2 <= table + tlen {
            let kind: u8 = rd(e);
            let len = rd::<u8>(e + 1) as u64;
            if len < 2 || e + len > table + tlen {
                break;
            }
            if kind == 1 && len >= 12 {
                let addr = rd::<u32>(e + 4) as u64;
                let gsi_base: u32 = rd(e + 8);
                let _ = out.push(IoApicInfo { addr, gsi_base });
            }
            e += len;
        }
    }
    out
}
