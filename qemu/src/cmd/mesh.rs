//! `vdcnet mesh`: write the node files of an N-node full mesh (see `vdcnet_qemu::mesh`):
//! each node has an underlay link (NIC 0) and a segment link (NIC 1) for its workloads,
//! and a `[Routing]` section unless `--no-routing`; `--lease MAC,IPv4` puts the same
//! `StaticLease` into every node's segment (a VDC-wide static lease).

use super::{Args, CmdResult, UsageError};
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::ExitCode;
use vdcnet_qemu::mesh::{parse_lease, MeshPlan};
use vdcnet_qemu::Mac;

/// `vdcnet mesh --help`: the flags beyond the address plan's.
const HELP: &str = "\
vdcnet mesh --nodes N --out DIR [options]
  --v4 A.B.0.0 | --v6 P::|none | --underlay A.B.C.0 | --port P   the address plan
  --keepalive S          PersistentKeepalive towards nodes with an endpoint (default 25)
  --hidden 3,4           hidden nodes (behind a NAT): the others have no Endpoint for them
  --hidden-keepalive S   a hidden node's keepalive to the public nodes (default 25)
  --no-routing           leave out the [Routing] section (default: on, the VDC's /16, /48)
  --hello MS             the routing protocol's HelloInterval (50..=60000 ms)
  --lease MAC,IPv4       a VDC-wide static lease (repeatable, at most 64; or MAC=IPv4):
                         `StaticLease = MAC, IPv4` in every node's segment. The node whose
                         /24 holds the address leases it as usual, the others as a /32
                         with routes to themselves; the address lies in the VDC's /16,
                         is no node's .1 and no /24's network or broadcast address";

/// `3,4` or `node3, node4`: 1-based node numbers.
fn node_list(v: &str) -> Result<BTreeSet<usize>, UsageError> {
    v.split(',')
        .map(|item| {
            let item = item.trim();
            item.strip_prefix("node")
                .unwrap_or(item)
                .parse::<usize>()
                .map_err(|_| UsageError(format!("--hidden: `{item}` is not a node number")))
        })
        .collect()
}

pub fn main(args: &[String]) -> CmdResult {
    let mut plan = MeshPlan::default();
    let mut out: Option<PathBuf> = None;
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag() {
        match flag {
            "--nodes" => plan.nodes = a.parsed("--nodes")?,
            "--v4" => plan.v4 = a.parsed("--v4")?,
            "--v6" => {
                let v = a.value("--v6")?;
                plan.v6 = if v == "none" {
                    None
                } else {
                    Some(
                        v.parse()
                            .map_err(|e| UsageError(format!("--v6 {v}: {e}")))?,
                    )
                };
            }
            "--underlay" => plan.underlay = a.parsed("--underlay")?,
            "--port" => plan.port = a.parsed("--port")?,
            "--keepalive" => plan.keepalive = a.parsed("--keepalive")?,
            "--hidden" => plan.hidden = node_list(a.value("--hidden")?)?,
            "--hidden-keepalive" => plan.hidden_keepalive = a.parsed("--hidden-keepalive")?,
            "--no-routing" => plan.routing = false,
            "--hello" => plan.hello_ms = Some(a.parsed("--hello")?),
            "--lease" => {
                let v = a.value("--lease")?;
                let lease = parse_lease(v).map_err(|e| UsageError(format!("--lease {v}: {e}")))?;
                plan.leases.push(lease);
            }
            "--help" | "-h" => {
                println!("{HELP}");
                return Ok(ExitCode::SUCCESS);
            }
            "--out" => out = Some(PathBuf::from(a.value("--out")?)),
            other => return Err(UsageError(format!("unknown option `{other}`")).into()),
        }
    }
    let out = out.ok_or_else(|| UsageError("--out DIR is required".into()))?;
    let nodes = plan.generate().map_err(UsageError)?;
    std::fs::create_dir_all(&out)?;
    for n in &nodes {
        let path = out.join(format!("{}.conf", n.name));
        write_private(&path, &n.config)?;
        let seg6 = n.segment_v6.map(|a| format!(", {a}")).unwrap_or_default();
        let v6 = n.overlay_v6.map(|a| format!(", {a}")).unwrap_or_default();
        let hidden = if n.hidden { " hidden," } else { "" };
        println!(
            "{}:{hidden} underlay {} (nic 0), segment {}{seg6} (nic 1) at {}{v6}, key {} -> {}",
            n.name,
            n.underlay,
            n.segment_v4,
            n.overlay_v4,
            n.public_key,
            path.display()
        );
    }
    for &(mac, ip) in &plan.leases {
        let home = match plan.lease_home(ip) {
            Some(i) => format!("at home on node{i}, visiting on the others"),
            None => "in no node's segment: visiting on every node".into(),
        };
        println!("lease {} {ip}: {home}", Mac(mac));
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes a file only its owner can read: it holds a private key.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vdcnet_qemu::mesh::MAX_LEASES;

    #[test]
    fn hidden_takes_numbers_or_node_names() {
        assert_eq!(node_list("3,4").unwrap(), BTreeSet::from([3, 4]));
        assert_eq!(node_list("node2, 1").unwrap(), BTreeSet::from([1, 2]));
        assert!(node_list("3,x").is_err());
        assert!(node_list("").is_err());
    }

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn every_lease_flag_reaches_every_node_file() {
        let dir = std::env::temp_dir().join(format!("vdcnet-mesh-lease-{}", std::process::id()));
        let out = dir.to_str().unwrap();
        let r = main(&args(&[
            "--nodes",
            "2",
            "--lease",
            "52:54:00:aa:bb:01,10.20.1.10",
            "--lease",
            "52:54:00:aa:bb:02=10.20.2.20",
            "--out",
            out,
        ]));
        let files: Vec<String> = (1..=2)
            .map(|i| std::fs::read_to_string(dir.join(format!("node{i}.conf"))).unwrap())
            .collect();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(r.is_ok(), "{r:?}");
        for f in &files {
            assert!(
                f.contains(
                    "Role = segment\n\
                     StaticLease = 52:54:00:aa:bb:01, 10.20.1.10\n\
                     StaticLease = 52:54:00:aa:bb:02, 10.20.2.20\n"
                ),
                "{f}"
            );
        }
    }

    #[test]
    fn bad_leases_are_usage_errors_that_say_why() {
        let refused = |list: &[&str], what: &str| {
            let mut full = args(&["--nodes", "2", "--out", "/nonexistent/vdcnet-mesh"]);
            full.extend(args(list));
            let e = main(&full).expect_err(what).to_string();
            assert!(e.contains(what), "{e}");
        };
        refused(&["--lease"], "--lease needs a value");
        refused(
            &["--lease", "52:54:00:aa:bb:01"],
            "--lease 52:54:00:aa:bb:01: `52:54:00:aa:bb:01` is not a lease",
        );
        refused(
            &["--lease", "nope,10.20.1.10"],
            "`nope` is not a MAC address",
        );
        refused(
            &["--lease", "52:54:00:aa:bb:01,10.30.1.10"],
            "10.30.1.10 is outside the VDC's 10.20.0.0/16",
        );
        refused(
            &["--lease", "52:54:00:aa:bb:01,10.20.1.1"],
            "node1's own address",
        );
        refused(
            &[
                "--lease",
                "52:54:00:aa:bb:01,10.20.1.10",
                "--lease",
                "52:54:00:aa:bb:02,10.20.1.10",
            ],
            "already leased to 52:54:00:aa:bb:01",
        );
        refused(
            &["--lease", "52:54:00:aa:bb:01,10.20.1.10", "--no-routing"],
            "static leases need routing",
        );
        // The help text says 64.
        assert_eq!(MAX_LEASES, 64);
    }
}
