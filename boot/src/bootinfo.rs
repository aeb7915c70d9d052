//! What the boot loader tells us: memory map, kernel command line, and the first boot
//! module (the node config), from a PVH `hvm_start_info` or a multiboot2 information
//! structure. Everything is copied out before the heap can reuse the loader's memory.

use core::ptr::read_unaligned;

/// Largest config module accepted.
pub const MAX_MODULE: usize = 64 * 1024;
/// Longest kernel command line kept.
pub const MAX_CMDLINE: usize = 4096;

const PVH_MAGIC: u32 = 0x336e_c578;

/// Which protocol started the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loader {
    Pvh,
    Multiboot2,
    Unknown,
}

/// A range of usable RAM.
#[derive(Clone, Copy, Debug)]
pub struct Region {
    pub start: u64,
    pub end: u64,
}

/// Why the boot information could not be used.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // the fields are read through Debug in the fatal message
pub enum BootInfoError {
    UnknownLoader,
    BadMagic(u32),
    NoMemoryMap,
    /// The config module is larger than [`MAX_MODULE`].
    ModuleTooLarge(u64),
}

/// The boot information, copied into kernel memory.
pub struct BootInfo {
    pub loader: Loader,
    pub memory: heapless::Vec<Region, 64>,
    cmdline: [u8; MAX_CMDLINE],
    cmdline_len: usize,
    module: &'static mut [u8; MAX_MODULE],
    module_len: Option<usize>,
    pub rsdp: Option<u64>,
}

impl BootInfo {
    /// The kernel command line (empty if none; invalid UTF-8 is cut at the first bad byte).
    pub fn cmdline(&self) -> &str {
        let bytes = &self.cmdline[..self.cmdline_len];
        match core::str::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => core::str::from_utf8(&bytes[..e.valid_up_to()]).unwrap_or(""),
        }
    }

    /// The first boot module, if the loader passed one.
    pub fn module(&self) -> Option<&[u8]> {
        self.module_len.map(|n| &self.module[..n])
    }
}

/// Copies `len` bytes of loader memory at physical `paddr` into `dst`.
///
/// # Safety
/// `paddr..paddr+len` is loader-provided memory, identity-mapped and not yet reused.
unsafe fn copy_phys(paddr: u64, len: usize, dst: &mut [u8]) {
    let len = len.min(dst.len());
    // SAFETY: the caller guarantees the source range is mapped and readable; `dst` is ours.
    unsafe { core::ptr::copy_nonoverlapping(paddr as usize as *const u8, dst.as_mut_ptr(), len) };
}

/// Length of the NUL-terminated string at `paddr`, at most `max`.
///
/// # Safety
/// As for [`copy_phys`], for up to `max` bytes or the NUL.
unsafe fn c_strlen(paddr: u64, max: usize) -> usize {
    let mut n = 0;
    // SAFETY: the caller guarantees the string is mapped up to its NUL or `max` bytes.
    while n < max && unsafe { *((paddr as usize + n) as *const u8) } != 0 {
        n += 1;
    }
    n
}

/// Reads a `T` at physical address `paddr`.
///
/// # Safety
/// As for [`copy_phys`], for `size_of::<T>()` bytes.
unsafe fn rd<T: Copy>(paddr: u64) -> T {
    // SAFETY: the caller guarantees the range is mapped; unaligned reads are allowed.
    unsafe { read_unaligned(paddr as usize as *const T) }
}

/// Parses the loader's boot information at `info` (as passed in ebx).
///
/// # Safety
/// `info` is the address the loader passed for `protocol`, and its memory (and everything
/// it points to) is identity-mapped and untouched since the loader ran. `module_buf` is
/// the kernel's own buffer for the module copy.
pub unsafe fn parse(
    info: u64,
    protocol: u32,
    module_buf: &'static mut [u8; MAX_MODULE],
) -> Result<BootInfo, BootInfoError> {
    let mut bi = BootInfo {
        loader: Loader::Unknown,
        memory: heapless::Vec::new(),
        cmdline: [0; MAX_CMDLINE],
        cmdline_len: 0,
        module: module_buf,
        module_len: None,
        rsdp: None,
    };
    // SAFETY: forwarded from the caller.
    unsafe {
        match protocol {
            1 => parse_pvh(info, &mut bi)?,
            2 => parse_multiboot2(info, &mut bi)?,
            _ => return Err(BootInfoError::UnknownLoader),
        }
    }
    if bi.memory.is_empty() {
        return Err(BootInfoError::NoMemoryMap);
    }
    Ok(bi)
}

/// # Safety
/// As for [`parse`].
unsafe fn parse_pvh(info: u64, bi: &mut BootInfo) -> Result<(), BootInfoError> {
    bi.loader = Loader::Pvh;
    // SAFETY: `info` points at an hvm_start_info (caller contract); its fields and the
    // tables they point at are loader memory, still intact.
    unsafe {
        let magic: u32 = rd(info);
        if magic != PVH_MAGIC {
            return Err(BootInfoError::BadMagic(magic));
        }
        let version: u32 = rd(info + 4);
        let nr_modules: u32 = rd(info + 12);
        let modlist: u64 = rd(info + 16);
        let cmdline: u64 = rd(info + 24);
        let rsdp: u64 = rd(info + 32);
        if rsdp != 0 {
            bi.rsdp = Some(rsdp);
        }
        if cmdline != 0 {
            let n = c_strlen(cmdline, MAX_CMDLINE);
            copy_phys(cmdline, n, &mut bi.cmdline);
            bi.cmdline_len = n;
        }
        if nr_modules > 0 && modlist != 0 {
            let paddr: u64 = rd(modlist);
            let size: u64 = rd(modlist + 8);
            take_module(bi, paddr, size)?;
        }
        if version >= 1 {
            let memmap: u64 = rd(info + 40);
            let entries: u32 = rd(info + 48);
            for i in 0..entries.min(128) as u64 {
                let e = memmap + i * 24;
                let addr: u64 = rd(e);
                let size: u64 = rd(e + 8);
                let kind: u32 = rd(e + 16);
                if kind == 1 {
                    let _ = bi.memory.push(Region {
                        start: addr,
                        end: addr.saturating_add(size),
                    });
                }
            }
        }
    }
    Ok(())
}

/// # Safety
/// As for [`parse`]; `paddr..paddr+size` is the module's memory.
unsafe fn take_module(bi: &mut BootInfo, paddr: u64, size: u64) -> Result<(), BootInfoError> {
    if size > MAX_MODULE as u64 {
        return Err(BootInfoError::ModuleTooLarge(size));
    }
    // SAFETY: forwarded from the caller.
    unsafe { copy_phys(paddr, size as usize, &mut bi.module[..]) };
    bi.module_len = Some(size as usize);
    Ok(())
}

/// # Safety
/// As for [`parse`].
unsafe fn parse_multiboot2(info: u64, bi: &mut BootInfo) -> Result<(), BootInfoError> {
    bi.loader = Loader::Multiboot2;
    // SAFETY: `info` points at a multiboot2 information structure (caller contract); tags
    // are walked within its declared total size.
    unsafe {
        let total: u32 = rd(info);
        let end = info + total.min(1 << 20) as u64;
        let mut tag = info + 8;
        let mut have_module = false;
        while tag + 8 <= end {
            let kind: u32 = rd(tag);
            let size: u32 = rd(tag + 4);
            if kind == 0 || size < 8 {
                break;
            }
            match kind {
                1 => {
                    let n = c_strlen(tag + 8, (size as usize - 8).min(MAX_CMDLINE));
                    copy_phys(tag + 8, n, &mut bi.cmdline);
                    bi.cmdline_len = n;
                }
                3 if !have_module => {
                    let start: u32 = rd(tag + 8);
                    let stop: u32 = rd(tag + 12);
                    take_module(bi, start as u64, stop.saturating_sub(start) as u64)?;
                    have_module = true;
                }
                6 => {
                    let entry_size: u32 = rd(tag + 8);
                    if entry_size >= 24 {
                        let mut e = tag + 16;
                        while e + entry_size as u64 <= tag + size as u64 {
                            let addr: u64 = rd(e);
                            let len: u64 = rd(e + 8);
                            let kind: u32 = rd(e + 16);
                            if kind == 1 {
                                let _ = bi.memory.push(Region {
                                    start: addr,
                                    end: addr.saturating_add(len),
                                });
                            }
                            e += entry_size as u64;
                        }
                    }
                }
                14 | 15 if bi.rsdp.is_none() => bi.rsdp = Some(tag + 8),
                _ => {}
            }
            tag += (size as u64 + 7) & !7;
        }
    }
    Ok(())
}
