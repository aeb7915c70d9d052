//! An in-memory NIC for the host tests: the test pushes frames into `rx` and reads what
//! the appliance sent from `tx`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::vec::Vec;
use vdcnet_hal::net::NetDevice;

#[derive(Default)]
pub struct Queues {
    pub rx: VecDeque<Vec<u8>>,
    pub tx: Vec<Vec<u8>>,
}

pub struct MockNic {
    pub mac: [u8; 6],
    pub q: Rc<RefCell<Queues>>,
}

impl MockNic {
    /// A NIC with `mac`, and the queues the test shares with it.
    pub fn new(mac: [u8; 6]) -> (MockNic, Rc<RefCell<Queues>>) {
        let q = Rc::new(RefCell::new(Queues::default()));
        (MockNic { mac, q: q.clone() }, q)
    }
}

impl NetDevice for MockNic {
    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }
    fn receive_with<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        let frame = self.q.borrow_mut().rx.pop_front()?;
        Some(f(&frame))
    }
    fn transmit_with<T>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> T) -> Option<T> {
        let mut buf = vec![0u8; len];
        let r = f(&mut buf);
        self.q.borrow_mut().tx.push(buf);
        Some(r)
    }
    fn can_transmit(&mut self) -> bool {
        true
    }
}

/// A host's answer to an ARP request for `ip` in `arp` (an ARP payload): the requester's
/// MAC and the reply's ARP payload from `mac`; `None` for anything else.
pub fn arp_reply(
    arp: &[u8],
    ip: smoltcp::wire::Ipv4Address,
    mac: [u8; 6],
) -> Option<([u8; 6], Vec<u8>)> {
    use smoltcp::wire::{ArpOperation, ArpPacket, ArpRepr, EthernetAddress};
    let p = ArpPacket::new_checked(arp).ok()?;
    let ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr,
        source_protocol_addr,
        target_protocol_addr,
        ..
    } = ArpRepr::parse(&p).ok()?
    else {
        return None;
    };
    if target_protocol_addr != ip {
        return None;
    }
    let reply = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Reply,
        source_hardware_addr: EthernetAddress(mac),
        source_protocol_addr: target_protocol_addr,
        target_hardware_addr: source_hardware_addr,
        target_protocol_addr: source_protocol_addr,
    };
    let mut b = vec![0u8; reply.buffer_len()];
    reply.emit(&mut ArpPacket::new_unchecked(&mut b[..]));
    Some((source_hardware_addr.0, b))
}
