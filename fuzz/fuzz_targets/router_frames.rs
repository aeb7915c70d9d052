//! Untrusted bytes into the forwarding plane. The first byte picks what gets them:
//! - 0: the DHCP server (`DhcpServer::handle`), as a UDP payload from a segment host
//!   (with a static lease in its subnet and a visiting one outside it);
//! - 1: the masquerade, as an outbound then an inbound IPv4 packet;
//! - otherwise: a whole appliance (an underlay link with `Egress = nat`, a segment link
//!   with DHCP, router advertisements, a home and a visiting static lease, a tunnel peer
//!   and Babel) fed the rest as Ethernet frames
//!   on its ports, polled as time advances.
//!
//! Nothing may panic; every frame counts as received on its link.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use vdcnet_appliance::config;
use vdcnet_appliance::router::dhcp::{DhcpConfig, DhcpServer};
use vdcnet_appliance::router::nat::Nat;
use vdcnet_appliance::runtime::{Appliance, Options};
use vdcnet_hal::net::NetDevice;

const CONFIG: &str = "\
[Link]
Address = 192.168.100.1/24, fd00:100::1/64
Gateway = 192.168.100.254
Egress = nat
[Link]
Role = segment
Address = 10.20.1.1/24, fd20:ab:cd:1::1/64
StaticLease = 52:54:00:aa:bb:01, 10.20.1.10
StaticLease = 52:54:00:aa:bb:02, 10.20.2.20
[Interface]
PrivateKey = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=
[Peer]
PublicKey = 3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=
Endpoint = 192.168.100.2:51820
AllowedIPs = 10.20.2.0/24, fd20:ab:cd:2::/64
[Routing]
Networks = 10.20.0.0/16, fd20:ab:cd::/48
";

/// A deterministic generator: fuzzing wants reproducible runs, not secrecy.
struct XorShift(u64);

impl rand_core::RngCore for XorShift {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = self.next_u64() as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rand_core::CryptoRng for XorShift {}

struct Nic {
    mac: [u8; 6],
    rx: Rc<RefCell<VecDeque<Vec<u8>>>>,
}

impl NetDevice for Nic {
    fn mac_address(&self) -> [u8; 6] {
        self.mac
    }
    fn receive_with<T>(&mut self, f: impl FnOnce(&[u8]) -> T) -> Option<T> {
        let frame = self.rx.borrow_mut().pop_front()?;
        Some(f(&frame))
    }
    fn transmit_with<T>(&mut self, len: usize, f: impl FnOnce(&mut [u8]) -> T) -> Option<T> {
        if len > self.max_frame_len() {
            return None;
        }
        let mut buf = vec![0u8; len];
        Some(f(&mut buf))
    }
    fn can_transmit(&mut self) -> bool {
        true
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick {
        0 => {
            let mut s = DhcpServer::new(DhcpConfig {
                addr: smoltcp::wire::Ipv4Address::new(10, 20, 1, 1),
                prefix_len: 29,
                lease_secs: 600,
                static_leases: vec![
                    (smoltcp::wire::EthernetAddress([2, 0, 0, 0, 0, 3]), smoltcp::wire::Ipv4Address::new(10, 20, 1, 3)),
                    (smoltcp::wire::EthernetAddress([2, 0, 0, 0, 0, 9]), smoltcp::wire::Ipv4Address::new(10, 20, 9, 9)),
                ],
                dns: None,
                mtu: Some(1500),
            });
            let mut out = [0u8; 1500];
            for (t, chunk) in rest.split(|&b| b == 0xa5).enumerate() {
                if let Ok(Some(r)) = s.handle(t as u64 * 7, chunk, &mut out) {
                    assert!(r.len <= out.len());
                }
            }
        }
        1 => {
            let mut nat = Nat::new(8, smoltcp::wire::Ipv4Address::new(192, 168, 100, 1), 20000..=20015);
            let mut buf = rest.to_vec();
            let _ = nat.outbound(1, &mut buf);
            let _ = nat.inbound(2, &mut buf);
            assert!(nat.len() <= 8);
        }
        _ => {
            let cfg = config::parse(CONFIG.as_bytes()).expect("the fuzz config parses");
            let queues: Vec<Rc<RefCell<VecDeque<Vec<u8>>>>> =
                (0..2).map(|_| Rc::default()).collect();
            let nics = (0..2)
                .map(|i| Nic {
                    mac: [0x52, 0x54, 0, 0, 0, i as u8 + 1],
                    rx: queues[i].clone(),
                })
                .collect();
            let opts = Options {
                seed: 7,
                ..Options::default()
            };
            let Ok(mut app) = Appliance::new(&cfg, nics, opts, Some(XorShift(0x9e37_79b9)), 0)
            else {
                panic!("the fuzz appliance boots");
            };
            let mut console = String::new();
            let mut sent = [0u64; 2];
            let mut rest = rest;
            let mut t = 0u64;
            // Each frame: a selector byte (port, and whether to aim it at our MAC), a
            // length byte (x 8), then the bytes.
            while rest.len() >= 2 {
                let (sel, len) = (rest[0], usize::from(rest[1]) * 8);
                let body = &rest[2..(2 + len).min(rest.len())];
                rest = &rest[2 + body.len()..];
                let port = usize::from(sel & 1);
                let mut frame = body.to_vec();
                if sel & 2 != 0 && frame.len() >= 6 {
                    frame[..6].copy_from_slice(&[0x52, 0x54, 0, 0, 0, port as u8 + 1]);
                }
                queues[port].borrow_mut().push_back(frame);
                sent[port] += 1;
                t += 1000;
                app.poll(t, 0, &mut console);
            }
            for _ in 0..5 {
                t += 1_000_000;
                app.poll(t, 0, &mut console);
            }
            let c = app.counters();
            assert_eq!([c[0].rx_frames, c[1].rx_frames], sent);
        }
    }
});
