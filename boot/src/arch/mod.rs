//! The CPU, set up once: entry (assembly), GDT with a TSS for interrupt stacks, and the IDT.
//! This is the only module of the image with assembly.

use core::arch::{asm, global_asm};
use core::mem::size_of;
use core::ptr::addr_of;

global_asm!(include_str!("entry.S"), options(att_syntax));

mod highmap;
pub use highmap::{map_identity, MapError};

extern "C" {
    static exception_stubs: [u64; 32];
    static irq_stubs: [u64; 15];
    fn timer_isr();
    fn spurious_isr();
    fn lapic_nic_isr();
}

/// Stack for CPU exceptions (IST1), so a fault on a broken stack can still report itself.
const IST_STACK: usize = 16 * 1024;
#[repr(C, align(16))]
struct Stack([u8; IST_STACK]);
static mut EXCEPTION_STACK: Stack = Stack([0; IST_STACK]);
/// Stack for double faults, NMIs and machine checks (IST2).
static mut CRITICAL_STACK: Stack = Stack([0; IST_STACK]);

#[repr(C, packed(4))]
struct Tss {
    _reserved0: u32,
    rsp: [u64; 3],
    _reserved1: u64,
    ist: [u64; 7],
    _reserved2: u64,
    _reserved3: u16,
    iomap_base: u16,
}

static mut TSS: Tss = Tss {
    _reserved0: 0,
    rsp: [0; 3],
    _reserved1: 0,
    ist: [0; 7],
    _reserved2: 0,
    _reserved3: 0,
    iomap_base: size_of::<Tss>() as u16,
};

/// null, 64-bit code (0x08), data (0x10), TSS (0x18, two slots).
static mut GDT: [u64; 5] = [0, 0x00af_9a00_0000_ffff, 0x00cf_9200_0000_ffff, 0, 0];

#[derive(Clone, Copy)]
#[repr(C)]
struct IdtEntry {
    offset_low: u16,
    selector: u16,
    ist: u8,
    type_attr: u8,
    offset_mid: u16,
    offset_high: u32,
    _reserved: u32,
}

const MISSING: IdtEntry = IdtEntry {
    offset_low: 0,
    selector: 0,
    ist: 0,
    type_attr: 0,
    offset_mid: 0,
    offset_high: 0,
    _reserved: 0,
};

static mut IDT: [IdtEntry; 256] = [MISSING; 256];

#[repr(C, packed)]
struct DescriptorPointer {
    limit: u16,
    base: u64,
}

fn gate(handler: u64, ist: u8) -> IdtEntry {
    IdtEntry {
        offset_low: handler as u16,
        selector: 0x08,
        ist,
        type_attr: 0x8e, // present, DPL 0, 64-bit interrupt gate
        offset_mid: (handler >> 16) as u16,
        offset_high: (handler >> 32) as u32,
        _reserved: 0,
    }
}

/// Loads the GDT with a TSS and the IDT: every CPU exception runs on an IST stack and
/// reports itself; the PIC's vectors acknowledge and return.
///
/// # Safety
/// Called once, early, with interrupts disabled, before anything relies on the boot GDT.
pub unsafe fn init() {
    // SAFETY: single-threaded early boot; nothing else references these statics yet, and
    // they live for the whole run as the CPU requires of its descriptor tables.
    unsafe {
        let tss = &raw mut TSS;
        (*tss).ist[0] = addr_of!(EXCEPTION_STACK) as u64 + IST_STACK as u64;
        (*tss).ist[1] = addr_of!(CRITICAL_STACK) as u64 + IST_STACK as u64;
        let base = tss as u64;
        let limit = (size_of::<Tss>() - 1) as u64;
        let gdt = &raw mut GDT;
        (*gdt)[3] = (limit & 0xffff)
            | ((base & 0xff_ffff) << 16)
            | (0x89 << 40) // present, 64-bit available TSS
            | (((limit >> 16) & 0xf) << 48)
            | (((base >> 24) & 0xff) << 56);
        (*gdt)[4] = base >> 32;
        let ptr = DescriptorPointer {
            limit: (size_of::<[u64; 5]>() - 1) as u16,
            base: gdt as u64,
        };
        asm!(
            "lgdt [{ptr}]",
            "push 0x08",
            "lea {tmp}, [rip + 2f]",
            "push {tmp}",
            "retfq",
            "2:",
            "mov {sel:x}, 0x10",
            "mov ds, {sel:x}",
            "mov es, {sel:x}",
            "mov ss, {sel:x}",
            "mov {sel:x}, 0x18",
            "ltr {sel:x}",
            ptr = in(reg) &ptr,
            tmp = out(reg) _,
            sel = out(reg) _,
        );

        let idt = &raw mut IDT;
        let stubs = &*addr_of!(exception_stubs);
        for (v, &stub) in stubs.iter().enumerate() {
            let ist = match v {
                2 | 8 | 18 => 2, // NMI, double fault, machine check
                _ => 1,
            };
            (*idt)[v] = gate(stub, ist);
        }
        (*idt)[32] = gate(timer_isr as *const () as u64, 0);
        for v in NIC_VECTORS {
            (*idt)[v as usize] = gate(lapic_nic_isr as *const () as u64, 0);
        }
        (*idt)[vdcnet_hal::pic::APIC_SPURIOUS_VECTOR as usize] =
            gate(spurious_isr as *const () as u64, 0);
        for (i, &stub) in (*addr_of!(irq_stubs)).iter().enumerate() {
            (*idt)[33 + i] = gate(stub, 0);
        }
        let ptr = DescriptorPointer {
            limit: (size_of::<[IdtEntry; 256]>() - 1) as u16,
            base: idt as u64,
        };
        asm!("lidt [{}]", in(reg) &ptr, options(readonly, nostack));
    }
}

/// Vectors for NIC interrupts routed through an I/O APIC (one per NIC).
pub const NIC_VECTORS: core::ops::Range<u8> = 0x50..0x58;

/// Address of the local APIC's EOI register, read by `lapic_nic_isr` (0 = none yet).
#[no_mangle]
static mut lapic_eoi_addr: u64 = 0;

/// Tells the I/O APIC interrupt stub where the local APIC's EOI register is.
///
/// # Safety
/// Called with interrupts disabled; `lapic_base` is the identity-mapped local APIC.
pub unsafe fn set_lapic_base(lapic_base: usize) {
    // SAFETY: single-threaded, interrupts off: nothing reads the variable concurrently.
    unsafe { *(&raw mut lapic_eoi_addr) = lapic_base as u64 + 0xb0 };
}

/// What the exception stubs leave on the stack.
#[repr(C)]
pub struct ExceptionFrame {
    pub vector: u64,
    pub error_code: u64,
    pub rip: u64,
    pub cs: u64,
    pub rflags: u64,
    pub rsp: u64,
    pub ss: u64,
}

/// Reads CR2, the address of the last page fault.
pub fn cr2() -> u64 {
    let v: u64;
    // SAFETY: reading CR2 at CPL 0 has no side effects.
    unsafe { asm!("mov {}, cr2", out(reg) v, options(nomem, nostack, preserves_flags)) };
    v
}

/// The name of CPU exception `vector`.
pub fn exception_name(vector: u64) -> &'static str {
    match vector {
        0 => "divide error",
        1 => "debug",
        2 => "NMI",
        3 => "breakpoint",
        4 => "overflow",
        5 => "bound range exceeded",
        6 => "invalid opcode",
        7 => "device not available",
        8 => "double fault",
        10 => "invalid TSS",
        11 => "segment not present",
        12 => "stack-segment fault",
        13 => "general protection fault",
        14 => "page fault",
        16 => "x87 floating-point error",
        17 => "alignment check",
        18 => "machine check",
        19 => "SIMD floating-point error",
        21 => "control protection",
        _ => "reserved",
    }
}

extern "C" {
    static mut boot_pt: [u64; 512];
    static boot_stack_guard: u8;
}

/// Unmaps page 0, so that null-pointer accesses fault instead of reading the real-mode IVT,
/// and the guard page under the boot stack, so that a stack overflow faults (and is
/// reported from the exception stack) instead of overwriting the page tables.
///
/// # Safety
/// Nothing will read or write physical page 0 afterwards (the boot information, which the
/// loader may place in low memory, has been copied out).
pub unsafe fn unmap_guard_pages() {
    let guard = &raw const boot_stack_guard as usize;
    // SAFETY: boot_pt is the page table for the first 2 MiB, set up by the entry code; the
    // kernel is linked at 1 MiB and smaller than 1 MiB, so the guard page is in that range.
    // Neither page is in use (caller contract for page 0; the guard page is never used by
    // design). invlpg drops the stale TLB entries.
    unsafe {
        let pt = &mut *(&raw mut boot_pt);
        pt[0] = 0;
        if guard < 0x20_0000 {
            pt[guard >> 12] = 0;
        }
        asm!("invlpg [{}]", in(reg) 0usize, options(nostack, preserves_flags));
        asm!("invlpg [{}]", in(reg) guard, options(nostack, preserves_flags));
    }
}
