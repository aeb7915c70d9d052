//! What a VM's NICs are plugged into: QEMU user-mode networking with host forwards, a
//! [`Wire`] shared with other VMs, or a tap device whose far end is a network namespace.

use crate::error::Result;
use crate::host::free_tcp_port;
use crate::netns::{Netns, Tap};
use crate::wire::{Wire, WirePort};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

/// The TCP echo service's port on the appliance.
pub const ECHO_PORT: u16 = 7;

/// A MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Mac(pub [u8; 6]);

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// One NIC of a VM to be, in PCI (or virtio-mmio) order.
#[derive(Clone)]
pub struct Nic {
    pub(crate) kind: NicKind,
    pub(crate) mac: Option<Mac>,
}

#[derive(Clone)]
pub(crate) enum NicKind {
    User {
        net: Option<String>,
        ipv6_net: Option<String>,
        forwards: Vec<u16>,
        /// `restrict=on`: the guest reaches nothing outside.
        restricted: bool,
    },
    Wire(Wire),
    Tap {
        addrs: Vec<String>,
    },
    TapIn {
        ns: Arc<Netns>,
        ifname: String,
        peer_mac: Option<Mac>,
    },
}

impl Nic {
    /// QEMU user-mode networking (slirp) on its default 10.0.2.0/24 and fec0::/64, with
    /// the appliance's TCP echo port (7) forwarded from a free port on 127.0.0.1. The
    /// guest is restricted: it cannot reach the host or anything beyond it; only the
    /// forwards come in.
    pub fn user() -> Nic {
        Nic {
            kind: NicKind::User {
                net: None,
                ipv6_net: None,
                forwards: vec![ECHO_PORT],
                restricted: true,
            },
            mac: None,
        }
    }

    /// Lets a user-mode NIC's guest out (`restrict=off`): it reaches the host's loopback
    /// at the gateway address (10.0.2.2), and whatever the host reaches. No effect on other
    /// kinds.
    pub fn unrestricted(mut self) -> Nic {
        if let NicKind::User { restricted, .. } = &mut self.kind {
            *restricted = false;
        }
        self
    }

    /// Sets a user-mode NIC's IPv4 network (e.g. `10.0.3.0/24`; the guest is `.15`) and,
    /// optionally, its IPv6 prefix (e.g. `fec0:3::/64`). No effect on other kinds.
    pub fn subnet(mut self, net: &str, ipv6_net: Option<&str>) -> Nic {
        if let NicKind::User {
            net: n,
            ipv6_net: n6,
            ..
        } = &mut self.kind
        {
            *n = Some(net.to_string());
            *n6 = ipv6_net.map(str::to_string);
        }
        self
    }

    /// Forwards one more guest TCP port from a free host port (user-mode NICs only).
    pub fn forward_tcp(mut self, guest_port: u16) -> Nic {
        if let NicKind::User { forwards, .. } = &mut self.kind {
            forwards.push(guest_port);
        }
        self
    }

    /// A NIC on a shared wire (see [`Wire`]).
    pub fn wire(wire: &Wire) -> Nic {
        Nic {
            kind: NicKind::Wire(wire.clone()),
            mac: None,
        }
    }

    /// A tap device whose far end is a new network namespace holding `10.0.2.2/24` and
    /// `fec0::2/64` (the default config's gateway side).
    pub fn tap() -> Nic {
        Nic::tap_with(&["10.0.2.2/24", "fec0::2/64"])
    }

    /// A tap device whose namespace side holds `addrs` (with prefix lengths).
    pub fn tap_with(addrs: &[&str]) -> Nic {
        Nic {
            kind: NicKind::Tap {
                addrs: addrs.iter().map(|a| a.to_string()).collect(),
            },
            mac: None,
        }
    }

    /// A tap device whose far end goes into an existing namespace as `ifname`, with MAC
    /// address `peer_mac` (default: random), and no address: whoever owns the namespace
    /// configures it (DHCP, SLAAC). The namespace outlives the VM, so a VM booted again
    /// with the same `Nic` finds the same interface name and MAC address there.
    pub fn tap_in(ns: &Arc<Netns>, ifname: &str, peer_mac: Option<Mac>) -> Nic {
        Nic {
            kind: NicKind::TapIn {
                ns: ns.clone(),
                ifname: ifname.to_string(),
                peer_mac,
            },
            mac: None,
        }
    }

    /// Sets the NIC's MAC address (default: unique per NIC of this process).
    pub fn mac(mut self, mac: Mac) -> Nic {
        self.mac = Some(mac);
        self
    }
}

/// A NIC of a running VM, holding whatever keeps its far end alive.
pub(crate) enum NicRuntime {
    User { forwards: Vec<(u16, u16)> },
    Wire(WirePort),
    Tap(Tap),
}

impl NicRuntime {
    /// Allocates ports, attaches to the wire or creates the tap.
    pub(crate) fn prepare(kind: &NicKind) -> Result<NicRuntime> {
        Ok(match kind {
            NicKind::User { forwards, .. } => NicRuntime::User {
                forwards: forwards
                    .iter()
                    .map(|&g| free_tcp_port().map(|h| (g, h)))
                    .collect::<Result<_>>()?,
            },
            NicKind::Wire(wire) => NicRuntime::Wire(wire.attach_udp()?),
            NicKind::Tap { addrs } => NicRuntime::Tap(Tap::create(addrs)?),
            NicKind::TapIn {
                ns,
                ifname,
                peer_mac,
            } => NicRuntime::Tap(Tap::create_in(ns.clone(), Some(ifname), *peer_mac, &[])?),
        })
    }

    /// The `-netdev` value.
    pub(crate) fn netdev(&self, kind: &NicKind, id: &str) -> String {
        match (self, kind) {
            (
                NicRuntime::User { forwards },
                NicKind::User {
                    net,
                    ipv6_net,
                    restricted,
                    ..
                },
            ) => {
                let restrict = if *restricted { "on" } else { "off" };
                let mut s = format!("user,id={id},restrict={restrict}");
                if let Some(net) = net {
                    s.push_str(&format!(",net={net}"));
                }
                if let Some(net6) = ipv6_net {
                    s.push_str(&format!(",ipv6-net={net6}"));
                }
                for (guest, host) in forwards {
                    s.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
                }
                s
            }
            (NicRuntime::Wire(port), _) => port.qemu_netdev(id),
            (NicRuntime::Tap(tap), _) => tap.qemu_netdev(id),
            (NicRuntime::User { .. }, _) => unreachable!("runtime prepared from its own kind"),
        }
    }

    /// The host address that reaches `guest_port` on this NIC, if it is forwarded.
    pub(crate) fn forwarded(&self, guest_port: u16) -> Option<SocketAddr> {
        match self {
            NicRuntime::User { forwards } => forwards
                .iter()
                .find(|(g, _)| *g == guest_port)
                .map(|(_, h)| SocketAddr::from((Ipv4Addr::LOCALHOST, *h))),
            _ => None,
        }
    }

    /// One line describing the far end, for logs and `vdcnet run`.
    pub(crate) fn describe(&self) -> String {
        match self {
            NicRuntime::User { forwards } => {
                let fw: Vec<String> = forwards
                    .iter()
                    .map(|(g, h)| format!("127.0.0.1:{h} -> guest :{g}"))
                    .collect();
                format!("user-mode network, forwards {}", fw.join(", "))
            }
            NicRuntime::Wire(p) => format!(
                "wire `{}` port {} (switch {}, vm {})",
                p.wire().name(),
                p.id(),
                p.switch_addr(),
                p.vm_addr()
            ),
            NicRuntime::Tap(t) => format!(
                "tap {} in namespace {} ({})",
                t.name(),
                t.netns().name(),
                t.addrs().join(", ")
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_netdev_is_restricted_and_forwards_echo_from_loopback() {
        let nic = Nic::user().subnet("10.0.3.0/24", Some("fec0:3::/64"));
        let rt = NicRuntime::prepare(&nic.kind).unwrap();
        let host = rt.forwarded(ECHO_PORT).unwrap();
        assert!(host.ip().is_loopback());
        assert_eq!(
            rt.netdev(&nic.kind, "n0"),
            format!(
                "user,id=n0,restrict=on,net=10.0.3.0/24,ipv6-net=fec0:3::/64,\
                 hostfwd=tcp:127.0.0.1:{}-:7",
                host.port()
            )
        );
        assert_eq!(rt.forwarded(80), None);
    }

    #[test]
    fn mac_prints_as_colon_hex() {
        assert_eq!(
            Mac([0x52, 0x54, 0, 0xab, 1, 2]).to_string(),
            "52:54:00:ab:01:02"
        );
    }
}
