//! `vdcnet`: build the appliance image, run it, demo it, test it, benchmark it.
//!
//! Usually run through the cargo alias: `cargo vdcnet <command>`.

#![forbid(unsafe_code)]

mod cmd;

use std::process::ExitCode;

const USAGE: &str = "\
usage: vdcnet <command> [options]

commands:
  build                 build the appliance image; prints its path as the last line
  run [options]         boot one appliance: console on stdout, decoded defmt log on stderr
      --config FILE       node config (default: the image's built-in default)
      --machine M         pc (default), q35 or microvm
      --mem MIB           guest memory (default 64)
      --nic user|tap      add a NIC (repeatable; default: one user NIC). user forwards
                          TCP echo (port 7) from a free 127.0.0.1 port; tap puts the far
                          end in a new network namespace holding 10.0.2.2/24, fec0::2/64
      --append STR        extra kernel command line (e.g. vdcnet.fault=page)
      --cpu MODEL         QEMU CPU model (default max: RDRAND; qemu64 has no RDRAND)
      --virtio-rng        add a virtio-rng device (entropy without RDRAND/RDSEED)
  demo                  two appliances on a shared wire, a host forward and a namespace:
                        shows pings and TCP echo crossing them, step by step
  mesh --nodes N --out DIR   write the node files of an N-node WireGuard full mesh: each
                          node has an underlay link (NIC 0) and a segment link (NIC 1)
      --v4 A.B.0.0        the VDC's IPv4 /16 (default 10.20.0.0); node i's segment is
                          A.B.i.0/24, the node is A.B.i.1
      --v6 P::|none       the VDC's ULA /48 (default fd20:ab:cd::); node i's segment is
                          P:i::/64, the node is P:i::1
      --underlay A.B.C.0  the WAN /24 (default 192.168.100.0); node i is A.B.C.i
      --port P            WireGuard port (default 51820)
      --keepalive S       PersistentKeepalive on every peer (default 25; 0 = off)
  lab FILE              boot a topology file (see qemu/labs/mesh3.lab): one underlay wire,
                        every node's segment on a tap into its own workload namespace,
                        configured by DHCP and SLAAC; prints addresses, Ctrl-C stops it
  test [ARGS...]        install what the tests need (as root, apt-get), then run
                        `cargo test --workspace --release --no-fail-fast [ARGS...]`
  bench [options]       boot time vs a minimal PVH kernel, image size, idle CPU, memory floor
      --baseline ELF      the minimal PVH kernel that exits at once (qemu/bench/boot.sh builds it)
      --idle-baseline ELF a minimal PVH kernel that halts forever (idle CPU peer)
      --runs N            boots per figure (default 5)

environment: VDCNET_ACCEL=kvm (default tcg), VDCNET_IMAGE=ELF (skip the build),
             VDCNET_ECHO=1 (copy every VM's console to stderr), VDCNET_KEEP=1 (keep VM dirs)";

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(command) = args.next() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let rest: Vec<String> = args.collect();
    let result = match command.as_str() {
        "build" => cmd::build::main(&rest),
        "run" => cmd::run::main(&rest),
        "demo" => cmd::demo::main(&rest),
        "test" => cmd::test::main(&rest),
        "bench" => cmd::bench::main(&rest),
        "mesh" => cmd::mesh::main(&rest),
        "lab" => cmd::lab::main(&rest),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(cmd::UsageError(format!("unknown command `{other}`")).into()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            if e.downcast_ref::<cmd::UsageError>().is_some() {
                eprintln!("vdcnet: {e}\n\n{USAGE}");
                ExitCode::from(2)
            } else {
                eprintln!("vdcnet: {e}");
                ExitCode::FAILURE
            }
        }
    }
}
