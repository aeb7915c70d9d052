//! Identity mappings above 4 GiB for device memory. The entry code maps only the first
//! 4 GiB; UEFI firmware (OVMF) places 64-bit PCI BARs high (for example the virtio-net
//! BAR at 0xe0_0000_0000 under QEMU), so the NIC probe maps those BARs here before the
//! driver touches them: 2 MiB pages, uncached, with page tables from a small static pool.

use core::arch::asm;

/// Page tables available for high mappings (each maps up to 1 GiB of 2 MiB pages, or
/// points at up to 512 such tables).
const POOL: usize = 8;

const PRESENT: u64 = 1;
const WRITABLE: u64 = 1 << 1;
const WRITE_THROUGH: u64 = 1 << 3;
const CACHE_DISABLE: u64 = 1 << 4;
const LARGE: u64 = 1 << 7;
const ADDRESS: u64 = 0x000f_ffff_ffff_f000;

const PAGE_2M: u64 = 1 << 21;
/// What the entry code identity-maps already.
const MAPPED_BY_ENTRY: u64 = 1 << 32;
/// Identity mappings must stay in the lower canonical half.
const LIMIT: u64 = 1 << 47;

#[repr(C, align(4096))]
struct Table([u64; 512]);

static mut TABLES: [Table; POOL] = [const { Table([0; 512]) }; POOL];
static mut USED: usize = 0;

extern "C" {
    static mut boot_pml4: [u64; 512];
}

/// Why a range could not be mapped.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // the fields are read through Debug in the warning
pub enum MapError {
    /// The range ends beyond the lower canonical half (an address is its own virtual
    /// address here).
    OutOfRange { start: u64, len: u64 },
    /// The static pool of page tables is used up.
    NoTables,
}

/// The table an entry points at, creating it from the pool if the entry is empty.
///
/// # Safety
/// `entry` is a non-leaf entry of the live page tables; single-threaded, interrupts off.
unsafe fn next_level(entry: &mut u64) -> Result<&'static mut [u64; 512], MapError> {
    if *entry & PRESENT == 0 {
        // SAFETY: single-threaded (caller contract): nothing else touches the pool.
        let table = unsafe {
            let used = &mut *(&raw mut USED);
            if *used == POOL {
                return Err(MapError::NoTables);
            }
            let t = &raw mut (*(&raw mut TABLES))[*used];
            *used += 1;
            t
        };
        // The kernel is identity-mapped: a static's address is its physical address.
        *entry = (table as u64) | PRESENT | WRITABLE;
    }
    // SAFETY: a present non-leaf entry points at a page table, which lies in the
    // identity-mapped kernel image (the entry code's tables or the pool).
    Ok(unsafe { &mut *((*entry & ADDRESS) as usize as *mut [u64; 512]) })
}

/// Identity-maps `start..start + len` (uncached) where it lies above the first 4 GiB;
/// what is already mapped stays as it is.
///
/// # Safety
/// The range is device memory (nothing else is mapped there); called with interrupts
/// disabled on the only CPU, while nothing else edits the page tables.
pub unsafe fn map_identity(start: u64, len: u64) -> Result<(), MapError> {
    let end = start
        .checked_add(len)
        .filter(|&e| e <= LIMIT)
        .ok_or(MapError::OutOfRange { start, len })?;
    let mut page = (start & !(PAGE_2M - 1)).max(MAPPED_BY_ENTRY);
    while page < end {
        // SAFETY: boot_pml4 is the live top-level table, built by the entry code; the
        // caller guarantees exclusive access. The pages mapped are device memory, so no
        // Rust object aliases them.
        unsafe {
            let pml4 = &mut *(&raw mut boot_pml4);
            let pdpt = next_level(&mut pml4[(page >> 39) as usize & 511])?;
            let pd = next_level(&mut pdpt[(page >> 30) as usize & 511])?;
            let leaf = &mut pd[(page >> 21) as usize & 511];
            if *leaf & PRESENT == 0 {
                *leaf = page | PRESENT | WRITABLE | WRITE_THROUGH | CACHE_DISABLE | LARGE;
                asm!("invlpg [{}]", in(reg) page, options(nostack, preserves_flags));
            }
        }
        page += PAGE_2M;
    }
    Ok(())
}
