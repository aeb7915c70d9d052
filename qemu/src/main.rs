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
      --lease MAC,IPv4    a VDC-wide static lease: the same StaticLease in every node's
                          segment (repeatable); `vdcnet mesh --help` lists the rest
  iso [options]         make a hybrid image (GRUB for BIOS and UEFI) to boot as a CD or to
                        write to a USB stick or disk with dd; the node file sits in a FAT
                        partition (label VDCNET) that GRUB prefers, editable afterwards;
                        prints the image's path as the last line
      --config FILE       node file (default: the image's built-in default); checked first
      --out FILE          where to write the image (default vdcnet.iso)
      --append STR        kernel command line for GRUB's entry (repeatable)
      --timeout S         seconds GRUB's menu waits (default 0: boots at once)
      --update IMAGE      with --config: replace the node file in an image made by
                          `vdcnet iso`, or on a stick flashed with it (/dev/sdX)
  lab FILE              boot a topology file (see qemu/labs/mesh3.lab): one underlay wire,
                        every node's segment on a tap into its own workload namespace,
                        configured by DHCP and SLAAC; prints addresses, Ctrl-C stops it
  check FILE...         check node files with the image's parser and start-up checks:
                        every error as FILE:LINE: message (exit 1), else what the node
                        will do (links, tunnel with its public key, peers)
  keygen                print a fresh WireGuard key pair (PrivateKey = / PublicKey =)
      --public            read a private key on stdin, print its public key (wg pubkey)
  status URL            a wg show-like view of a running appliance from its metrics
                        (URL like http://10.20.1.1:9100/metrics; port and path optional)
  test [ARGS...]        install what the tests need (as root, apt-get), then run
                        `cargo test --workspace --release --no-fail-fast [ARGS...]`
  bench [options]       boot time vs a minimal PVH kernel, image size, idle CPU, memory floor
      --baseline ELF      the minimal PVH kernel that exits at once (qemu/bench/boot.sh builds it)
      --idle-baseline ELF a minimal PVH kernel that halts forever (idle CPU peer)
      --runs N            boots per figure (default 5)
  bench-routing [--runs N]  outage after a cut path and idle routing traffic (root)
  bench-mycelium [--seconds N]  iperf3 and ping over Mycelium: behind the appliance vs
                        myceliumd on both ends (root)

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
        "bench-routing" => cmd::bench_routing::main(&rest),
        "bench-mycelium" => cmd::bench_mycelium::main(&rest),
        "mesh" => cmd::mesh::main(&rest),
        "lab" => cmd::lab::main(&rest),
        "check" => cmd::check::main(&rest),
        "keygen" => cmd::keygen::main(&rest),
        "iso" => cmd::iso::main(&rest),
        "status" => cmd::status::main(&rest),
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
