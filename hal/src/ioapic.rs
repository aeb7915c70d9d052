//! Routing a global system interrupt (GSI) through an I/O APIC to a vector on this CPU.
//! Used for virtio-mmio NICs on `microvm`, whose interrupt lines reach only the I/O APICs.

use crate::acpi::IoApicInfo;

/// Reads the local APIC's ID register.
///
/// # Safety
/// The local APIC page at `lapic_base` is identity-mapped.
unsafe fn lapic_id(lapic_base: usize) -> u32 {
    // SAFETY: forwarded from the caller; 0x20 is the architectural ID register.
    unsafe { ((lapic_base + 0x20) as *const u32).read_volatile() >> 24 }
}

/// Routes `gsi` as an edge-triggered, active-high interrupt on `vector` to the local APIC
/// at `lapic_base`. Returns `false` if no I/O APIC serves that GSI.
///
/// Edge-triggered suits the event loop: the NIC's line rises when it has news, the loop
/// acknowledges the device before it sleeps and checks once more for frames, so no edge
/// is lost and a line left high cannot storm.
///
/// # Safety
/// The I/O APICs in `ioapics` and the local APIC are identity-mapped, the IDT has a
/// handler for `vector` that signals end-of-interrupt to the local APIC, and nothing else
/// programs these I/O APIC entries.
pub unsafe fn route_edge(ioapics: &[IoApicInfo], gsi: u32, vector: u8, lapic_base: usize) -> bool {
    for io in ioapics {
        let base = io.addr as usize;
        let sel = base as *mut u32;
        let win = (base + 0x10) as *mut u32;
        // SAFETY: the caller guarantees the I/O APIC is mapped; IOREGSEL/IOWIN are at 0x00
        // and 0x10; register 1 holds the number of redirection entries.
        unsafe {
            sel.write_volatile(1);
            let entries = ((win.read_volatile() >> 16) & 0xff) + 1;
            if gsi < io.gsi_base || gsi >= io.gsi_base + entries {
                continue;
            }
            let pin = gsi - io.gsi_base;
            let dest = lapic_id(lapic_base);
            // High dword: destination APIC ID; low dword: vector, fixed delivery, physical
            // destination, active high, edge, unmasked.
            sel.write_volatile(0x11 + 2 * pin);
            win.write_volatile(dest << 24);
            sel.write_volatile(0x10 + 2 * pin);
            win.write_volatile(vector as u32);
        }
        return true;
    }
    false
}
