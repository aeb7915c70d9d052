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
