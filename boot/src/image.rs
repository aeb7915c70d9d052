//! Everything that exists only in the image.

#[macro_use]
#[path = "console.rs"]
pub mod console;
#[path = "arch/mod.rs"]
mod arch;
#[path = "bootinfo.rs"]
mod bootinfo;
#[path = "exit.rs"]
mod exit;

extern crate alloc;

use alloc::boxed::Box;
use alloc::vec::Vec;
use bootinfo::{BootInfo, MAX_MODULE};
use core::sync::atomic::Ordering;
use linked_list_allocator::LockedHeap;
use rand_core::RngCore;
use vdcnet_appliance::cmdline::Cmdline;
use vdcnet_appliance::config::{self, Config};
use vdcnet_appliance::runtime::{Appliance, Options};
use vdcnet_hal::acpi;
use vdcnet_hal::clock::Clock;
use vdcnet_hal::entropy::{MixedRng, SourceStats};
use vdcnet_hal::net::NetDevice;
use vdcnet_hal::pci::{Cam, PortCam};
use vdcnet_hal::rng::Rng;
use vdcnet_hal::virtio::{Irq, VirtioNic};
use vdcnet_hal::virtio_rng::VirtioRng;
use virtio_drivers::transport::pci::bus::ConfigurationAccess;
use virtio_drivers::transport::pci::bus::PciRoot;

#[global_allocator]
static HEAP: LockedHeap = LockedHeap::empty();

/// Most NICs the appliance drives.
const MAX_NICS: usize = 4;

static mut MODULE_BUF: [u8; MAX_MODULE] = [0; MAX_MODULE];

extern "C" {
    static __kernel_start: u8;
    static __kernel_end: u8;
}

/// Called from the assembly entry with the loader's info pointer and protocol (1 = PVH,
/// 2 = multiboot2).
#[no_mangle]
extern "C" fn kernel_main(info: u64, protocol: u32) -> ! {
    // SAFETY: first code after entry, interrupts off, single CPU: we own the UARTs and the
    // descriptor tables.
    unsafe {
        console::init();
        arch::init();
    }
    // SAFETY: called once; MODULE_BUF is referenced nowhere else. The loader's memory is
    // identity-mapped and untouched (no allocation has happened yet).
    let boot = match unsafe { bootinfo::parse(info, protocol, &mut *(&raw mut MODULE_BUF)) } {
        Ok(b) => b,
        Err(e) => {
            println!("vdcnet: fatal: unusable boot information: {e:?}");
            exit::fail();
        }
    };
    let heap = init_heap(&boot);
    // SAFETY: the boot information has been copied into `boot`; the heap starts above page 0.
    unsafe { arch::unmap_guard_pages() };
    let cmdline = Cmdline::parse(boot.cmdline());
    let mut brand = [0u8; 48];
    println!(
        "vdcnet {} booting ({:?}, {} MiB heap, {})",
        env!("CARGO_PKG_VERSION"),
        boot.loader,
        heap >> 20,
        vdcnet_hal::cpu::brand(&mut brand)
    );
    defmt::info!("command line: {=str}", boot.cmdline());
    for w in cmdline.warnings() {
        println!("vdcnet: warning: command line: {w}");
    }

    // SAFETY: we own the PIT, PICs and RTC; the IDT has the timer and PIC vectors;
    // interrupts stay off until the event loop halts.
    let clock = match unsafe { Clock::init() } {
        Ok(c) => c,
        Err(e) => {
            println!("vdcnet: fatal: cannot calibrate the clock: {e:?}");
            exit::fail();
        }
    };
    console::TSC_HZ.store(clock.tsc_hz(), Ordering::Relaxed);
    console::TSC_BOOT.store(vdcnet_hal::cpu::rdtsc(), Ordering::Relaxed);
    defmt::info!(
        "clock: TSC {=u64} kHz, wall {=u64} s",
        clock.tsc_hz() / 1000,
        clock.wall_ns().unwrap_or(0) / 1_000_000_000
    );

    let config = match boot.module() {
        None => {
            println!("vdcnet: no config module: using the default config");
            Config::default_config()
        }
        Some(text) => match config::parse(text) {
            Ok(c) => c,
            Err(errors) => {
                for e in &errors {
                    println!("config: {e}");
                }
                println!(
                    "vdcnet: fatal: the config has {} error(s); not booting",
                    errors.len()
                );
                exit::fail();
            }
        },
    };

    if cmdline.fault_page {
        println!("vdcnet: forcing a page fault (vdcnet.fault=page)");
        // SAFETY: deliberately not sound: this reads an unmapped address to test the fault
        // report. The page fault handler never returns.
        unsafe { core::ptr::read_volatile(0x80_0000_0000usize as *const u64) };
    }

    // SAFETY: the first MiB and the ACPI tables (below 4 GiB) are identity-mapped; reading
    // them has no side effects.
    let rsdp = unsafe { acpi::find_rsdp(boot.rsdp) };
    let mmio_irqs = vdcnet_hal::virtio::mmio_devices_from_cmdline(boot.cmdline());
    let (nics, virtio_rng) = probe_devices(rsdp, &mmio_irqs, clock.tsc_hz());
    let (rng, seed) = entropy(virtio_rng, config.interface.is_some());
    // NICs that interrupt let the tick slow down to what protocol timers need; if any NIC
    // cannot, keep polling at 1 kHz.
    let (irq_lines, all_interrupt) = route_nic_interrupts(&nics, rsdp);
    if all_interrupt {
        // SAFETY: we own the PIT; the IDT has handlers for every PIC line.
        unsafe { vdcnet_hal::clock::set_tick_hz(vdcnet_hal::clock::TICK_HZ_WITH_NIC_IRQS) };
        defmt::info!(
            "every NIC interrupts; tick {=u64} Hz",
            vdcnet_hal::clock::TICK_HZ_WITH_NIC_IRQS
        );
    }
    let now = clock.now_us();
    let opts = Options {
        seed,
        ping: cmdline.ping.clone(),
        stats_secs: cmdline.stats_secs,
        heap_bytes: Some(heap),
    };
    let mut appliance = match Appliance::new(&config, nics, opts, rng, now) {
        Ok(a) => a,
        Err(errors) => {
            for e in &errors {
                println!("config: {e}");
            }
            println!("vdcnet: fatal: cannot apply the config; not booting");
            exit::fail();
        }
    };
    let mut out = console::console();
    appliance.describe(&mut out);
    println!(
        "vdcnet: ready ({} link(s) up, {} ms after boot)",
        appliance.links(),
        clock.now_us() / 1000
    );
    defmt::info!("ready");

    loop {
        let now = clock.now_us();
        let busy = appliance.poll(now, clock.wall_ns().unwrap_or(0), &mut out);
        if !busy && !appliance.arm_interrupts() {
            // SAFETY: we own the PICs and the IDT handles every line.
            unsafe { vdcnet_hal::pic::unmask(irq_lines) };
            // Sleep until a NIC interrupts or the timer ticks.
            vdcnet_hal::cpu::wait_for_interrupt();
        }
    }
}

/// Every way to give the image an entropy source, for the messages that need one.
const ENTROPY_WAYS: &str = "-cpu max or -cpu host (RDRAND/RDSEED), -device virtio-rng-pci (pc, q35), -device virtio-rng-device (microvm), or on hardware a CPU with RDRAND";

/// Mixes every entropy source the machine has (RDSEED, RDRAND, `virtio_rng`) into one
/// generator and says which on the console; returns it and the seed for smoltcp and the
/// masquerade (drawn from it). Without any source: a fatal error if the config has a
/// WireGuard `[Interface]` (`needs_rng`), else a warning and a timer-jitter seed.
fn entropy(virtio_rng: Option<VirtioRng>, needs_rng: bool) -> (Option<MixedRng>, u64) {
    let mut sources = Rng::sources();
    if let Some(v) = virtio_rng {
        sources.push(Box::new(v));
    }
    let skipped = |s: &SourceStats| {
        if !s.seeded {
            let why = s.last_error.map_or("no bytes", |e| e.as_str());
            println!("vdcnet: warning: entropy source {} skipped: {why}", s.name);
        }
    };
    match MixedRng::new(sources) {
        Ok(mut rng) => {
            let mut names = alloc::string::String::new();
            for s in rng.sources() {
                skipped(&s);
                if s.seeded {
                    if !names.is_empty() {
                        names.push_str(" + ");
                    }
                    names.push_str(s.name);
                }
            }
            println!("vdcnet: entropy: {names} (mixed into ChaCha20)");
            let seed = rng.next_u64();
            (Some(rng), seed)
        }
        Err(e) => {
            for s in &e.tried {
                skipped(s);
            }
            if needs_rng {
                println!("vdcnet: fatal: no entropy source, and the WireGuard [Interface] needs one for its keys; give the machine one: {ENTROPY_WAYS}");
                exit::fail();
            }
            println!("vdcnet: warning: no entropy source: seeding TCP from timer jitter; a WireGuard [Interface] would be refused (give the machine one: {ENTROPY_WAYS})");
            (None, vdcnet_hal::rng::timer_jitter_seed())
        }
    }
}

/// Finds the NICs (virtio-net PCI functions in PCI order, or on machines without PCI
/// (microvm), the virtio-mmio devices) and the first virtio-rng device the same way.
fn probe_devices(
    rsdp: Option<u64>,
    mmio_irqs: &[(usize, u32)],
    tsc_hz: u64,
) -> (Vec<VirtioNic>, Option<VirtioRng>) {
    let mut nics = Vec::new();
    let mut rng = None;
    // SAFETY: `rsdp` was found and checksummed by `find_rsdp`; the ACPI tables are below
    // 4 GiB, identity-mapped; reading them has no side effects.
    let ecam = rsdp.and_then(|r| unsafe { acpi::find_ecam(r) });
    let cam = match ecam {
        // SAFETY: MCFG names this window as segment 0's ECAM; it is identity-mapped and
        // only this code drives PCI configuration.
        Some(e) => unsafe { Cam::ecam(e.base) },
        // SAFETY: the kernel owns the PCI configuration ports.
        None => Cam::Port(unsafe { PortCam::new() }),
    };
    if cam.present() {
        defmt::info!("PCI configuration through {=str}", cam.kind());
        // SAFETY: the clone is only used for reads of read-only registers (bus numbers,
        // interrupt line) between accesses through the root.
        let reader = unsafe { cam.unsafe_clone() };
        let mut root = PciRoot::new(cam);
        for nf in vdcnet_hal::pci::find_virtio_net(&mut root, &reader, MAX_NICS) {
            if let Err(e) = map_high_bars(&mut root, &nf) {
                println!("vdcnet: warning: virtio-net at {}: {e:?}", nf.function);
                continue;
            }
            match VirtioNic::new_pci(&mut root, &reader, &nf) {
                Ok(n) => nics.push(n),
                Err(e) => println!("vdcnet: warning: virtio-net at {}: {e:?}", nf.function),
            }
        }
        if let Some(f) = vdcnet_hal::pci::find_virtio(
            &mut root,
            &reader,
            virtio_drivers::transport::DeviceType::EntropySource,
            1,
        )
        .first()
        {
            // OVMF places 64-bit BARs above 4 GiB for this device too.
            if let Err(e) = map_high_bars(&mut root, f) {
                println!("vdcnet: warning: virtio-rng at {}: {e:?}", f.function);
            } else {
                match VirtioRng::new_pci(&mut root, f, tsc_hz) {
                    Ok(r) => rng = Some(r),
                    Err(e) => println!("vdcnet: warning: virtio-rng at {}: {e:?}", f.function),
                }
            }
        }
    } else {
        // SAFETY: no PCI host bridge: this is a microvm, whose virtio-mmio windows are
        // identity-mapped by boot and driven by nobody else.
        for r in unsafe { VirtioNic::probe_microvm(MAX_NICS, mmio_irqs, rsdp.is_some()) } {
            match r {
                Ok(n) => nics.push(n),
                Err(e) => println!("vdcnet: warning: virtio-mmio NIC: {e:?}"),
            }
        }
        // SAFETY: as above; the NICs took only network windows.
        match unsafe { VirtioRng::probe_microvm(tsc_hz) } {
            Some(Ok(r)) => rng = Some(r),
            Some(Err(e)) => println!("vdcnet: warning: virtio-mmio RNG: {e:?}"),
            None => {}
        }
    }
    for (i, n) in nics.iter().enumerate() {
        let m = n.mac_address();
        defmt::info!("nic{=usize}: {=[u8]:02x}", i, m[..]);
    }
    (nics, rng)
}

/// Identity-maps the memory BARs of the virtio function `nf` that the firmware placed above
/// 4 GiB (OVMF does, for 64-bit BARs), which the entry code's page tables do not cover.
fn map_high_bars<C: ConfigurationAccess>(
    root: &mut PciRoot<C>,
    nf: &vdcnet_hal::pci::VirtioFunction,
) -> Result<(), arch::MapError> {
    let Ok(bars) = root.bars(nf.function) else {
        // The transport reads the BARs again and reports what is wrong with them.
        return Ok(());
    };
    for (address, size) in bars
        .iter()
        .flatten()
        .filter_map(|b| b.memory_address_size())
    {
        if address.saturating_add(size) > 1 << 32 {
            // SAFETY: the range is a BAR of this PCI function: device memory, mapped
            // nowhere else; interrupts are off and only this code edits the page tables.
            unsafe { arch::map_identity(address, size)? };
            defmt::info!(
                "mapped BAR {=u64:#x} (+{=u64:#x}) above 4 GiB",
                address,
                size
            );
        }
    }
    Ok(())
}

/// Sends every NIC's interrupt to the CPU: 8259 lines are collected (the event loop
/// unmasks them before it sleeps), I/O APIC GSIs are routed to their own vectors. Returns
/// the 8259 lines and whether every NIC now interrupts.
fn route_nic_interrupts(nics: &[VirtioNic], rsdp: Option<u64>) -> (u16, bool) {
    let mut lines = 0u16;
    let mut all = !nics.is_empty();
    let lapic = vdcnet_hal::pic::lapic_base();
    // SAFETY: as in `probe_nics`.
    let ioapics = rsdp
        .map(|r| unsafe { acpi::find_ioapics(r) })
        .unwrap_or_default();
    if let Some(base) = lapic {
        // SAFETY: interrupts are off; `base` is the identity-mapped local APIC.
        unsafe { arch::set_lapic_base(base) };
    }
    for (i, n) in nics.iter().enumerate() {
        match (n.irq(), lapic) {
            (Some(Irq::Pic(l)), _) => lines |= 1 << l,
            (Some(Irq::Gsi(gsi)), Some(base)) if i < arch::NIC_VECTORS.len() => {
                let vector = arch::NIC_VECTORS.start + i as u8;
                // SAFETY: the I/O APICs come from the MADT and the local APIC from its
                // MSR, all identity-mapped; the IDT handles NIC_VECTORS with an EOI to
                // the local APIC; only this code programs these entries.
                if unsafe { vdcnet_hal::ioapic::route_edge(&ioapics, gsi, vector, base) } {
                    defmt::info!("nic{=usize}: GSI {=u32} -> vector {=u8:#x}", i, gsi, vector);
                } else {
                    all = false;
                }
            }
            _ => all = false,
        }
    }
    (lines, all)
}

/// Gives the heap the largest usable RAM region above the kernel, below 4 GiB (what boot
/// mapped). Returns its size in bytes.
fn init_heap(boot: &BootInfo) -> usize {
    // Linker-defined symbols: only their addresses are used.
    let (kstart, kend) = (
        &raw const __kernel_start as u64,
        &raw const __kernel_end as u64,
    );
    let mut best = (0u64, 0u64);
    for r in &boot.memory {
        let start = r.start.max(0x1000);
        let end = r.end.min(1 << 32);
        // Cut the kernel out of the region; keep the larger side.
        let (s, e) = if start < kend && end > kstart {
            if end - kend >= kstart.saturating_sub(start) {
                (kend, end)
            } else {
                (start, kstart)
            }
        } else {
            (start, end)
        };
        if e > s && e - s > best.1 - best.0 {
            best = (s, e);
        }
    }
    let start = (best.0 + 0xfff) & !0xfff;
    let size = best.1.saturating_sub(start) as usize;
    if size < 1 << 20 {
        println!("vdcnet: fatal: less than 1 MiB of usable RAM for the heap");
        exit::fail();
    }
    // SAFETY: the region is usable RAM per the loader's map, identity-mapped, not the
    // kernel, and the boot information we needed from it has been copied.
    unsafe { HEAP.lock().init(start as usize as *mut u8, size) };
    size
}

#[no_mangle]
extern "C" fn exception_entry(frame: &arch::ExceptionFrame) -> ! {
    let cr2 = if frame.vector == 14 { arch::cr2() } else { 0 };
    println!(
        "vdcnet: fault: vector={} ({}) error=0x{:x} rip=0x{:x} cr2=0x{:x} rsp=0x{:x}",
        frame.vector,
        arch::exception_name(frame.vector),
        frame.error_code,
        frame.rip,
        cr2,
        frame.rsp
    );
    exit::fail();
}

#[panic_handler]
fn panic(info: &core::panic::PanicInfo) -> ! {
    vdcnet_hal::cpu::disable_interrupts();
    println!("vdcnet: panic: {info}");
    exit::fail();
}
