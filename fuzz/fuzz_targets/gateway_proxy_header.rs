//! Raw bytes into the PROXY protocol v2 parser: no panic, lengths in bounds; and the
//! header written for any pair of addresses parses back to them.
#![no_main]

use core::net::{IpAddr, SocketAddr};

use libfuzzer_sys::fuzz_target;
use vdcnet_appliance::gateway::proxy;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = proxy::parse(data) {
        assert!(parsed.len >= 16 && parsed.len <= data.len());
    }
    if data.len() >= 36 {
        let v6 = |b: &[u8]| {
            let mut o = [0u8; 16];
            o.copy_from_slice(b);
            IpAddr::from(o)
        };
        let v4 = |b: &[u8]| IpAddr::from([b[0], b[1], b[2], b[3]]);
        let (src, dst) = if data[0] & 1 == 0 {
            (v4(&data[2..6]), v4(&data[6..10]))
        } else {
            (v6(&data[2..18]), v6(&data[18..34]))
        };
        let client = SocketAddr::new(src, u16::from_be_bytes([data[34], data[35]]));
        let local = SocketAddr::new(dst, u16::from_be_bytes([data[35], data[34]]));
        let header = proxy::header(client, local);
        let parsed = proxy::parse(header.as_bytes()).expect("our own header parses");
        assert_eq!(parsed.len, header.as_bytes().len());
        assert_eq!(parsed.addresses, Some((client, local)));
    }
});
