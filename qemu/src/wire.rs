//! A software Ethernet switch that joins NICs of several VMs into one segment: a *wire*.
//!
//! Each VM NIC on a wire is a QEMU `-netdev dgram` that sends its frames as UDP datagrams
//! from its own loopback port to one port of the switch, and receives from it. The switch
//! owns one UDP socket per attached NIC, so it always knows which port a frame came in on.
//! It learns source MAC addresses and sends a unicast frame only to the port behind its
//! destination; broadcast, multicast and unknown destinations go to every other port.
//!
//! Every frame passes two hooks on its way: the ingress [`LinkPolicy`] of the port it came
//! from and the egress policy of each port it leaves through. Today a policy can only cut a
//! link (`up: false`); delay, loss and reordering belong in [`LinkPolicy`] and in
//! `Switch::egress`, the one place frames leave the switch. A port's I/O is the
//! [`PortIo`] trait, so a tap device in a namespace can join a wire by implementing it.

use crate::error::{Error, Result};
use crate::host::free_udp_port;
use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The largest frame a port reads (virtio-net without offloads stays far below).
const MAX_FRAME: usize = 65_536;
/// How often a port's thread looks up from a blocking read to see whether it was closed.
const POLL: Duration = Duration::from_millis(100);

/// The I/O of one switch port: whatever moves frames between the switch and a NIC.
pub trait PortIo: Send + Sync + 'static {
    /// Waits up to about [`POLL`] for one frame; `Ok(None)` when none came.
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>>;
    /// Sends one frame to the NIC. Best effort, like a real wire.
    fn send(&self, frame: &[u8]) -> io::Result<()>;
}

/// A switch port backed by a UDP socket, talking to one QEMU `-netdev dgram`.
struct UdpPortIo {
    socket: UdpSocket,
}

impl PortIo for UdpPortIo {
    fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        match self.socket.recv(buf) {
            Ok(n) => Ok(Some(n)),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        // An earlier send found the VM's port not bound yet (ICMP unreachable).
                        | io::ErrorKind::ConnectionRefused
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn send(&self, frame: &[u8]) -> io::Result<()> {
        match self.socket.send(frame) {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// What the switch does to frames crossing one port, in both directions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkPolicy {
    /// `false` cuts the link: frames from and to this port are dropped (and counted).
    pub up: bool,
}

impl Default for LinkPolicy {
    fn default() -> Self {
        LinkPolicy { up: true }
    }
}

/// Frame counters of one port, as seen from the switch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PortStats {
    /// Frames received from the NIC.
    pub rx: u64,
    /// Frames sent to the NIC.
    pub tx: u64,
    /// Frames dropped by a policy or a failed send.
    pub dropped: u64,
}

struct Port {
    io: Box<dyn PortIo>,
    policy: Mutex<LinkPolicy>,
    open: AtomicBool,
    rx: AtomicU64,
    tx: AtomicU64,
    dropped: AtomicU64,
}

impl Port {
    fn is_up(&self) -> bool {
        self.policy.lock().unwrap_or_else(|p| p.into_inner()).up
    }
}

struct Switch {
    name: String,
    /// Indexed by port number; `None` once a port is detached (numbers are not reused).
    ports: RwLock<Vec<Option<Arc<Port>>>>,
    /// Learned MAC address → port number.
    fdb: Mutex<HashMap<[u8; 6], usize>>,
    pcap: Mutex<Option<Pcap>>,
}

type Mac = [u8; 6];

fn is_group(mac: &Mac) -> bool {
    mac[0] & 1 == 1
}

impl Switch {
    fn port(&self, id: usize) -> Option<Arc<Port>> {
        let ports = self.ports.read().unwrap_or_else(|p| p.into_inner());
        ports.get(id).and_then(|p| p.clone())
    }

    /// One frame arrived on port `from`: apply policy, learn, and forward.
    fn ingress(&self, from: usize, frame: &[u8]) {
        let Some(port) = self.port(from) else { return };
        if frame.len() < 14 || !port.is_up() {
            port.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        port.rx.fetch_add(1, Ordering::Relaxed);
        if let Some(pcap) = self.pcap.lock().unwrap_or_else(|p| p.into_inner()).as_mut() {
            pcap.write(frame);
        }
        let mut dst: Mac = [0; 6];
        let mut src: Mac = [0; 6];
        dst.copy_from_slice(&frame[0..6]);
        src.copy_from_slice(&frame[6..12]);
        let known = {
            let mut fdb = self.fdb.lock().unwrap_or_else(|p| p.into_inner());
            if !is_group(&src) {
                fdb.insert(src, from);
            }
            if is_group(&dst) {
                None
            } else {
                fdb.get(&dst).copied()
            }
        };
        match known {
            Some(to) if to == from => {}
            Some(to) => self.egress(to, frame),
            None => {
                let targets: Vec<usize> = {
                    let ports = self.ports.read().unwrap_or_else(|p| p.into_inner());
                    (0..ports.len())
                        .filter(|&i| i != from && ports[i].is_some())
                        .collect()
                };
                for to in targets {
                    self.egress(to, frame);
                }
            }
        }
    }

    /// The one place a frame leaves the switch.
    fn egress(&self, to: usize, frame: &[u8]) {
        let Some(port) = self.port(to) else { return };
        if !port.open.load(Ordering::Relaxed) || !port.is_up() || port.io.send(frame).is_err() {
            port.dropped.fetch_add(1, Ordering::Relaxed);
        } else {
            port.tx.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn detach(&self, id: usize) {
        if let Some(port) = self.port(id) {
            port.open.store(false, Ordering::Relaxed);
        }
        let mut ports = self.ports.write().unwrap_or_else(|p| p.into_inner());
        if let Some(slot) = ports.get_mut(id) {
            *slot = None;
        }
        drop(ports);
        self.fdb
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, p| *p != id);
    }
}

/// A shared Ethernet segment. Cloning gives another handle to the same switch; the switch
/// lives while any handle or attached port does.
#[derive(Clone)]
pub struct Wire {
    switch: Arc<Switch>,
}

impl Wire {
    /// A new, empty switch. `name` shows in thread names and messages.
    pub fn new(name: &str) -> Wire {
        Wire {
            switch: Arc::new(Switch {
                name: name.to_string(),
                ports: RwLock::new(Vec::new()),
                fdb: Mutex::new(HashMap::new()),
                pcap: Mutex::new(None),
            }),
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.switch.name
    }

    /// Adds a port for a QEMU `-netdev dgram` NIC: the switch binds a loopback UDP socket
    /// and reserves a loopback UDP port for the VM's end.
    pub fn attach_udp(&self) -> Result<WirePort> {
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .map_err(|e| Error::io("binding a switch port", e))?;
        let switch_addr = socket
            .local_addr()
            .map_err(|e| Error::io("reading a switch port address", e))?;
        let vm_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, free_udp_port()?));
        socket
            .connect(vm_addr)
            .map_err(|e| Error::io("connecting a switch port", e))?;
        socket
            .set_read_timeout(Some(POLL))
            .map_err(|e| Error::io("setting a switch port timeout", e))?;
        let id = self.attach(Box::new(UdpPortIo { socket }))?;
        Ok(WirePort {
            wire: self.clone(),
            id,
            switch_addr,
            vm_addr,
        })
    }

    /// Adds a port with any I/O (the hook for taps and other NIC kinds); returns its number.
    /// The port stays attached until [`Wire::detach`].
    pub fn attach(&self, io: Box<dyn PortIo>) -> Result<usize> {
        let port = Arc::new(Port {
            io,
            policy: Mutex::new(LinkPolicy::default()),
            open: AtomicBool::new(true),
            rx: AtomicU64::new(0),
            tx: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
        });
        let id = {
            let mut ports = self.switch.ports.write().unwrap_or_else(|p| p.into_inner());
            ports.push(Some(port.clone()));
            ports.len() - 1
        };
        let switch = self.switch.clone();
        thread::Builder::new()
            .name(format!("wire-{}-{id}", self.switch.name))
            .spawn(move || {
                let mut buf = vec![0u8; MAX_FRAME];
                while port.open.load(Ordering::Relaxed) {
                    match port.io.recv(&mut buf) {
                        Ok(Some(n)) => switch.ingress(id, &buf[..n]),
                        Ok(None) => {}
                        Err(_) => thread::sleep(POLL),
                    }
                }
            })
            .map_err(|e| Error::io("spawning a switch port thread", e))?;
        Ok(id)
    }

    /// Removes a port: its thread stops and its learned addresses are forgotten.
    pub fn detach(&self, port: usize) {
        self.switch.detach(port);
    }

    /// Sets the policy of one port (for example `LinkPolicy { up: false }` to cut it).
    pub fn set_policy(&self, port: usize, policy: LinkPolicy) {
        if let Some(p) = self.switch.port(port) {
            *p.policy.lock().unwrap_or_else(|p| p.into_inner()) = policy;
        }
    }

    /// The policy of one port, if it is attached.
    pub fn policy(&self, port: usize) -> Option<LinkPolicy> {
        self.switch
            .port(port)
            .map(|p| p.policy.lock().unwrap_or_else(|p| p.into_inner()).clone())
    }

    /// Counters of every attached port, by port number.
    pub fn stats(&self) -> Vec<(usize, PortStats)> {
        let ports = self.switch.ports.read().unwrap_or_else(|p| p.into_inner());
        ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| {
                p.as_ref().map(|p| {
                    (
                        i,
                        PortStats {
                            rx: p.rx.load(Ordering::Relaxed),
                            tx: p.tx.load(Ordering::Relaxed),
                            dropped: p.dropped.load(Ordering::Relaxed),
                        },
                    )
                })
            })
            .collect()
    }

    /// Writes every frame the switch accepts from now on to a pcap file (open it with
    /// tshark or wireshark).
    pub fn capture_to(&self, path: &Path) -> Result<()> {
        let pcap = Pcap::create(path)
            .map_err(|e| Error::io(format_args!("creating {}", path.display()), e))?;
        *self.switch.pcap.lock().unwrap_or_else(|p| p.into_inner()) = Some(pcap);
        Ok(())
    }
}

/// One VM NIC's place on a wire. Dropping it detaches the port.
pub struct WirePort {
    wire: Wire,
    id: usize,
    switch_addr: SocketAddr,
    vm_addr: SocketAddr,
}

impl WirePort {
    /// The port number on its wire (for [`Wire::set_policy`]).
    pub fn id(&self) -> usize {
        self.id
    }

    /// The wire this port is on.
    pub fn wire(&self) -> &Wire {
        &self.wire
    }

    /// The switch's socket address for this port.
    pub fn switch_addr(&self) -> SocketAddr {
        self.switch_addr
    }

    /// The address the VM's end binds.
    pub fn vm_addr(&self) -> SocketAddr {
        self.vm_addr
    }

    /// The `-netdev` value for QEMU.
    pub fn qemu_netdev(&self, id: &str) -> String {
        format!(
            "dgram,id={id},local.type=inet,local.host={},local.port={},\
             remote.type=inet,remote.host={},remote.port={}",
            self.vm_addr.ip(),
            self.vm_addr.port(),
            self.switch_addr.ip(),
            self.switch_addr.port()
        )
    }
}

impl Drop for WirePort {
    fn drop(&mut self) {
        self.wire.detach(self.id);
    }
}

/// A minimal pcap (libpcap 2.4, Ethernet) writer.
struct Pcap {
    out: BufWriter<File>,
}

impl Pcap {
    fn create(path: &Path) -> io::Result<Pcap> {
        let mut out = BufWriter::new(File::create(path)?);
        out.write_all(&0xa1b2_c3d4u32.to_le_bytes())?;
        out.write_all(&2u16.to_le_bytes())?;
        out.write_all(&4u16.to_le_bytes())?;
        out.write_all(&0i32.to_le_bytes())?; // thiszone
        out.write_all(&0u32.to_le_bytes())?; // sigfigs
        out.write_all(&(MAX_FRAME as u32).to_le_bytes())?; // snaplen
        out.write_all(&1u32.to_le_bytes())?; // LINKTYPE_ETHERNET
        out.flush()?;
        Ok(Pcap { out })
    }

    fn write(&mut self, frame: &[u8]) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let len = frame.len() as u32;
        let _ = (|| -> io::Result<()> {
            self.out.write_all(&(now.as_secs() as u32).to_le_bytes())?;
            self.out.write_all(&now.subsec_micros().to_le_bytes())?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(&len.to_le_bytes())?;
            self.out.write_all(frame)?;
            // Flush per frame: a capture is for reading while (or right after) a test runs.
            self.out.flush()
        })();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake VM NIC: the UDP socket QEMU would own.
    struct FakeNic {
        socket: UdpSocket,
    }

    impl FakeNic {
        fn on(port: &WirePort) -> FakeNic {
            let socket = UdpSocket::bind(port.vm_addr()).unwrap();
            socket.connect(port.switch_addr()).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(300)))
                .unwrap();
            FakeNic { socket }
        }

        fn send(&self, dst: Mac, src: Mac, payload: &[u8]) {
            let mut frame = Vec::new();
            frame.extend_from_slice(&dst);
            frame.extend_from_slice(&src);
            frame.extend_from_slice(&[0x88, 0xb5]); // local experimental ethertype
            frame.extend_from_slice(payload);
            self.socket.send(&frame).unwrap();
        }

        /// Payloads of frames that arrive within the read timeout.
        fn received(&self) -> Vec<Vec<u8>> {
            let mut got = Vec::new();
            let mut buf = [0u8; 2048];
            while let Ok(n) = self.socket.recv(&mut buf) {
                got.push(buf[14..n].to_vec());
            }
            got
        }
    }

    const A: Mac = [0x52, 0x54, 0, 0, 0, 0xa];
    const B: Mac = [0x52, 0x54, 0, 0, 0, 0xb];
    const C: Mac = [0x52, 0x54, 0, 0, 0, 0xc];
    const BROADCAST: Mac = [0xff; 6];

    #[test]
    fn broadcast_floods_and_learned_unicast_goes_to_one_port() {
        let wire = Wire::new("test-learn");
        let ports: Vec<WirePort> = (0..3).map(|_| wire.attach_udp().unwrap()).collect();
        let nics: Vec<FakeNic> = ports.iter().map(FakeNic::on).collect();

        nics[0].send(BROADCAST, A, b"who has");
        assert_eq!(nics[1].received(), [b"who has".to_vec()]);
        assert_eq!(nics[2].received(), [b"who has".to_vec()]);
        assert!(nics[0].received().is_empty(), "no echo to the sender");

        // B answers A: the switch learned A on port 0, so only port 0 gets it.
        nics[1].send(A, B, b"is at");
        assert_eq!(nics[0].received(), [b"is at".to_vec()]);
        assert!(nics[2].received().is_empty());

        // Unknown unicast (C never spoke) floods.
        nics[0].send(C, A, b"to c");
        assert_eq!(nics[1].received(), [b"to c".to_vec()]);
        assert_eq!(nics[2].received(), [b"to c".to_vec()]);

        let stats = wire.stats();
        assert_eq!(stats[0].1.rx, 2);
        assert_eq!(stats[0].1.tx, 1);
    }

    #[test]
    fn a_cut_link_drops_both_directions_until_restored() {
        let wire = Wire::new("test-cut");
        let p0 = wire.attach_udp().unwrap();
        let p1 = wire.attach_udp().unwrap();
        let (n0, n1) = (FakeNic::on(&p0), FakeNic::on(&p1));

        wire.set_policy(p1.id(), LinkPolicy { up: false });
        n0.send(BROADCAST, A, b"lost");
        n1.send(BROADCAST, B, b"lost too");
        assert!(n1.received().is_empty());
        assert!(n0.received().is_empty());
        assert_eq!(wire.stats()[1].1.dropped, 2);

        wire.set_policy(p1.id(), LinkPolicy::default());
        n0.send(BROADCAST, A, b"back");
        assert_eq!(n1.received(), [b"back".to_vec()]);
    }

    #[test]
    fn a_detached_port_gets_nothing_more() {
        let wire = Wire::new("test-detach");
        let p0 = wire.attach_udp().unwrap();
        let p1 = wire.attach_udp().unwrap();
        let n0 = FakeNic::on(&p0);
        let n1 = FakeNic::on(&p1);
        drop(p1);
        n0.send(BROADCAST, A, b"anyone?");
        assert!(n1.received().is_empty());
        assert_eq!(wire.stats().len(), 1);
    }

    #[test]
    fn capture_writes_a_pcap_file_with_each_frame() {
        let dir = crate::host::TempDir::new("pcap-test").unwrap();
        let path = dir.path().join("wire.pcap");
        let wire = Wire::new("test-pcap");
        wire.capture_to(&path).unwrap();
        let p0 = wire.attach_udp().unwrap();
        let p1 = wire.attach_udp().unwrap();
        let (n0, n1) = (FakeNic::on(&p0), FakeNic::on(&p1));
        n0.send(BROADCAST, A, b"captured");
        assert_eq!(n1.received().len(), 1);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
        let frame_len = 14 + b"captured".len();
        assert_eq!(bytes.len(), 24 + 16 + frame_len);
        assert!(bytes.ends_with(b"captured"));
    }
}
