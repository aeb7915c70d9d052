//! Raw bytes into the WireGuard message parser: it must never panic, and every accessor of
//! a parsed view must stay in bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vdcnet_appliance::tunnel::inner::InnerHeader;
use vdcnet_appliance::tunnel::Message;

fuzz_target!(|data: &[u8]| {
    match Message::parse(data) {
        Ok(Message::Initiation(i)) => {
            let _ = (
                i.sender(),
                i.ephemeral(),
                i.encrypted_static(),
                i.encrypted_timestamp(),
            );
        }
        Ok(Message::Response(r)) => {
            let _ = (r.sender(), r.receiver(), r.ephemeral(), r.encrypted_empty());
        }
        Ok(Message::CookieReply(c)) => {
            let _ = (c.receiver(), c.nonce(), c.encrypted_cookie());
        }
        Ok(Message::Data(d)) => {
            let _ = (d.receiver(), d.counter());
            assert!(d.payload().len() >= 16);
        }
        Err(_) => {}
    }
    if let Some(h) = InnerHeader::parse(data) {
        assert!(h.total_len() <= data.len());
    }
});
