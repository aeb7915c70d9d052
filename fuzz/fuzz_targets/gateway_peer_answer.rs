//! Raw bytes as a peer gateway's status answer: no panic; a refused answer changes
//! nothing; an accepted one stays within the bounds.
#![no_main]

use core::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use smoltcp::time::Instant;
use vdcnet_appliance::gateway::peers::{GatewayPeers, MAX_PUBLIC, MAX_SERVICES, STATUS_PORT};

fuzz_target!(|data: &[u8]| {
    let ip: IpAddr = "10.20.2.1".parse().unwrap();
    let mut peers = GatewayPeers::new(&[ip], Instant::from_millis(0));
    let from = SocketAddr::new(ip, STATUS_PORT);
    let now = Instant::from_millis(1);
    match peers.answer(from, data, now) {
        Ok(()) => {
            let p = &peers.peers()[0];
            assert!(p.public.len() <= MAX_PUBLIC && p.services.len() <= MAX_SERVICES);
            assert!(p.is_alive(now));
        }
        Err(_) => assert!(!peers.peers()[0].is_alive(now)),
    }
});
