//! A host on a [`Wire`]: a tap in a namespace of its own, its frames carried to and from
//! the switch by `socat`. The lab's "internet": clients of the web gateway, resolvers,
//! and hosts that must *not* reach what the appliance keeps private.

use crate::error::{Error, ErrorKind, Result};
use crate::netns::{Netns, Tap};
use crate::wire::{Wire, WirePort};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A namespace plugged into a switch. Dropping it stops socat and removes the namespace.
pub struct UnderlayHost {
    socat: Child,
    tap: Tap,
    port: WirePort,
}

impl UnderlayHost {
    /// Plugs a new namespace into `wire` with `addrs` on its interface (with prefix
    /// lengths, e.g. `192.168.100.200/24`, `fd99::200/64`). Needs root and `socat`.
    pub fn attach(wire: &Wire, addrs: &[String]) -> Result<UnderlayHost> {
        let tap = Tap::create(addrs)?;
        let port = wire.attach_udp()?;
        let socat = Command::new("socat")
            .arg(format!(
                "UDP-DATAGRAM:{},bind={}",
                port.switch_addr(),
                port.vm_addr()
            ))
            .arg(format!(
                "TUN,tun-type=tap,tun-name={},iff-no-pi,iff-up",
                tap.name()
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Spawn,
                    format!("socat: {e} (is socat installed?)"),
                )
            })?;
        let mut host = UnderlayHost { socat, tap, port };
        let socat = &mut host.socat;
        if let Err(e) = host.tap.attach_to_namespace(Duration::from_secs(10), || {
            matches!(socat.try_wait(), Ok(Some(_)))
        }) {
            let why = match host.socat.try_wait() {
                Ok(Some(status)) => format!(" (socat exited with {status})"),
                _ => String::new(),
            };
            return Err(Error::new(e.kind(), format!("{}{why}", e.message())));
        }
        Ok(host)
    }

    /// The host's namespace.
    pub fn netns(&self) -> &Netns {
        self.tap.netns()
    }

    /// Its interface's name in the namespace.
    pub fn ifname(&self) -> &str {
        self.tap.name()
    }

    /// Its port on the switch.
    pub fn port(&self) -> &WirePort {
        &self.port
    }
}

impl Drop for UnderlayHost {
    fn drop(&mut self) {
        let _ = self.socat.kill();
        let _ = self.socat.wait();
    }
}
