//! A host on a [`Wire`]: a tap in a namespace of its own, its frames carried to and from
//! the switch by `socat`. The lab's "internet": clients of the web gateway, resolvers,
//! and hosts that must *not* reach what the appliance keeps private.

use crate::error::{Error, ErrorKind, Result};
use crate::netns::{Netns, Tap};
use crate::wire::{LinkPolicy, Wire, WirePort};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
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
        // The cable stays cut until the tap is up in its namespace: socat exits on the
        // first frame it cannot write, and a tap is down while it moves (EIO).
        wire.set_policy(port.id(), LinkPolicy::cut());
        // `-d -d`: socat says (at notice level) when its setup is over, and only then may
        // the tap leave for its namespace. socat sets the tap's flags by name after
        // attaching to it; a tap already moved away made that ioctl fail and socat exit.
        // Either way the host was left with frames going nowhere (seen under load).
        let mut socat = Command::new("socat")
            .args(["-d", "-d"])
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
        let ready = socat.stderr.take().map(watch_socat);
        let mut host = UnderlayHost { socat, tap, port };
        let started = ready.is_some_and(|r| r.recv_timeout(Duration::from_secs(10)).is_ok());
        if !started {
            let why = match host.socat.try_wait() {
                Ok(Some(status)) => format!("socat exited with {status}"),
                _ => String::from("socat did not start its transfer loop within 10 s"),
            };
            return Err(Error::new(
                ErrorKind::Spawn,
                format!("underlay host on tap {}: {why}", host.tap.name()),
            ));
        }
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
        if let Ok(Some(status)) = host.socat.try_wait() {
            return Err(Error::new(
                ErrorKind::Spawn,
                format!("socat exited with {status} once its tap was in the namespace"),
            ));
        }
        wire.set_policy(host.port.id(), LinkPolicy::default());
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

/// Drains socat's log (it notes every datagram at this level) on a thread of its own, and
/// signals once when the transfer loop starts.
fn watch_socat(stderr: std::process::ChildStderr) -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(|l| l.ok()) {
            if line.contains(" E ") || line.contains(" W ") {
                eprintln!("underlay host: {line}");
            }
            if line.contains("starting data transfer loop") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(());
                }
            }
        }
    });
    rx
}
