//! A lab: an N-node vdcnet mesh with real workloads, from a topology file or from Rust.
//!
//! [`Lab::start`] generates the nodes' configs with [`MeshPlan`], joins every node's NIC 0
//! on one underlay [`Wire`] (optionally captured to a pcap file, each node's cable with its
//! own [`LinkPolicy`]) and plugs NIC 1, the node's segment, into a tap whose far end is the
//! node's *workload namespace*: a fresh network namespace where the interface
//! [`WORKLOAD_IF`] is configured only the way a workload would configure itself. Once the
//! appliance is ready, the lab runs `busybox udhcpc -O staticroutes` there (with a small
//! script of its own that applies address, router or classless static routes, and MTU
//! with `ip`; see [`write_dhcp_script`]) and waits for SLAAC to give the interface a
//! global IPv6 address from the node's router advertisements.
//!
//! A node keeps its namespace for the lab's lifetime: [`Lab::restart`] kills and boots the
//! VM again with the same config and MAC addresses, and the new tap comes back into the same
//! namespace under the same name and MAC address, where DHCP and SLAAC run again.
//!
//! Everything here needs root (namespaces, taps) and `busybox` on the path.
//!
//! # Topology files
//!
//! An INI file: `[Section]` headers, `Key = Value` lines, comments from `#` or `;` to the
//! end of the line. Keys and section kinds are case-insensitive. Several pairs may share a
//! line, separated by commas (`Nodes = 3, V4 = 10.20.0.0`), except `Append` and `Lease`,
//! which take the rest of their line. Every mistake is reported with its line number; all
//! of them at once.
//!
//! ```text
//! [Lab]                      # required, once
//! Nodes = 3                  # 2..=254, required
//! V4 = 10.20.0.0             # the VDC's IPv4 /16: node i's segment is 10.20.i.0/24
//! V6 = fd20:ab:cd::          # the VDC's IPv6 /48 (or `none`): node i's is P:i::/64
//! Underlay = 192.168.100.0   # the underlay /24: node i is 192.168.100.i
//! Port = 51820               # WireGuard port
//! Keepalive = 25             # PersistentKeepalive (0 = off)
//! Hidden = 3, 4              # hidden nodes: no one has their endpoint (takes its line)
//! HiddenKeepalive = 25       # their keepalive to the public nodes (below the NAT's 30 s)
//! Routing = yes              # a [Routing] section in every node (default yes)
//! HelloInterval = 400ms      # its HelloInterval (default: the protocol's)
//! Capture = /tmp/lab.pcap    # write every underlay frame to this pcap file
//! Lease = 52:54:00:aa:bb:01, 10.20.1.10   # a VDC-wide static lease (repeatable, takes
//!                            #   its line; or MAC=IPv4): the same StaticLease in every
//!                            #   node's segment, so a workload with that MAC gets the
//!                            #   address behind any node (elsewhere as a /32)
//!
//! [Underlay node2]           # node2's cable to the underlay switch; `[Underlay]` alone
//! Delay = 20ms               #   means every node. Durations: us, ms, s (bare = ms)
//! Jitter = 5ms               # extra uniform random delay, never reorders
//! Drop = 1%                  # loss probability: percent or a fraction (0.01)
//! Reorder = 0%               # probability of holding a frame behind the next one
//! Cut = no                   # yes cuts the cable
//! Seed = 1                   # the cable's PRNG seed
//! NAT = yes                  # the switch filters like a NAT in front of the node
//!                            #   (default: yes for hidden nodes, no for the others)
//!
//! [Path node1 node2]         # the path between two nodes, both ways, on top of their
//! Delay = 80ms               #   cables: the same keys as [Underlay] but NAT
//! Cut = no
//!
//! [Workload node1]           # node1's workload namespace; `[Workload]` alone: every node
//! MAC = 52:54:00:aa:bb:01    # its interface's MAC (default 52:54:00:57:00:<i>)
//! StaticLease = 10.20.1.10   # the node's DHCP server gives that MAC this address
//! DHCP = yes                 # run udhcpc (default yes)
//! SLAAC = yes                # wait for a global IPv6 address (default yes if V6)
//!
//! [Node node3]               # the VM itself; `[Node]` alone: every node
//! Append = vdcnet.ping=10.20.1.1   # extra kernel command line
//! Memory = 64                # MiB
//! Internet = yes             # a third NIC on QEMU's user-mode network (10.0.2.15/24,
//!                            #   gateway 10.0.2.2) with `Egress = nat`: the node's
//!                            #   workload reaches the host and beyond, masqueraded
//! ```
//!
//! Nodes are named `node1`..`nodeN` (or just `1`..`N`) in files; in the Rust API they are
//! indexed from 0 (`lab.vm(0)` is `node1`). Sections apply in file order, so a named
//! section after an unnamed one of its kind overrides it. `[Node node3]` also takes
//! `Hidden = yes`.
//!
//! A `[Lab] Lease` ([`Topology::lease`], [`MeshPlan::leases`]) must not contradict a
//! `[Workload] StaticLease`: the same address for another MAC, or another address for the
//! workload's MAC, is an error; the very same pair is written once.
//!
//! # Hidden nodes and NAT
//!
//! A hidden node ([`MeshPlan::hidden`]) is one no other node has an endpoint for; in the
//! lab it also sits behind a NAT by default: the switch drops unicast IP to it unless it
//! belongs to a flow the node started (replies to its handshakes and keepalives, within
//! 30 s of its last outbound packet), counted as [`PortStats::dropped_nat`]. The filter
//! rewrites no address (the node keeps its underlay address), which is all WireGuard needs
//! to see a NAT: the others cannot start a handshake to the node, and answer it only on
//! the flows it keeps open.
//!
//! ```no_run
//! use vdcnet_qemu::lab::{Lab, Topology};
//! use vdcnet_qemu::LinkPolicy;
//! use std::time::Duration;
//!
//! let slow = LinkPolicy {
//!     delay: Duration::from_millis(20),
//!     ..LinkPolicy::default()
//! };
//! // node2's cable is slow, node1 and node3 cannot talk directly, node3 is hidden.
//! let topo = Topology::new(3)
//!     .underlay(1, slow)
//!     .pair(0, 2, LinkPolicy::cut())
//!     .hidden(2);
//! let lab = Lab::start(&topo)?;
//! let to = lab.workload_v4(1).unwrap();
//! lab.workload(0).ping(to.into(), Duration::from_secs(10))?;
//! # Ok::<(), vdcnet_qemu::Error>(())
//! ```

use crate::error::{Error, ErrorKind, Result};
use crate::host::{self, TempDir};
use crate::mesh::{parse_lease, MeshNode, MeshPlan, MAX_LEASES, MAX_NODES};
use crate::netns::Netns;
use crate::nic::{Mac, Nic};
use crate::vm::Vm;
use crate::wire::{nat::FLOW_TIMEOUT, LinkPolicy, PortStats, Wire};
use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The workload's interface name inside its namespace.
pub const WORKLOAD_IF: &str = "eth0";

/// How long the lab waits for SLAAC to give a workload a global address.
const SLAAC_TIMEOUT: Duration = Duration::from_secs(30);

/// What a node's workload namespace does to configure itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadSpec {
    /// The interface's MAC address (default `52:54:00:57:00:<i>`, `i` 1-based).
    pub mac: Option<Mac>,
    /// An address the node's DHCP server reserves for this MAC (a `StaticLease`); the lab
    /// checks that DHCP hands out exactly this one (as it does for a VDC-wide lease of the
    /// MAC, [`Topology::lease`]).
    pub static_v4: Option<Ipv4Addr>,
    /// Run the DHCP client.
    pub dhcp: bool,
    /// Wait for a global IPv6 address by SLAAC (ignored if the plan has no IPv6).
    pub slaac: bool,
}

impl Default for WorkloadSpec {
    fn default() -> Self {
        WorkloadSpec {
            mac: None,
            static_v4: None,
            dhcp: true,
            slaac: true,
        }
    }
}

/// The `[Link]` a node with `Internet = yes` gets for its third NIC: QEMU's user-mode
/// network (the host is 10.0.2.2), masquerading its segment.
pub const INTERNET_LINK: &str = "
# The lab's way out: QEMU's user-mode network, masqueraded.
[Link]
Address = 10.0.2.15/24
Gateway = 10.0.2.2
Egress = nat
";

/// One node of a topology.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeSpec {
    /// Its cable to the underlay switch.
    pub underlay: LinkPolicy,
    /// Its workload namespace.
    pub workload: WorkloadSpec,
    /// Extra kernel command line.
    pub append: String,
    /// Guest memory in MiB.
    pub memory_mib: u32,
    /// A third NIC on QEMU's user-mode network, an underlay link with `Egress = nat`.
    pub internet: bool,
    /// Behind a NAT on the underlay switch (`None`: if and only if the node is hidden).
    pub nat: Option<bool>,
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            underlay: LinkPolicy::default(),
            workload: WorkloadSpec::default(),
            append: String::new(),
            memory_mib: 64,
            internet: false,
            nat: None,
        }
    }
}

/// Edits a node's generated config before it boots: `(index, text) -> text`.
pub type ConfigEdit = Arc<dyn Fn(usize, &str) -> String + Send + Sync>;

/// What a lab is made of: a mesh plan, a capture path and one [`NodeSpec`] per node.
#[derive(Clone)]
pub struct Topology {
    /// Node count, address plan, WireGuard port and keepalive.
    pub plan: MeshPlan,
    /// Where the underlay wire's pcap goes, if anywhere.
    pub capture: Option<PathBuf>,
    /// One per node, `nodes[0]` is `node1`; always `plan.nodes` long once built.
    pub nodes: Vec<NodeSpec>,
    /// Policies of the paths between two nodes (0-based, the smaller index first), on top
    /// of both nodes' cables.
    pub pairs: BTreeMap<(usize, usize), LinkPolicy>,
    /// Applied to every generated config before boot (extra keys, experiments).
    pub edit_config: Option<ConfigEdit>,
}

impl fmt::Debug for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Topology")
            .field("plan", &self.plan)
            .field("capture", &self.capture)
            .field("nodes", &self.nodes)
            .field("pairs", &self.pairs)
            .field("edit_config", &self.edit_config.is_some())
            .finish()
    }
}

/// A mistake in a topology file (line 0: the topology as a whole).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

impl Topology {
    /// `nodes` nodes on the default plan ([`MeshPlan::default`]), clean cables, workloads
    /// configured by DHCP and SLAAC.
    pub fn new(nodes: usize) -> Topology {
        Topology {
            plan: MeshPlan {
                nodes,
                ..MeshPlan::default()
            },
            capture: None,
            nodes: vec![NodeSpec::default(); nodes],
            pairs: BTreeMap::new(),
            edit_config: None,
        }
    }

    /// Sets the mesh plan (its node count wins: node specs are added or removed).
    pub fn plan(mut self, plan: MeshPlan) -> Topology {
        self.nodes.resize(plan.nodes, NodeSpec::default());
        self.plan = plan;
        self
    }

    /// Captures the underlay to a pcap file.
    pub fn capture(mut self, path: &Path) -> Topology {
        self.capture = Some(path.to_path_buf());
        self
    }

    /// Node `i`'s (0-based) underlay cable.
    pub fn underlay(mut self, i: usize, policy: LinkPolicy) -> Topology {
        self.nodes[i].underlay = policy;
        self
    }

    /// The path between nodes `i` and `j` (0-based, either order), both ways.
    pub fn pair(mut self, i: usize, j: usize, policy: LinkPolicy) -> Topology {
        self.pairs.insert((i.min(j), i.max(j)), policy);
        self
    }

    /// Makes node `i` (0-based) hidden: the other nodes get no endpoint for it, and it sits
    /// behind a NAT unless [`NodeSpec::nat`] says otherwise.
    pub fn hidden(mut self, i: usize) -> Topology {
        self.plan.hidden.insert(i + 1);
        self
    }

    /// Puts node `i` behind a NAT on the underlay switch (hidden or not).
    pub fn behind_nat(mut self, i: usize) -> Topology {
        self.nodes[i].nat = Some(true);
        self
    }

    /// Whether node `i` sits behind a NAT: as its spec says, else if it is hidden.
    pub fn is_behind_nat(&self, i: usize) -> bool {
        self.nodes[i]
            .nat
            .unwrap_or_else(|| self.plan.is_hidden(i + 1))
    }

    /// Node `i`'s workload.
    pub fn workload(mut self, i: usize, spec: WorkloadSpec) -> Topology {
        self.nodes[i].workload = spec;
        self
    }

    /// Node `i`'s workload gets `addr` from the node's DHCP server (a `StaticLease` for
    /// its MAC), so configs can name it before the lab boots.
    pub fn static_v4(mut self, i: usize, addr: Ipv4Addr) -> Topology {
        self.nodes[i].workload.static_v4 = Some(addr);
        self
    }

    /// A VDC-wide static lease: every node's segment gets `StaticLease = mac, ip` (see
    /// [`MeshPlan::leases`]). A workload whose MAC is `mac` ([`WorkloadSpec::mac`]) gets
    /// `ip` from whichever node it sits behind, and the lab checks that it does.
    pub fn lease(mut self, mac: Mac, ip: Ipv4Addr) -> Topology {
        self.plan.leases.push((mac.0, ip));
        self
    }

    /// The address DHCP must give node `i`'s workload, if any: its own static lease, else
    /// a VDC-wide lease of its MAC.
    pub fn expected_v4(&self, i: usize) -> Option<Ipv4Addr> {
        let mac = workload_mac(self, i);
        self.nodes[i]
            .workload
            .static_v4
            .or_else(|| self.plan.leases.iter().find(|l| l.0 == mac.0).map(|l| l.1))
    }

    /// Extra kernel command line for node `i`.
    pub fn append(mut self, i: usize, args: &str) -> Topology {
        self.nodes[i].append = args.to_string();
        self
    }

    /// Gives node `i` a way out: a third NIC on QEMU's user-mode network, configured as an
    /// underlay link with `Egress = nat` (see [`INTERNET_LINK`]).
    pub fn internet(mut self, i: usize) -> Topology {
        self.nodes[i].internet = true;
        self
    }

    /// Edits every generated config before boot.
    pub fn edit_config(
        mut self,
        f: impl Fn(usize, &str) -> String + Send + Sync + 'static,
    ) -> Topology {
        self.edit_config = Some(Arc::new(f));
        self
    }

    /// Reads a topology file (see the module doc); every mistake, with its line number.
    pub fn parse(text: &str) -> std::result::Result<Topology, Vec<ParseError>> {
        parse(text)
    }

    /// Reads a topology file from disk; the error lists every mistake as `FILE:LINE: ...`.
    pub fn load(path: &Path) -> Result<Topology> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format_args!("reading {}", path.display()), e))?;
        Topology::parse(&text).map_err(|errors| {
            let lines: Vec<String> = errors
                .iter()
                .map(|e| format!("{}:{}: {}", path.display(), e.line, e.message))
                .collect();
            Error::new(ErrorKind::Spawn, lines.join("\n"))
        })
    }

    /// What is wrong with this topology as a whole (line 0).
    pub fn check(&self) -> Vec<ParseError> {
        let mut errors = Vec::new();
        let mut err = |message: String| errors.push(ParseError { line: 0, message });
        if !(2..=MAX_NODES).contains(&self.plan.nodes) {
            err(format!(
                "a lab has 2..={MAX_NODES} nodes, not {}",
                self.plan.nodes
            ));
            return errors;
        }
        if self.nodes.len() != self.plan.nodes {
            err(format!(
                "{} node specs for {} nodes",
                self.nodes.len(),
                self.plan.nodes
            ));
            return errors;
        }
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(v4) = n.workload.static_v4 {
                let o = self.plan.v4.octets();
                let net = Ipv4Addr::new(o[0], o[1], (i + 1) as u8, 0);
                let last = v4.octets()[3];
                if v4.octets()[..3] != net.octets()[..3] || last == 0 || last == 1 || last == 255 {
                    err(format!(
                        "node{}: static lease {v4} is not a host address of {net}/24 \
                         other than the node's own .1",
                        i + 1
                    ));
                }
                let mac = workload_mac(self, i);
                let mut same = false;
                for &(m, ip) in &self.plan.leases {
                    if ip == v4 && m != mac.0 {
                        err(format!(
                            "node{}: the workload's static lease {v4} for {mac} is the VDC \
                             lease of {}",
                            i + 1,
                            Mac(m)
                        ));
                    } else if m == mac.0 && ip != v4 {
                        err(format!(
                            "node{}: the workload {mac} has the static lease {v4}, but the \
                             VDC lease gives it {ip}",
                            i + 1
                        ));
                    }
                    same |= (m, ip) == (mac.0, v4);
                }
                let count = self.plan.leases.len() + usize::from(!same);
                if !self.plan.leases.is_empty() && count > MAX_LEASES {
                    err(format!(
                        "node{}: {count} static leases in its segment (the VDC's and its \
                         workload's): at most {MAX_LEASES}",
                        i + 1
                    ));
                }
            }
            for (what, p) in [("drop", n.underlay.drop), ("reorder", n.underlay.reorder)] {
                if !(0.0..=1.0).contains(&p) {
                    err(format!(
                        "node{}: {what} probability {p} is not in 0..=1",
                        i + 1
                    ));
                }
            }
            let keepalive = Duration::from_secs(self.plan.hidden_keepalive.into());
            if self.plan.is_hidden(i + 1) && self.is_behind_nat(i) && keepalive >= FLOW_TIMEOUT {
                err(format!(
                    "node{} is hidden behind the lab's NAT, which forgets a flow after \
                     {FLOW_TIMEOUT:?}: its keepalive of {keepalive:?} would lose the mapping",
                    i + 1
                ));
            }
        }
        for (&(i, j), p) in &self.pairs {
            let n = self.plan.nodes;
            if i == j || i >= n || j >= n {
                err(format!(
                    "path node{} node{}: needs two different nodes of node1..node{n}",
                    i + 1,
                    j + 1
                ));
            }
            for (what, x) in [("drop", p.drop), ("reorder", p.reorder)] {
                if !(0.0..=1.0).contains(&x) {
                    err(format!(
                        "path node{} node{}: {what} probability {x} is not in 0..=1",
                        i + 1,
                        j + 1
                    ));
                }
            }
        }
        if let Err(m) = self.plan.check() {
            err(m);
        }
        errors
    }
}

// ---------------------------------------------------------------------------------------
// Topology file parsing

struct Entry {
    line: usize,
    key: String,
    value: String,
}

struct Section {
    line: usize,
    kind: String,
    /// The words after the kind: one node, or two for a path.
    names: Vec<String>,
    entries: Vec<Entry>,
}

fn strip_comment(line: &str) -> &str {
    let end = line.find(['#', ';']).unwrap_or(line.len());
    line[..end].trim()
}

/// Splits the file into sections; reports lines outside any section and lines that are
/// not `Key = Value`.
fn sections(text: &str, errors: &mut Vec<ParseError>) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = n + 1;
        let s = strip_comment(raw);
        if s.is_empty() {
            continue;
        }
        if let Some(inner) = s.strip_prefix('[') {
            let Some(inner) = inner.strip_suffix(']') else {
                errors.push(err(line, format!("unclosed section header `{s}`")));
                continue;
            };
            let mut words = inner.split_whitespace();
            let kind = words.next().unwrap_or("").to_ascii_lowercase();
            let names: Vec<String> = words.map(str::to_string).collect();
            let most = if kind == "path" { 2 } else { 1 };
            if let Some(extra) = names.get(most) {
                errors.push(err(line, format!("unexpected `{extra}` in section header")));
            }
            out.push(Section {
                line,
                kind,
                names,
                entries: Vec::new(),
            });
            continue;
        }
        let Some(section) = out.last_mut() else {
            errors.push(err(line, "a key before any [Section]".into()));
            continue;
        };
        let Some((key, _)) = s.split_once('=') else {
            errors.push(err(line, format!("expected `Key = Value`, found `{s}`")));
            continue;
        };
        let key = key.trim();
        let whole_line = ["append", "lease"];
        let pieces: Vec<&str> = if whole_line.iter().any(|k| key.eq_ignore_ascii_case(k)) {
            vec![s]
        } else {
            let pieces: Vec<&str> = s.split(',').collect();
            if pieces.iter().all(|p| p.contains('=')) {
                pieces
            } else {
                vec![s]
            }
        };
        for piece in pieces {
            let (k, v) = piece.split_once('=').expect("checked above");
            if k.trim().is_empty() {
                errors.push(err(
                    line,
                    format!("no key before `=` in `{}`", piece.trim()),
                ));
                continue;
            }
            section.entries.push(Entry {
                line,
                key: k.trim().to_ascii_lowercase(),
                value: v.trim().to_string(),
            });
        }
    }
    out
}

fn err(line: usize, message: String) -> ParseError {
    ParseError { line, message }
}

/// `20ms`, `1.5s`, `250us`, `0`; a bare number is milliseconds.
fn parse_duration(v: &str) -> std::result::Result<Duration, String> {
    let v = v.trim();
    let (num, scale) = if let Some(n) = v.strip_suffix("us") {
        (n, 1e-6)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1.0)
    } else {
        (v, 1e-3)
    };
    let x: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a duration (e.g. 20ms, 1s, 250us)"))?;
    if !x.is_finite() || x < 0.0 || x * scale > 3600.0 {
        return Err(format!("`{v}` is not a duration between 0 and 1 hour"));
    }
    Ok(Duration::from_secs_f64(x * scale))
}

/// `1%`, `0.5 %`, `0.01`: a probability in 0..=1.
fn parse_probability(v: &str) -> std::result::Result<f64, String> {
    let v = v.trim();
    let p = match v.strip_suffix('%') {
        Some(n) => n.trim().parse::<f64>().map(|x| x / 100.0),
        None => v.parse::<f64>(),
    }
    .map_err(|_| format!("`{v}` is not a probability (e.g. 1% or 0.01)"))?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(format!("`{v}` is not between 0% and 100%"))
    }
}

fn parse_bool(v: &str) -> std::result::Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Ok(true),
        "no" | "false" | "off" | "0" => Ok(false),
        _ => Err(format!("`{v}` is not yes or no")),
    }
}

fn parse_mac(v: &str) -> std::result::Result<Mac, String> {
    let parts: Vec<&str> = v.trim().split(':').collect();
    let bad = || format!("`{v}` is not a MAC address (e.g. 52:54:00:aa:bb:01)");
    if parts.len() != 6 {
        return Err(bad());
    }
    let mut mac = [0u8; 6];
    for (b, p) in mac.iter_mut().zip(parts) {
        if p.len() != 2 {
            return Err(bad());
        }
        *b = u8::from_str_radix(p, 16).map_err(|_| bad())?;
    }
    if mac[0] & 1 == 1 {
        return Err(format!("`{v}` is a group address, not a NIC's"));
    }
    Ok(Mac(mac))
}

fn parse_value<T: std::str::FromStr>(v: &str, what: &str) -> std::result::Result<T, String> {
    v.trim().parse().map_err(|_| format!("`{v}` is not {what}"))
}

/// `node3` or `3` → index 2, if within `nodes`.
fn node_index(name: &str, nodes: usize) -> std::result::Result<usize, String> {
    let digits = name
        .strip_prefix("node")
        .or_else(|| name.strip_prefix("Node"))
        .unwrap_or(name);
    match digits.parse::<usize>() {
        Ok(n) if (1..=nodes).contains(&n) => Ok(n - 1),
        Ok(n) => Err(format!(
            "node{n} does not exist: the lab has node1..node{nodes}"
        )),
        Err(_) => Err(format!("`{name}` is not a node (node1..node{nodes})")),
    }
}

fn parse(text: &str) -> std::result::Result<Topology, Vec<ParseError>> {
    let mut errors = Vec::new();
    let sections = sections(text, &mut errors);
    let labs: Vec<&Section> = sections.iter().filter(|s| s.kind == "lab").collect();
    let mut topo = Topology::new(0);
    match labs.as_slice() {
        [] => errors.push(err(
            0,
            "no [Lab] section (it gives at least `Nodes = N`)".into(),
        )),
        [lab, rest @ ..] => {
            for dup in rest {
                errors.push(err(dup.line, "a second [Lab] section".into()));
            }
            if let Some(node) = lab.names.first() {
                errors.push(err(
                    lab.line,
                    format!("[Lab] takes no name, found `{node}`"),
                ));
            }
            let mut hidden_lines = Vec::new();
            let mut lease_lines = Vec::new();
            let mut nodes = None;
            let nodes_given = lab.entries.iter().any(|e| e.key == "nodes");
            for e in &lab.entries {
                let r: std::result::Result<(), String> = (|| {
                    match e.key.as_str() {
                        "nodes" => {
                            let n: usize = parse_value(&e.value, "a node count")?;
                            if !(2..=MAX_NODES).contains(&n) {
                                return Err(format!("a lab has 2..={MAX_NODES} nodes, not {n}"));
                            }
                            nodes = Some(n);
                        }
                        "v4" => topo.plan.v4 = parse_value(&e.value, "an IPv4 address")?,
                        "v6" => {
                            topo.plan.v6 = if e.value.eq_ignore_ascii_case("none") {
                                None
                            } else {
                                Some(parse_value(&e.value, "an IPv6 prefix or `none`")?)
                            }
                        }
                        "underlay" => {
                            topo.plan.underlay = parse_value(&e.value, "an IPv4 address")?
                        }
                        "port" => {
                            let p: u16 = parse_value(&e.value, "a UDP port")?;
                            if p == 0 {
                                return Err("the WireGuard port must not be 0".into());
                            }
                            topo.plan.port = p;
                        }
                        "keepalive" => {
                            topo.plan.keepalive = parse_value(&e.value, "a number of seconds")?
                        }
                        "hidden" => {
                            for item in e.value.split(',') {
                                let item = item.trim();
                                if item.is_empty() {
                                    return Err("an empty item in the Hidden list".into());
                                }
                                hidden_lines.push((e.line, item.to_string()));
                            }
                        }
                        "hiddenkeepalive" => {
                            let k: u16 = parse_value(&e.value, "a number of seconds")?;
                            if k == 0 {
                                return Err("HiddenKeepalive must not be 0: it holds the \
                                            hidden nodes' NAT mappings open"
                                    .into());
                            }
                            topo.plan.hidden_keepalive = k;
                        }
                        "routing" => topo.plan.routing = parse_bool(&e.value)?,
                        "hellointerval" => {
                            let d = parse_duration(&e.value)?;
                            let ms = u16::try_from(d.as_millis()).unwrap_or(u16::MAX);
                            let range = vdcnet_appliance::config::HELLO_INTERVAL_MS;
                            if !range.contains(&ms) || d.subsec_micros() % 1000 != 0 {
                                return Err(format!(
                                    "HelloInterval = {}: expected whole milliseconds in \
                                     {}..={} ms",
                                    e.value,
                                    range.start(),
                                    range.end()
                                ));
                            }
                            topo.plan.hello_ms = Some(ms);
                        }
                        "lease" => lease_lines.push((e.line, parse_lease(&e.value)?)),
                        "capture" => {
                            if e.value.is_empty() {
                                return Err("Capture needs a file path".into());
                            }
                            topo.capture = Some(PathBuf::from(&e.value));
                        }
                        other => return Err(format!("unknown key `{other}` in [Lab]")),
                    }
                    Ok(())
                })();
                if let Err(m) = r {
                    errors.push(err(e.line, m));
                }
            }
            match nodes {
                Some(n) => {
                    topo = topo.clone().plan(MeshPlan {
                        nodes: n,
                        ..topo.plan
                    })
                }
                None if !nodes_given => {
                    errors.push(err(lab.line, "[Lab] needs `Nodes = N`".into()))
                }
                None => {}
            }
            if let Some(n) = nodes {
                for (line, item) in hidden_lines {
                    match node_index(&item, n) {
                        Ok(i) => {
                            topo.plan.hidden.insert(i + 1);
                        }
                        Err(m) => errors.push(err(line, m)),
                    }
                }
                lease_section(&mut topo, &lease_lines, &mut errors);
            }
        }
    }
    let n = topo.plan.nodes;
    for s in sections.iter().filter(|s| s.kind != "lab") {
        if !["underlay", "workload", "node", "path"].contains(&s.kind.as_str()) {
            errors.push(err(
                s.line,
                format!(
                    "unknown section [{}]; expected [Lab], [Underlay], [Path], [Workload] \
                     or [Node]",
                    s.kind
                ),
            ));
            continue;
        }
        if n == 0 {
            continue; // no node count: already reported
        }
        if s.kind == "path" {
            path_section(&mut topo, s, &mut errors);
            continue;
        }
        let targets: Vec<usize> = match s.names.first() {
            None => (0..n).collect(),
            Some(name) => match node_index(name, n) {
                Ok(i) => vec![i],
                Err(m) => {
                    errors.push(err(s.line, m));
                    continue;
                }
            },
        };
        for e in &s.entries {
            for &i in &targets {
                if let Err(m) = apply(&s.kind, &mut topo, i, e) {
                    errors.push(err(e.line, m));
                    break;
                }
            }
        }
    }
    if errors.is_empty() {
        errors.extend(topo.check());
    }
    if errors.is_empty() {
        Ok(topo)
    } else {
        errors.sort_by_key(|e| e.line);
        Err(errors)
    }
}

/// The `[Lab] Lease` lines, once the plan is known: each checked against it and against
/// the ones before, reported at its line; the good ones join the plan.
fn lease_section(
    topo: &mut Topology,
    leases: &[(usize, ([u8; 6], Ipv4Addr))],
    errors: &mut Vec<ParseError>,
) {
    let mut taken: Vec<(usize, [u8; 6], Ipv4Addr)> = Vec::new();
    for &(line, (mac, ip)) in leases {
        let problem = if let Err(m) = topo.plan.check_lease(mac, ip) {
            Some(m)
        } else if let Some(first) = taken.iter().find(|t| t.1 == mac) {
            Some(format!(
                "a second Lease for {} (line {} gives it {})",
                Mac(mac),
                first.0,
                first.2
            ))
        } else if let Some(first) = taken.iter().find(|t| t.2 == ip) {
            Some(format!(
                "a second Lease of {ip} (line {} gives it to {})",
                first.0,
                Mac(first.1)
            ))
        } else if taken.len() == MAX_LEASES {
            Some(format!("more than {MAX_LEASES} Lease lines"))
        } else {
            None
        };
        match problem {
            Some(m) => errors.push(err(line, m)),
            None => taken.push((line, mac, ip)),
        }
    }
    if let (false, Some(&(line, ..))) = (topo.plan.routing, taken.first()) {
        errors.push(err(
            line,
            "a Lease needs Routing = yes: a node serves an address outside its segment only \
             inside [Routing] Networks"
                .into(),
        ));
    }
    topo.plan
        .leases
        .extend(taken.into_iter().map(|(_, mac, ip)| (mac, ip)));
}

/// `[Path A B]`: two different nodes, then the keys of a cable.
fn path_section(topo: &mut Topology, s: &Section, errors: &mut Vec<ParseError>) {
    let n = topo.plan.nodes;
    let ends: Vec<usize> = s
        .names
        .iter()
        .take(2)
        .filter_map(|name| match node_index(name, n) {
            Ok(i) => Some(i),
            Err(m) => {
                errors.push(err(s.line, m));
                None
            }
        })
        .collect();
    let (i, j) = match (s.names.len(), ends.as_slice()) {
        (2, &[i, j]) if i != j => (i.min(j), i.max(j)),
        (2, &[_, _]) => {
            return errors.push(err(s.line, "a [Path] joins two different nodes".into()))
        }
        (2.., _) => return, // a bad name, reported above
        _ => {
            return errors.push(err(
                s.line,
                "[Path] needs two nodes: [Path node1 node2]".into(),
            ))
        }
    };
    let mut policy = topo.pairs.get(&(i, j)).cloned().unwrap_or_default();
    for e in &s.entries {
        match apply_policy(&mut policy, &e.key, &e.value) {
            Some(Ok(())) => {}
            Some(Err(m)) => errors.push(err(e.line, m)),
            None => errors.push(err(e.line, format!("unknown key `{}` in [Path]", e.key))),
        }
    }
    topo.pairs.insert((i, j), policy);
}

/// A cable's or a path's key; `None` if `key` is not one.
fn apply_policy(
    policy: &mut LinkPolicy,
    key: &str,
    v: &str,
) -> Option<std::result::Result<(), String>> {
    let r = match key {
        "delay" => parse_duration(v).map(|d| policy.delay = d),
        "jitter" => parse_duration(v).map(|d| policy.jitter = d),
        "drop" => parse_probability(v).map(|p| policy.drop = p),
        "reorder" => parse_probability(v).map(|p| policy.reorder = p),
        "cut" => parse_bool(v).map(|cut| policy.up = !cut),
        "seed" => parse_value(v, "a number").map(|n| policy.seed = n),
        _ => return None,
    };
    Some(r)
}

fn apply(kind: &str, topo: &mut Topology, i: usize, e: &Entry) -> std::result::Result<(), String> {
    let v = e.value.as_str();
    let spec = &mut topo.nodes[i];
    if kind == "underlay" {
        if let Some(r) = apply_policy(&mut spec.underlay, &e.key, v) {
            return r;
        }
    }
    match (kind, e.key.as_str()) {
        ("underlay", "nat") => spec.nat = Some(parse_bool(v)?),
        ("node", "hidden") => {
            if parse_bool(v)? {
                topo.plan.hidden.insert(i + 1);
            } else {
                topo.plan.hidden.remove(&(i + 1));
            }
        }
        ("workload", "mac") => spec.workload.mac = Some(parse_mac(v)?),
        ("workload", "staticlease") => {
            spec.workload.static_v4 = Some(parse_value(v, "an IPv4 address")?)
        }
        ("workload", "dhcp") => spec.workload.dhcp = parse_bool(v)?,
        ("workload", "slaac") => spec.workload.slaac = parse_bool(v)?,
        ("node", "append") => spec.append = v.to_string(),
        ("node", "internet") => spec.internet = parse_bool(v)?,
        ("node", "memory") => {
            let m: u32 = parse_value(v, "a size in MiB")?;
            if !(16..=4096).contains(&m) {
                return Err(format!("Memory = {m}: expected 16..=4096 MiB"));
            }
            spec.memory_mib = m;
        }
        (kind, key) => {
            let name = match kind {
                "underlay" => "[Underlay]",
                "workload" => "[Workload]",
                _ => "[Node]",
            };
            return Err(format!("unknown key `{key}` in {name}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// The running lab

/// A node's workload as configured: its addresses once DHCP and SLAAC are done.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WorkloadAddrs {
    /// The IPv4 address DHCP gave (without prefix length).
    pub v4: Option<Ipv4Addr>,
    /// The global IPv6 address SLAAC made.
    pub v6: Option<Ipv6Addr>,
}

struct Slot {
    /// `None` only while (or after a failed) restart.
    vm: Option<Vm>,
    ns: Arc<Netns>,
    addrs: WorkloadAddrs,
    policy: LinkPolicy,
    /// Behind the switch's NAT filter.
    nat: bool,
}

/// A running lab. Dropping it stops every VM and removes the namespaces.
pub struct Lab {
    topology: Topology,
    nodes: Vec<MeshNode>,
    wire: Wire,
    slots: Vec<Slot>,
    /// The paths' policies as set now (kept across restarts).
    pairs: BTreeMap<(usize, usize), LinkPolicy>,
    script: PathBuf,
    /// Last: removed after everything that may still use it.
    dir: TempDir,
}

/// The script udhcpc runs on each event: it applies what DHCP gave with `ip` and prints
/// one line per event for the lab's evidence (see [`write_dhcp_script`]).
const DHCP_SCRIPT: &str = r#"#!/bin/sh
# Written by vdcnet's lab: applies a DHCP lease with `ip` (udhcpc calls it on each event).
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
prefix_of() { # dotted mask -> prefix length
    n=0
    for o in $(echo "$1" | tr . ' '); do
        case $o in
            255) n=$((n+8));; 254) n=$((n+7));; 252) n=$((n+6));; 248) n=$((n+5));;
            240) n=$((n+4));; 224) n=$((n+3));; 192) n=$((n+2));; 128) n=$((n+1));;
        esac
    done
    echo $n
}
case "$1" in
    deconfig)
        ip -4 route flush dev "$interface" 2>/dev/null # fails only with no table yet
        ip -4 addr flush dev "$interface"
        ip link set dev "$interface" up
        ;;
    bound|renew)
        len=${mask:-$(prefix_of "$subnet")}
        ip -4 route flush dev "$interface" 2>/dev/null # fails only with no table yet
        ip -4 addr flush dev "$interface"
        ip addr add "$ip/$len" dev "$interface" || exit 1
        if [ -n "$mtu" ]; then ip link set dev "$interface" mtu "$mtu"; fi
        if [ -n "$staticroutes" ]; then
            # Option 121 (RFC 3442) replaces the router option. Pairs of `dest/len gateway`:
            # the on-link ones (gateway 0.0.0.0) first, so the others find their gateway.
            set -- $staticroutes
            while [ $# -ge 2 ]; do
                if [ "$2" = 0.0.0.0 ]; then ip -4 route replace "$1" dev "$interface"; fi
                shift 2
            done
            set -- $staticroutes
            while [ $# -ge 2 ]; do
                if [ "$2" != 0.0.0.0 ]; then
                    ip -4 route replace "$1" via "$2" dev "$interface"
                fi
                shift 2
            done
        elif [ -n "$router" ]; then
            set -- $router
            ip -4 route replace default via "$1" dev "$interface"
        fi
        if [ -n "$staticroutes" ] && [ -n "$router" ]; then router="$router (ignored)"; fi
        echo "vdcnet-lab: bound $ip/$len router ${router:-none} static routes ${staticroutes:-none} mtu ${mtu:-default} lease ${lease:-?}s"
        ;;
    leasefail|nak)
        echo "vdcnet-lab: $1 ${message:-}"
        ;;
esac
exit 0
"#;

impl Lab {
    /// Generates the configs, boots every node, waits until each is ready and each
    /// workload is configured (DHCP, SLAAC) as its spec says.
    pub fn start(topology: &Topology) -> Result<Lab> {
        let problems = topology.check();
        if !problems.is_empty() {
            let text: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
            return Err(Error::new(ErrorKind::Spawn, text.join("\n")));
        }
        if !host::is_root() {
            return Err(Error::new(
                ErrorKind::Spawn,
                "a lab needs root (network namespaces and tap devices)",
            ));
        }
        let nodes = node_configs(topology).map_err(|e| Error::new(ErrorKind::Spawn, e))?;
        let dir = TempDir::new("lab")?;
        let script = dir.path().join("udhcpc.sh");
        write_dhcp_script(&script)?;
        let wire = Wire::new("lab-underlay");
        if let Some(path) = &topology.capture {
            wire.capture_to(path)?;
        }
        let mut slots = Vec::new();
        for (i, spec) in topology.nodes.iter().enumerate() {
            let ns = Arc::new(Netns::create()?);
            prepare_namespace(&ns)?;
            slots.push(Slot {
                vm: None,
                ns,
                addrs: WorkloadAddrs::default(),
                policy: spec.underlay.clone(),
                nat: topology.is_behind_nat(i),
            });
        }
        let mut lab = Lab {
            topology: topology.clone(),
            nodes,
            wire,
            slots,
            pairs: topology.pairs.clone(),
            script,
            dir,
        };
        for i in 0..lab.slots.len() {
            lab.boot(i)?;
        }
        for slot in &lab.slots {
            let vm = slot.vm.as_ref().expect("just booted");
            vm.wait_ready()?;
        }
        lab.configure_workloads(&(0..lab.slots.len()).collect::<Vec<_>>())?;
        Ok(lab)
    }

    /// Spawns node `i`'s VM (not waiting for it) and applies its underlay policy, NAT
    /// and the policies of its paths to the nodes that are up.
    fn boot(&mut self, i: usize) -> Result<()> {
        let spec = &self.topology.nodes[i];
        let node = &self.nodes[i];
        let slot = &mut self.slots[i];
        let mut vm = Vm::builder(&node.name)
            .config(&node.config)
            .memory_mib(spec.memory_mib)
            .append(&spec.append)
            .nic(Nic::wire(&self.wire).mac(vm_mac(i, 0)))
            .nic(
                Nic::tap_in(&slot.ns, WORKLOAD_IF, Some(workload_mac(&self.topology, i)))
                    .mac(vm_mac(i, 1)),
            );
        if spec.internet {
            vm = vm.nic(Nic::user().unrestricted().mac(vm_mac(i, 2)));
        }
        let vm = vm.spawn()?;
        if let Some(port) = vm.wire_port(0) {
            self.wire.set_policy(port.id(), slot.policy.clone());
            self.wire.set_nat(port.id(), slot.nat);
        }
        slot.vm = Some(vm);
        for (&(a, b), policy) in &self.pairs {
            if a == i || b == i {
                self.apply_pair(a, b, policy.clone());
            }
        }
        Ok(())
    }

    /// Node `i`'s underlay port number, while it is up.
    fn port_of(&self, i: usize) -> Option<usize> {
        Some(self.slots[i].vm.as_ref()?.wire_port(0)?.id())
    }

    /// Sets the path policy on the wire, if both nodes are up.
    fn apply_pair(&self, i: usize, j: usize, policy: LinkPolicy) {
        if let (Some(a), Some(b)) = (self.port_of(i), self.port_of(j)) {
            self.wire.set_pair_policy(a, b, policy);
        }
    }

    /// Runs DHCP and waits for SLAAC in the workloads of `which`, in parallel.
    fn configure_workloads(&mut self, which: &[usize]) -> Result<()> {
        let v6_plan = self.topology.plan.v6.is_some();
        let script = self.script.clone();
        let topology = &self.topology;
        let results: Vec<(usize, Result<WorkloadAddrs>)> = thread::scope(|scope| {
            let handles: Vec<_> = which
                .iter()
                .map(|&i| {
                    let slot = &self.slots[i];
                    let spec = &topology.nodes[i].workload;
                    let want_v4 = topology.expected_v4(i);
                    let script = &script;
                    let handle = scope.spawn(move || {
                        configure_workload(&slot.ns, spec, want_v4, v6_plan, script)
                    });
                    (i, handle)
                })
                .collect();
            handles
                .into_iter()
                .map(|(i, h)| {
                    let r = h.join().unwrap_or_else(|_| {
                        Err(Error::new(ErrorKind::Spawn, "workload setup panicked"))
                    });
                    (i, r)
                })
                .collect()
        });
        let mut first_error = None;
        for (i, r) in results {
            match r {
                Ok(addrs) => self.slots[i].addrs = addrs,
                Err(e) => {
                    let e = match &self.slots[i].vm {
                        Some(vm) => vm.fail(e),
                        None => e,
                    };
                    first_error.get_or_insert(
                        Error::new(
                            e.kind(),
                            format!("{}'s workload: {}", self.nodes[i].name, e.message()),
                        )
                        .with_evidence(e.evidence().to_string()),
                    );
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The nodes' generated configs and addresses, in order (`nodes()[0]` is `node1`).
    pub fn nodes(&self) -> &[MeshNode] {
        &self.nodes
    }

    /// How many nodes the lab has.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether the lab has no nodes (never, once started).
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The topology the lab was started from.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Node `i`'s VM. Panics if `i` is out of range or the node is down after a failed
    /// [`Lab::restart`].
    pub fn vm(&self, i: usize) -> &Vm {
        self.slots[i]
            .vm
            .as_ref()
            .unwrap_or_else(|| panic!("{} is down (its restart failed)", self.nodes[i].name))
    }

    /// Node `i`'s workload namespace (its interface is [`WORKLOAD_IF`]).
    pub fn workload(&self, i: usize) -> &Netns {
        &self.slots[i].ns
    }

    /// Node `i`'s workload addresses as configured by the last start or restart.
    pub fn workload_addrs(&self, i: usize) -> WorkloadAddrs {
        self.slots[i].addrs
    }

    /// Node `i`'s workload IPv4 address from DHCP, if it ran.
    pub fn workload_v4(&self, i: usize) -> Option<Ipv4Addr> {
        self.slots[i].addrs.v4
    }

    /// Node `i`'s workload global IPv6 address from SLAAC, if it ran.
    pub fn workload_v6(&self, i: usize) -> Option<Ipv6Addr> {
        self.slots[i].addrs.v6
    }

    /// The underlay wire.
    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    /// Where the underlay capture goes, if anywhere.
    pub fn capture_path(&self) -> Option<&Path> {
        self.topology.capture.as_deref()
    }

    /// The lab's private directory (the DHCP script).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The udhcpc script the lab wrote and runs in every workload namespace (see
    /// [`write_dhcp_script`]): `busybox udhcpc -i IF -O staticroutes -s PATH` with it
    /// configures another interface as the lab's workloads are.
    pub fn dhcp_script(&self) -> &Path {
        &self.script
    }

    /// Sets node `i`'s underlay cable policy (kept across restarts).
    pub fn set_policy(&mut self, i: usize, policy: LinkPolicy) {
        if let Some(port) = self.slots[i].vm.as_ref().and_then(|vm| vm.wire_port(0)) {
            self.wire.set_policy(port.id(), policy.clone());
        }
        self.slots[i].policy = policy;
    }

    /// Node `i`'s underlay cable policy.
    pub fn policy(&self, i: usize) -> &LinkPolicy {
        &self.slots[i].policy
    }

    /// Sets the policy of the path between nodes `i` and `j`, both ways, on top of their
    /// cables (kept across restarts). [`LinkPolicy::cut`] cuts just that path;
    /// [`LinkPolicy::default`] makes it clean again.
    pub fn set_pair_policy(&mut self, i: usize, j: usize, policy: LinkPolicy) {
        assert!(
            i != j && i < self.len() && j < self.len(),
            "no path between node{} and node{}",
            i + 1,
            j + 1
        );
        self.apply_pair(i, j, policy.clone());
        let key = (i.min(j), i.max(j));
        if policy == LinkPolicy::default() {
            self.pairs.remove(&key);
        } else {
            self.pairs.insert(key, policy);
        }
    }

    /// The policy of the path between nodes `i` and `j` (the default if it has none).
    pub fn pair_policy(&self, i: usize, j: usize) -> LinkPolicy {
        self.pairs
            .get(&(i.min(j), i.max(j)))
            .cloned()
            .unwrap_or_default()
    }

    /// Puts node `i` behind the switch's NAT filter or takes it out (kept across restarts;
    /// taking it out forgets its flows). Its config is not touched: a hidden node stays
    /// without endpoints in the others' configs.
    pub fn set_nat(&mut self, i: usize, on: bool) {
        if let Some(port) = self.port_of(i) {
            self.wire.set_nat(port, on);
        }
        self.slots[i].nat = on;
    }

    /// Whether node `i` is behind the switch's NAT filter.
    pub fn is_behind_nat(&self, i: usize) -> bool {
        self.slots[i].nat
    }

    /// Frames from node `i` that the underlay switch handed on towards node `j` (after
    /// every policy on the way): which way the traffic goes. Reset when either restarts.
    pub fn frames_between(&self, i: usize, j: usize) -> u64 {
        match (self.port_of(i), self.port_of(j)) {
            (Some(a), Some(b)) => self.wire.frames_between(a, b),
            _ => 0,
        }
    }

    /// Counters of node `i`'s underlay port (reset by a restart: it is a new port).
    pub fn underlay_stats(&self, i: usize) -> Option<PortStats> {
        let port = self.slots[i].vm.as_ref()?.wire_port(0)?;
        self.wire.port_stats(port.id())
    }

    /// Kills node `i` and boots it again with the same config, MAC addresses and underlay
    /// policy; its new tap comes back into the same workload namespace, which is
    /// configured again (DHCP, SLAAC) before this returns.
    pub fn restart(&mut self, i: usize) -> Result<()> {
        if let Some(vm) = self.slots[i].vm.take() {
            vm.kill();
            drop(vm); // removes the tap from the namespace and the port from the wire
        }
        self.slots[i].addrs = WorkloadAddrs::default();
        self.boot(i)?;
        self.vm(i).wait_ready()?;
        self.configure_workloads(&[i])
    }

    /// One line per node: its underlay, segment and workload addresses and namespace;
    /// then one per path with a policy, then one per VDC-wide lease.
    pub fn describe(&self) -> Vec<String> {
        let paths = self.pairs.iter().map(|(&(i, j), p)| {
            format!(
                "path {}–{}: {}",
                self.nodes[i].name,
                self.nodes[j].name,
                policy_summary(p)
            )
        });
        let nodes = (0..self.len()).map(|i| {
            let n = &self.nodes[i];
            let seg6 = n.segment_v6.map(|c| format!(", {c}")).unwrap_or_default();
            let own6 = n.overlay_v6.map(|a| format!(", {a}")).unwrap_or_default();
            let a = self.slots[i].addrs;
            let w4 = a.v4.map_or("-".to_string(), |v| v.to_string());
            let w6 = a.v6.map_or("-".to_string(), |v| v.to_string());
            let hidden = match (n.hidden, self.slots[i].nat) {
                (true, true) => " (hidden, behind NAT)",
                (true, false) => " (hidden)",
                (false, true) => " (behind NAT)",
                (false, false) => "",
            };
            format!(
                "{}{hidden}: underlay {} | segment {}{seg6} via {}{own6} | workload netns {} \
                     {WORKLOAD_IF} {w4} {w6}",
                n.name,
                n.underlay,
                n.segment_v4,
                n.overlay_v4,
                self.slots[i].ns.name(),
            )
        });
        let plan = &self.topology.plan;
        let leases = plan
            .leases
            .iter()
            .map(|&(mac, ip)| match plan.lease_home(ip) {
                Some(h) => format!(
                    "lease {} {ip}: at home on node{h}, visiting on the others",
                    Mac(mac)
                ),
                None => format!("lease {} {ip}: visiting on every node", Mac(mac)),
            });
        nodes.chain(paths).chain(leases).collect()
    }
}

/// `delay 80ms, jitter 5ms, drop 1%, reorder 0%` or `cut` (what differs from a clean link).
fn policy_summary(p: &LinkPolicy) -> String {
    if !p.up {
        return "cut".into();
    }
    let mut parts = Vec::new();
    if !p.delay.is_zero() {
        parts.push(format!("delay {:?}", p.delay));
    }
    if !p.jitter.is_zero() {
        parts.push(format!("jitter {:?}", p.jitter));
    }
    if p.drop > 0.0 {
        parts.push(format!("drop {}%", p.drop * 100.0));
    }
    if p.reorder > 0.0 {
        parts.push(format!("reorder {}%", p.reorder * 100.0));
    }
    if parts.is_empty() {
        "clean".into()
    } else {
        parts.join(", ")
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // VMs first (they hold taps inside the namespaces), then the namespaces.
        for slot in &mut self.slots {
            slot.vm.take();
        }
    }
}

/// The node files [`Lab::start`] boots: the plan's, with each workload's own static lease
/// in its node's segment (unless the VDC-wide leases already hold the same pair), the
/// Internet link and the topology's edit.
fn node_configs(topology: &Topology) -> std::result::Result<Vec<MeshNode>, String> {
    let mut nodes = topology.plan.generate()?;
    for (i, node) in nodes.iter_mut().enumerate() {
        let w = &topology.nodes[i].workload;
        let mac = workload_mac(topology, i);
        if let Some(v4) = w.static_v4.filter(|&v4| {
            // The same pair as a VDC-wide lease is in the file already.
            !topology.plan.leases.contains(&(mac.0, v4))
        }) {
            node.config = node.config.replacen(
                "Role = segment\n",
                &format!("Role = segment\nStaticLease = {mac}, {v4}\n"),
                1,
            );
        }
        if topology.nodes[i].internet {
            node.config.push_str(INTERNET_LINK);
        }
        if let Some(edit) = &topology.edit_config {
            node.config = edit(i, &node.config);
        }
    }
    Ok(nodes)
}

/// The MAC address of node `i`'s NIC `nic` (stable across restarts).
fn vm_mac(i: usize, nic: u8) -> Mac {
    Mac([0x52, 0x54, 0x00, 0x4c, nic, (i + 1) as u8])
}

/// The MAC address of node `i`'s workload interface.
fn workload_mac(topology: &Topology, i: usize) -> Mac {
    topology.nodes[i]
        .workload
        .mac
        .unwrap_or(Mac([0x52, 0x54, 0x00, 0x57, 0x00, (i + 1) as u8]))
}

/// Writes the lab's udhcpc script to `path` (mode 755), to run it elsewhere, e.g. in a
/// test's own namespace, as the lab does: `busybox udhcpc -i IF -O staticroutes -s PATH`
/// (busybox puts option 121 in its parameter request list only with `-O staticroutes`).
/// [`Lab::dhcp_script`] is the lab's copy.
///
/// On `deconfig` it flushes the interface's IPv4 routes and addresses and sets it up. On
/// `bound` and `renew` it flushes them too, then adds `$ip/$mask` (a /32 works), sets
/// `$mtu` and applies the classless static routes of option 121 (`$staticroutes`, pairs
/// of `dest/len gateway`; RFC 3442: the router option is then ignored): the on-link ones
/// (gateway `0.0.0.0`) as `dev` routes first, then the others `via` their gateway, so a
/// default route via a server reached through a /32 route is accepted. Without option 121
/// the first `$router` becomes the default route. Each event prints one
/// `vdcnet-lab: ...` line (address, router, static routes, MTU, lease time).
pub fn write_dhcp_script(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, DHCP_SCRIPT)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|e| Error::io(format_args!("writing {}", path.display()), e))
}

/// IPv6 in a fresh namespace: accept router advertisements and autoconfigure on every
/// interface that arrives (the tap comes in later, and again after a restart).
fn prepare_namespace(ns: &Netns) -> Result<()> {
    for (key, value) in [
        ("net/ipv6/conf/default/accept_ra", "2"),
        ("net/ipv6/conf/default/autoconf", "1"),
        ("net/ipv6/conf/all/accept_ra", "2"),
    ] {
        ns.sysctl(key, value)?;
    }
    Ok(())
}

fn configure_workload(
    ns: &Netns,
    spec: &WorkloadSpec,
    want_v4: Option<Ipv4Addr>,
    v6_plan: bool,
    script: &Path,
) -> Result<WorkloadAddrs> {
    // The interface came in with the namespace's defaults; say it again on the interface
    // itself in case it was created before they were set.
    for key in ["accept_ra", "autoconf"] {
        let value = if key == "accept_ra" { "2" } else { "1" };
        ns.sysctl(&format!("net/ipv6/conf/{WORKLOAD_IF}/{key}"), value)?;
    }
    let mut addrs = WorkloadAddrs::default();
    if spec.dhcp {
        let mut cmd = ns.command("busybox");
        // `-O staticroutes`: busybox asks for option 121 only when told to.
        cmd.args(["udhcpc", "-i", WORKLOAD_IF, "-q", "-n", "-t", "10"])
            .args(["-O", "staticroutes", "-s"])
            .arg(script);
        let out = host::run_command(&mut cmd).map_err(|e| {
            Error::new(
                ErrorKind::Net,
                format!("no DHCP lease on {WORKLOAD_IF} in namespace {}", ns.name()),
            )
            .with_evidence(e.evidence().to_string())
        })?;
        let v4 = global_addrs(ns, false)?
            .into_iter()
            .find_map(|a| a.parse::<Ipv4Addr>().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Net,
                    format!("udhcpc succeeded but {WORKLOAD_IF} has no IPv4 address"),
                )
                .with_evidence(String::from_utf8_lossy(&out.stdout).into_owned())
            })?;
        if let Some(want) = want_v4 {
            if v4 != want {
                return Err(Error::new(
                    ErrorKind::Net,
                    format!("DHCP gave {v4}, not the static lease {want}"),
                )
                .with_evidence(String::from_utf8_lossy(&out.stdout).into_owned()));
            }
        }
        addrs.v4 = Some(v4);
    }
    if spec.slaac && v6_plan {
        let deadline = Instant::now() + SLAAC_TIMEOUT;
        loop {
            if let Some(v6) = global_addrs(ns, true)?
                .into_iter()
                .find_map(|a| a.parse::<Ipv6Addr>().ok())
            {
                addrs.v6 = Some(v6);
                break;
            }
            if Instant::now() >= deadline {
                let shown = ns
                    .ip(&["-6", "addr", "show", "dev", WORKLOAD_IF])
                    .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
                    .unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no global IPv6 address by SLAAC on {WORKLOAD_IF} within \
                         {SLAAC_TIMEOUT:?} (no router advertisement?)"
                    ),
                )
                .with_evidence(shown));
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(addrs)
}

/// The workload interface's usable global addresses (no prefix length), v4 or v6.
fn global_addrs(ns: &Netns, v6: bool) -> Result<Vec<String>> {
    let out = ns.ip(&[
        if v6 { "-6" } else { "-4" },
        "-o",
        "addr",
        "show",
        "dev",
        WORKLOAD_IF,
        "scope",
        "global",
    ])?;
    Ok(parse_addr_lines(&String::from_utf8_lossy(&out.stdout)))
}

/// Reads `ip -o addr` output: each line's address, skipping tentative or failed ones.
fn parse_addr_lines(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.contains("tentative") && !l.contains("dadfailed"))
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            words.find(|w| *w == "inet" || *w == "inet6")?;
            let cidr = words.next()?;
            Some(cidr.split('/').next().unwrap_or(cidr).to_string())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = include_str!("../labs/mesh3.lab");

    fn errors_of(text: &str) -> Vec<ParseError> {
        Topology::parse(text).expect_err("should not parse")
    }

    #[test]
    fn the_sample_lab_parses() {
        let t = Topology::parse(SAMPLE).unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t.plan.nodes, 3);
        assert_eq!(t.nodes.len(), 3);
        assert_eq!(t.nodes[1].underlay.delay, Duration::from_millis(20));
        assert!(t.check().is_empty());
    }

    #[test]
    fn every_key_reaches_its_node_and_unnamed_sections_reach_all() {
        let t = Topology::parse(
            "# a lab\n\
             [Lab]\n\
             Nodes = 3, V4 = 10.30.0.0, V6 = none ; two pairs on a line\n\
             Underlay = 192.168.7.0\n\
             Port = 4000\n\
             Keepalive = 0\n\
             Capture = /tmp/x.pcap\n\
             [Underlay]\n\
             Delay = 5\n\
             [underlay node2]\n\
             Delay = 1.5s\n\
             Jitter = 250us\n\
             Drop = 1%\n\
             Reorder = 0.25\n\
             Cut = yes\n\
             Seed = 42\n\
             [Workload 3]\n\
             MAC = 52:54:00:aa:bb:03\n\
             StaticLease = 10.30.3.10\n\
             DHCP = no\n\
             SLAAC = off\n\
             [Node node1]\n\
             Append = vdcnet.ping=10.30.2.1,10.30.3.1\n\
             Memory = 128\n\
             Internet = yes\n",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t.plan.v4, Ipv4Addr::new(10, 30, 0, 0));
        assert_eq!(t.plan.v6, None);
        assert_eq!(t.plan.underlay, Ipv4Addr::new(192, 168, 7, 0));
        assert_eq!((t.plan.port, t.plan.keepalive), (4000, 0));
        assert_eq!(t.capture.as_deref(), Some(Path::new("/tmp/x.pcap")));
        assert_eq!(t.nodes[0].underlay.delay, Duration::from_millis(5));
        assert_eq!(t.nodes[2].underlay.delay, Duration::from_millis(5));
        let u = &t.nodes[1].underlay;
        assert_eq!(u.delay, Duration::from_millis(1500));
        assert_eq!(u.jitter, Duration::from_micros(250));
        assert!((u.drop - 0.01).abs() < 1e-12);
        assert!((u.reorder - 0.25).abs() < 1e-12);
        assert!(!u.up);
        assert_eq!(u.seed, 42);
        let w = &t.nodes[2].workload;
        assert_eq!(w.mac, Some(Mac([0x52, 0x54, 0, 0xaa, 0xbb, 3])));
        assert_eq!(w.static_v4, Some(Ipv4Addr::new(10, 30, 3, 10)));
        assert!(!w.dhcp && !w.slaac);
        assert_eq!(t.nodes[0].workload, WorkloadSpec::default());
        assert_eq!(t.nodes[0].append, "vdcnet.ping=10.30.2.1,10.30.3.1");
        assert_eq!(t.nodes[0].memory_mib, 128);
        assert!(t.nodes[0].internet && !t.nodes[1].internet);
        assert_eq!(t.nodes[1].memory_mib, 64);
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let errors = errors_of(
            "[Lab]\n\
             Nodes = 2\n\
             Colour = blue\n\
             [Underlay node3]\n\
             Delay = 1ms\n\
             [Underlay node1]\n\
             Delay = soon\n\
             Drop = 150%\n\
             [Workload 2]\n\
             MAC = ff:ff:ff:ff:ff:ff\n\
             just words\n\
             [Switch]\n\
             [Workload node2\n",
        );
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 7, 8, 10, 11, 12, 13], "{errors:?}");
        assert!(errors[0].message.contains("colour"), "{errors:?}");
        assert!(errors[1].message.contains("node3"), "{errors:?}");
        assert!(errors[0].to_string().starts_with("line 3: "));
    }

    #[test]
    fn a_lab_needs_a_node_count_and_valid_static_leases() {
        let e = errors_of("[Underlay]\nDelay = 1ms\n");
        assert_eq!(e[0].line, 0);
        assert!(e[0].message.contains("[Lab]"));
        let e = errors_of("[Lab]\nV4 = 10.20.0.0\n");
        assert_eq!(e[0].line, 1);
        let e = errors_of("[Lab]\nNodes = 1\n");
        assert_eq!(e[0].line, 2);
        // node1's segment is 10.20.1.0/24 and .1 is the node itself.
        let e = errors_of("[Lab]\nNodes = 2\n[Workload node1]\nStaticLease = 10.20.2.9\n");
        assert!(e[0].message.contains("static lease"), "{e:?}");
        let e = errors_of("[Lab]\nNodes = 2\n[Workload node1]\nStaticLease = 10.20.1.1\n");
        assert!(e[0].message.contains("static lease"), "{e:?}");
    }

    #[test]
    fn the_builder_matches_a_file() {
        let built = Topology::new(3)
            .underlay(
                1,
                LinkPolicy {
                    delay: Duration::from_millis(20),
                    ..LinkPolicy::default()
                },
            )
            .workload(
                0,
                WorkloadSpec {
                    static_v4: Some(Ipv4Addr::new(10, 20, 1, 10)),
                    ..WorkloadSpec::default()
                },
            );
        let parsed = Topology::parse(
            "[Lab]\nNodes = 3\n[Underlay node2]\nDelay = 20ms\n\
             [Workload node1]\nStaticLease = 10.20.1.10\n",
        )
        .unwrap();
        assert_eq!(built.nodes, parsed.nodes);
        assert_eq!(built.plan.nodes, parsed.plan.nodes);
        assert!(built.check().is_empty());
        assert!(!Topology::new(1).check().is_empty());
    }

    #[test]
    fn values_read_as_documented() {
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_duration("-1ms").is_err());
        assert!(parse_duration("2h").is_err());
        assert_eq!(parse_probability("0%"), Ok(0.0));
        assert_eq!(parse_probability("100 %"), Ok(1.0));
        assert!(parse_probability("1.5").is_err());
        assert_eq!(parse_bool("On"), Ok(true));
        assert!(parse_bool("maybe").is_err());
        assert_eq!(node_index("node3", 3), Ok(2));
        assert_eq!(node_index("1", 3), Ok(0));
        assert!(node_index("node0", 3).is_err());
        assert!(node_index("router", 3).is_err());
    }

    #[test]
    fn address_lines_skip_tentative_addresses() {
        let text = "2: eth0    inet6 fd20:ab:cd:1:5054:ff:fe57:1/64 scope global tentative \
                    dynamic mngtmpaddr \\       valid_lft 86400sec\n\
                    2: eth0    inet6 fd20:ab:cd:1::99/64 scope global dynamic \\  valid_lft\n\
                    2: eth0    inet 10.20.1.100/24 brd 10.20.1.255 scope global eth0\n";
        assert_eq!(
            parse_addr_lines(text),
            ["fd20:ab:cd:1::99".to_string(), "10.20.1.100".to_string()]
        );
    }

    #[test]
    fn a_static_lease_is_written_into_the_segment_link() {
        // What `Lab::start` boots, checked without booting.
        let t = Topology::new(2).static_v4(0, Ipv4Addr::new(10, 20, 1, 10));
        let nodes = node_configs(&t).unwrap();
        assert!(nodes[0]
            .config
            .contains("Role = segment\nStaticLease = 52:54:00:57:00:01, 10.20.1.10\n"));
        assert!(!nodes[1].config.contains("StaticLease"));
    }

    const MAC_A: Mac = Mac([0x52, 0x54, 0, 0xaa, 0xbb, 1]);
    const MAC_B: Mac = Mac([0x52, 0x54, 0, 0xaa, 0xbb, 2]);

    #[test]
    fn lab_leases_reach_every_node_file() {
        let t = Topology::parse(
            "[Lab]\n\
             Lease = 52:54:00:aa:bb:01, 10.30.1.10   # before V4: checked against the final plan\n\
             Nodes = 3, V4 = 10.30.0.0\n\
             lease = 52:54:00:aa:bb:02=10.30.2.20\n\
             [Workload node2]\n\
             MAC = 52:54:00:aa:bb:01\n",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        let want = vec![
            (MAC_A.0, Ipv4Addr::new(10, 30, 1, 10)),
            (MAC_B.0, Ipv4Addr::new(10, 30, 2, 20)),
        ];
        assert_eq!(t.plan.leases, want);
        // node2's workload has the leased MAC: the lab expects its address there.
        assert_eq!(t.expected_v4(1), Some(Ipv4Addr::new(10, 30, 1, 10)));
        assert_eq!(t.expected_v4(0), None);
        let nodes = node_configs(&t).unwrap();
        assert_eq!(nodes.len(), 3);
        for n in &nodes {
            assert!(
                n.config.contains(
                    "Role = segment\n\
                     StaticLease = 52:54:00:aa:bb:01, 10.30.1.10\n\
                     StaticLease = 52:54:00:aa:bb:02, 10.30.2.20\n"
                ),
                "{}",
                n.config
            );
            assert_eq!(n.config.matches("StaticLease").count(), 2);
        }
        // The Rust API builds the same plan.
        let built = Topology::new(3)
            .plan(MeshPlan {
                nodes: 3,
                v4: Ipv4Addr::new(10, 30, 0, 0),
                ..MeshPlan::default()
            })
            .lease(MAC_A, Ipv4Addr::new(10, 30, 1, 10))
            .lease(MAC_B, Ipv4Addr::new(10, 30, 2, 20));
        assert_eq!(built.plan.leases, want);
        assert!(built.check().is_empty(), "{:?}", built.check());
    }

    #[test]
    fn a_workload_lease_equal_to_a_lab_lease_is_written_once() {
        let t = Topology::new(2)
            .lease(MAC_A, Ipv4Addr::new(10, 20, 1, 10))
            .workload(
                0,
                WorkloadSpec {
                    mac: Some(MAC_A),
                    static_v4: Some(Ipv4Addr::new(10, 20, 1, 10)),
                    ..WorkloadSpec::default()
                },
            )
            .static_v4(1, Ipv4Addr::new(10, 20, 2, 10));
        assert!(t.check().is_empty(), "{:?}", t.check());
        let nodes = node_configs(&t).unwrap();
        assert_eq!(nodes[0].config.matches("StaticLease").count(), 1);
        assert!(nodes[1].config.contains(
            "Role = segment\n\
             StaticLease = 52:54:00:57:00:02, 10.20.2.10\n\
             StaticLease = 52:54:00:aa:bb:01, 10.20.1.10\n"
        ));
        assert_eq!(t.expected_v4(1), Some(Ipv4Addr::new(10, 20, 2, 10)));
    }

    #[test]
    fn every_lease_mistake_is_reported_with_its_line() {
        let errors = errors_of(
            "[Lab]\n\
             Nodes = 3\n\
             Lease = 52:54:00:aa:bb:01\n\
             Lease = 52:54:00:aa:bb:01, 10.20.1.10, Nodes = 4\n\
             Lease = 52:54:00:aa:bb:01, 10.20.1.10\n\
             Lease = 01:00:5e:00:00:01, 10.20.1.11\n\
             Lease = 52:54:00:aa:bb:02, 10.21.1.10\n\
             Lease = 52:54:00:aa:bb:02, 10.20.3.1\n\
             Lease = 52:54:00:aa:bb:02, 10.20.2.255\n\
             Lease = 52:54:00:aa:bb:01, 10.20.2.10\n\
             Lease = 52:54:00:aa:bb:02, 10.20.1.10\n\
             Lease = 52:54:00:aa:bb:0g, 10.20.1.12\n\
             Lease = 52:54:00:aa:bb:03, 10.20.1.300\n",
        );
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 6, 7, 8, 9, 10, 11, 12, 13], "{errors:#?}");
        let has = |k: usize, what: &str| {
            assert!(errors[k].message.contains(what), "{:?}", errors[k]);
        };
        has(0, "is not a lease: MAC,IPv4 or MAC=IPv4");
        has(1, "`10.20.1.10, Nodes = 4` is not an IPv4 address");
        has(2, "is a group address");
        has(3, "outside the VDC's 10.20.0.0/16");
        has(4, "node3's own address");
        has(5, "broadcast address of node2's segment");
        has(
            6,
            "a second Lease for 52:54:00:aa:bb:01 (line 5 gives it 10.20.1.10)",
        );
        has(
            7,
            "a second Lease of 10.20.1.10 (line 5 gives it to 52:54:00:aa:bb:01)",
        );
        has(8, "`52:54:00:aa:bb:0g` is not a MAC address");
        has(9, "`10.20.1.300` is not an IPv4 address");
        assert!(errors[0].to_string().starts_with("line 3: "));
        // Without routing no node could serve a visiting lease.
        let e =
            errors_of("[Lab]\nNodes = 2\nLease = 52:54:00:aa:bb:01, 10.20.1.10\nRouting = no\n");
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 3);
        assert!(e[0].message.contains("needs Routing = yes"), "{e:?}");
        // At most 64.
        let mut text = String::from("[Lab]\nNodes = 2\n");
        for k in 0..=MAX_LEASES {
            text.push_str(&format!(
                "Lease = 52:54:00:aa:00:{k:02x}, 10.20.1.{}\n",
                10 + k
            ));
        }
        let e = errors_of(&text);
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 3 + MAX_LEASES);
        assert!(e[0].message.contains("more than 64 Lease lines"), "{e:?}");
    }

    #[test]
    fn lab_leases_must_agree_with_workload_static_leases() {
        let ip = |d: u8| Ipv4Addr::new(10, 20, 1, d);
        // The same address for another MAC.
        let t = Topology::new(2).lease(MAC_A, ip(10)).static_v4(0, ip(10));
        let e = t.check();
        assert_eq!(e.len(), 1, "{e:?}");
        assert_eq!(e[0].line, 0);
        assert!(
            e[0].message.contains(
                "node1: the workload's static lease 10.20.1.10 for 52:54:00:57:00:01 is the \
                 VDC lease of 52:54:00:aa:bb:01"
            ),
            "{e:?}"
        );
        // Another address for the workload's MAC.
        let t = Topology::new(2)
            .lease(Mac([0x52, 0x54, 0, 0x57, 0, 1]), ip(20))
            .static_v4(0, ip(10));
        let e = t.check();
        assert!(
            e[0].message.contains(
                "node1: the workload 52:54:00:57:00:01 has the static lease 10.20.1.10, but \
                 the VDC lease gives it 10.20.1.20"
            ),
            "{e:?}"
        );
        // The same in a file, and a plan mistake from the Rust API (line 0).
        let e = errors_of(
            "[Lab]\nNodes = 2\nLease = 52:54:00:aa:bb:01, 10.20.1.10\n\
             [Workload node1]\nStaticLease = 10.20.1.10\n",
        );
        assert_eq!(e[0].line, 0);
        assert!(e[0].message.contains("is the VDC lease of"), "{e:?}");
        let e = Topology::new(2).lease(MAC_A, ip(1)).check();
        assert!(
            e[0].message.contains("10.20.1.1 is node1's own address"),
            "{e:?}"
        );
        // 64 VDC leases leave no room for a workload's own.
        let mut t = Topology::new(2).static_v4(1, Ipv4Addr::new(10, 20, 2, 10));
        for k in 0..MAX_LEASES {
            t = t.lease(Mac([0x52, 0x54, 0, 0xaa, 0, k as u8]), ip(10 + k as u8));
        }
        let e = t.check();
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].message
                .contains("node2: 65 static leases in its segment"),
            "{e:?}"
        );
    }

    fn ms(n: u64) -> LinkPolicy {
        LinkPolicy {
            delay: Duration::from_millis(n),
            ..LinkPolicy::default()
        }
    }

    #[test]
    fn the_square_lab_makes_the_two_hop_way_shorter_than_the_direct_one() {
        let t = Topology::parse(include_str!("../labs/square4.lab"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t.plan.nodes, 4);
        assert!(t.plan.routing);
        assert_eq!(t.plan.hello_ms, Some(400));
        let d = |i: usize, j: usize| t.pairs[&(i.min(j), i.max(j))].delay;
        assert_eq!(d(0, 1), Duration::from_millis(80));
        assert!(d(0, 2) + d(2, 1) < d(0, 1), "via node3 beats direct");
        assert!(d(0, 3) + d(3, 1) < d(0, 1), "via node4 too, but...");
        assert!(d(0, 2) + d(2, 1) < d(0, 3) + d(3, 1), "...node3 is best");
        assert!(!t.pairs.contains_key(&(2, 3)));
        assert!(t.plan.hidden.is_empty());
        assert!(t.check().is_empty());
        for n in t.plan.generate().unwrap() {
            assert!(n.config.contains("[Routing]"));
            assert!(n.config.contains("HelloInterval = 400\n"));
        }
    }

    #[test]
    fn the_hidden_lab_hides_two_nodes_behind_nats() {
        let t = Topology::parse(include_str!("../labs/hidden4.lab"))
            .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t.plan.hidden, [3, 4].into());
        assert_eq!(t.plan.hidden_keepalive, 20);
        let nat: Vec<bool> = (0..4).map(|i| t.is_behind_nat(i)).collect();
        assert_eq!(nat, [false, false, true, true]);
        let nodes = t.plan.generate().unwrap();
        assert!(!nodes[0].config.contains("Endpoint = 192.168.100.3:"));
        assert!(nodes[2].config.contains("Endpoint = 192.168.100.1:"));
        assert!(nodes[2].config.contains("PersistentKeepalive = 20"));
    }

    #[test]
    fn paths_hidden_nodes_nat_and_routing_keys_reach_the_topology() {
        let t = Topology::parse(
            "[Lab]\n\
             Nodes = 4\n\
             Hidden = node2, 3\n\
             HiddenKeepalive = 15\n\
             Routing = no\n\
             HelloInterval = 250\n\
             [Path 1 node3]\n\
             Delay = 10ms, Jitter = 1ms\n\
             Drop = 2%\n\
             Reorder = 0.5\n\
             Seed = 9\n\
             [Path node4 node1]\n\
             Cut = yes\n\
             [Path node3 node1]           # the same path again: adds to it\n\
             Delay = 12ms\n\
             [Underlay node1]\n\
             NAT = yes\n\
             [Underlay node3]\n\
             NAT = no\n\
             [Node node4]\n\
             Hidden = yes\n\
             [Node node2]\n\
             Hidden = no\n",
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        assert_eq!(t.plan.hidden, [3, 4].into());
        assert_eq!(t.plan.hidden_keepalive, 15);
        assert!(!t.plan.routing);
        assert_eq!(t.plan.hello_ms, Some(250));
        let p = &t.pairs[&(0, 2)];
        assert_eq!(p.delay, Duration::from_millis(12));
        assert_eq!(p.jitter, Duration::from_millis(1));
        assert!((p.drop - 0.02).abs() < 1e-12 && (p.reorder - 0.5).abs() < 1e-12);
        assert_eq!((p.seed, p.up), (9, true));
        assert!(!t.pairs[&(0, 3)].up);
        assert_eq!(t.pairs.len(), 2);
        let nat: Vec<bool> = (0..4).map(|i| t.is_behind_nat(i)).collect();
        // node1 by its key, node3 hidden but NAT = no, node4 hidden: behind NAT by default.
        assert_eq!(nat, [true, false, false, true]);
        for n in t.plan.generate().unwrap() {
            assert!(!n.config.contains("[Routing]"));
        }
    }

    #[test]
    fn every_path_and_hidden_mistake_is_reported_with_its_line() {
        let errors = errors_of(
            "[Lab]\n\
             Nodes = 3\n\
             Hidden = 2, node7\n\
             HiddenKeepalive = 0\n\
             HelloInterval = 5ms\n\
             Routing = maybe\n\
             [Path node1]\n\
             [Path node1 node1]\n\
             [Path node1 node9]\n\
             [Path node1 node2 node3]\n\
             [Path node2 node3]\n\
             NAT = yes\n\
             Delay = later\n\
             [Underlay node2]\n\
             NAT = perhaps\n\
             [Node node3]\n\
             Hidden = sometimes\n",
        );
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(
            lines,
            [3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 15, 17],
            "{errors:#?}"
        );
        assert!(errors[0].message.contains("node7"), "{errors:?}");
        assert!(errors[4].message.contains("two nodes"), "{errors:?}");
        assert!(errors[5].message.contains("two different"), "{errors:?}");
        assert!(errors[6].message.contains("node9"), "{errors:?}");
        assert!(errors[7].message.contains("node3"), "{errors:?}");
        assert!(errors[8].message.contains("`nat` in [Path]"), "{errors:?}");
    }

    #[test]
    fn a_lab_refuses_hidden_plans_its_nat_would_break() {
        // Every node hidden: no one could start a handshake.
        let e = errors_of("[Lab]\nNodes = 2\nHidden = 1, 2\n");
        assert_eq!(e[0].line, 0);
        assert!(e[0].message.contains("every node is hidden"), "{e:?}");
        // A keepalive the lab's NAT would outlast.
        let e = errors_of("[Lab]\nNodes = 2\nHidden = 2\nHiddenKeepalive = 30\n");
        assert!(e[0].message.contains("would lose the mapping"), "{e:?}");
        // Fine when the hidden node is not behind the lab's NAT.
        let t = Topology::parse(
            "[Lab]\nNodes = 2\nHidden = 2\nHiddenKeepalive = 30\n[Underlay 2]\nNAT = no\n",
        );
        assert!(t.is_ok(), "{t:?}");
        // A path from the Rust API to a node that does not exist.
        let t = Topology::new(2).pair(0, 5, ms(1));
        assert!(
            t.check()[0].message.contains("path node1 node6"),
            "{:?}",
            t.check()
        );
    }

    #[test]
    fn the_builder_matches_a_file_for_paths_and_hidden_nodes() {
        let built = Topology::new(3)
            .pair(1, 0, ms(80))
            .pair(0, 2, LinkPolicy::cut())
            .hidden(2)
            .behind_nat(0);
        let parsed = Topology::parse(
            "[Lab]\nNodes = 3\nHidden = 3\n[Path node1 node2]\nDelay = 80ms\n\
             [Path node3 node1]\nCut = yes\n[Underlay node1]\nNAT = yes\n",
        )
        .unwrap();
        assert_eq!(built.pairs, parsed.pairs);
        assert_eq!(built.nodes, parsed.nodes);
        assert_eq!(built.plan.hidden, parsed.plan.hidden);
        assert!(built.is_behind_nat(0) && !built.is_behind_nat(1) && built.is_behind_nat(2));
        assert!(built.check().is_empty());
    }

    #[test]
    fn a_path_policy_reads_back_in_one_line() {
        assert_eq!(policy_summary(&ms(80)), "delay 80ms");
        assert_eq!(policy_summary(&LinkPolicy::cut()), "cut");
        assert_eq!(policy_summary(&LinkPolicy::default()), "clean");
        let p = LinkPolicy {
            jitter: Duration::from_millis(5),
            drop: 0.01,
            ..ms(20)
        };
        assert_eq!(policy_summary(&p), "delay 20ms, jitter 5ms, drop 1%");
    }
}
