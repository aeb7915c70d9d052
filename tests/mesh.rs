//! `vdcnet mesh` configs booted for real: three appliances on one underlay wire form a
//! WireGuard full mesh, every node reaches every other node's segment address (v4 and v6),
//! and the underlay carries only WireGuard. Each node's NIC 0 is on the underlay wire and
//! NIC 1 (its segment link) on a tap into a namespace of its own.

use vdcnet_qemu::mesh::MeshPlan;
use vdcnet_qemu::{Nic, Vm, Wire, READY};
use vdcnet_tests::{ok, require_root, TIMEOUT};

#[test]
fn three_node_mesh_from_generated_configs_reaches_every_overlay_address() {
    require_root("three_node_mesh_from_generated_configs_reaches_every_overlay_address");
    let plan = MeshPlan {
        nodes: 3,
        ..MeshPlan::default()
    };
    let nodes = plan.generate().expect("plan is valid");
    let wire = Wire::new("mesh");
    let dir = std::env::temp_dir().join(format!("vdcnet-mesh-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pcap = dir.join("underlay.pcap");
    ok(wire.capture_to(&pcap));
    let vms: Vec<Vm> = nodes
        .iter()
        .map(|n| {
            // Each node pings every other node's overlay v4 and v6 address.
            let targets: Vec<String> = nodes
                .iter()
                .filter(|m| m.name != n.name)
                .flat_map(|m| [m.overlay_v4.to_string(), m.overlay_v6.unwrap().to_string()])
                .collect();
            ok(Vm::builder(&n.name)
                .config(&n.config)
                .append(&format!("vdcnet.ping={}", targets.join(",")))
                .nic(Nic::wire(&wire))
                // The segment: a tap whose far end is an (unconfigured) namespace.
                .nic(Nic::tap_with(&[]))
                .spawn())
        })
        .collect();
    for (vm, n) in vms.iter().zip(&nodes) {
        let line = ok(vm.wait_for_line("vdcnet: wg0 ", TIMEOUT));
        assert!(line.contains(&n.public_key), "{line}");
        ok(vm.wait_for_line(READY, TIMEOUT));
    }
    for (vm, n) in vms.iter().zip(&nodes) {
        for m in nodes.iter().filter(|m| m.name != n.name) {
            for addr in [m.overlay_v4.to_string(), m.overlay_v6.unwrap().to_string()] {
                let line = ok(vm.wait_for_line(&format!("vdcnet: ping {addr} seq="), TIMEOUT));
                assert!(line.ends_with("reply"), "{} -> {addr}: {line}", n.name);
            }
        }
    }
    // The underlay saw only ARP, neighbour discovery and WireGuard: no ICMP echo payload
    // ("vdcnet ping") in clear anywhere in the capture.
    drop(vms);
    let bytes = std::fs::read(&pcap).unwrap();
    assert!(bytes.len() > 1000, "capture is nearly empty");
    let needle = b"vdcnet ping";
    assert!(
        !bytes.windows(needle.len()).any(|w| w == needle),
        "an inner ICMP payload crossed the underlay in clear"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
