//! A smoltcp host on one of the appliance's in-memory NICs, for the host tests that open
//! real TCP connections to (and through) the appliance.

use super::test_nic::Queues;
use smoltcp::iface::{Config as IfaceConfig, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use smoltcp::wire::{EthernetAddress, HardwareAddress, IpCidr, IpEndpoint};
use std::cell::RefCell;
use std::rc::Rc;
use std::vec::Vec;

/// The client's side of a NIC: what the appliance sent is received, what the client sends
/// arrives at the appliance.
pub struct Wire(Rc<RefCell<Queues>>);

pub struct Rx(Vec<u8>);
pub struct Tx(Rc<RefCell<Queues>>);

impl smoltcp::phy::RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl smoltcp::phy::TxToken for Tx {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.0.borrow_mut().rx.push_back(buf);
        r
    }
}

impl Device for Wire {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx)> {
        let mut q = self.0.borrow_mut();
        if q.tx.is_empty() {
            return None;
        }
        let frame = q.tx.remove(0);
        Some((Rx(frame), Tx(self.0.clone())))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx> {
        Some(Tx(self.0.clone()))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = 1514;
        caps
    }
}

/// A host on one of the appliance's NICs.
pub struct Client {
    pub iface: Interface,
    pub wire: Wire,
    pub sockets: SocketSet<'static>,
}

impl Client {
    pub fn new(q: Rc<RefCell<Queues>>, addr: &str, gateway: &str, now: Instant) -> Client {
        Client::with_mac(q, [0x02, 0, 0, 0, 0, 0x99], addr, gateway, now)
    }

    /// A host with its own MAC address (for several hosts on one test).
    pub fn with_mac(
        q: Rc<RefCell<Queues>>,
        mac: [u8; 6],
        addr: &str,
        gateway: &str,
        now: Instant,
    ) -> Client {
        let mut wire = Wire(q);
        let cfg = IfaceConfig::new(HardwareAddress::Ethernet(EthernetAddress(mac)));
        let mut iface = Interface::new(cfg, &mut wire, now);
        let cidr: IpCidr = addr.parse().unwrap();
        iface.update_ip_addrs(|a| a.push(cidr).unwrap());
        iface
            .routes_mut()
            .add_default_ipv4_route(gateway.parse().unwrap())
            .unwrap();
        Client {
            iface,
            wire,
            sockets: SocketSet::new(Vec::new()),
        }
    }

    pub fn connect(&mut self, to: &str, port: u16, local_port: u16) -> SocketHandle {
        let s = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; 65536]),
            tcp::SocketBuffer::new(vec![0; 16384]),
        );
        let h = self.sockets.add(s);
        let remote = IpEndpoint::new(to.parse().unwrap(), port);
        let cx = self.iface.context();
        self.sockets
            .get_mut::<tcp::Socket>(h)
            .connect(cx, remote, local_port)
            .unwrap();
        h
    }

    pub fn socket(&mut self, h: SocketHandle) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(h)
    }
}
