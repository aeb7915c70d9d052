//! `vdcnet mesh`: write the node files of an N-node full mesh (see `vdcnet_qemu::mesh`):
//! each node has an underlay link (NIC 0) and a segment link (NIC 1) for its workloads.

use super::{Args, CmdResult, UsageError};
use std::path::PathBuf;
use std::process::ExitCode;
use vdcnet_qemu::mesh::MeshPlan;

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
        println!(
            "{}: underlay {} (nic 0), segment {}{seg6} (nic 1) at {}{v6}, key {} -> {}",
            n.name,
            n.underlay,
            n.segment_v4,
            n.overlay_v4,
            n.public_key,
            path.display()
        );
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
