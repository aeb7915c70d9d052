//! Raw bytes into the ClientHello reader, fed in pieces: it must never panic, give the
//! same answer however the bytes are split, keep every byte it was fed (up to its bound)
//! and never ask for more once it has answered.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vdcnet_appliance::gateway::sni::{SniReader, Sniff, MAX_CLIENT_HELLO, MAX_RECORD_OVERHEAD};

fuzz_target!(|data: &[u8]| {
    // The first byte chooses where to split the rest.
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let whole = SniReader::new().feed(rest);
    let at = usize::from(split) * rest.len() / 256;
    let mut pieces = SniReader::new();
    let first = pieces.feed(&rest[..at]);
    let second = pieces.feed(&rest[at..]);
    if first != Sniff::NeedMore {
        assert_eq!(first, second, "an answer changed");
    }
    assert_eq!(whole, second, "the split changed the answer");
    if rest.len() <= MAX_CLIENT_HELLO + MAX_RECORD_OVERHEAD {
        assert_eq!(pieces.buffered(), rest);
    }
    if let Sniff::Sni(name) = &second {
        assert!(!name.is_empty() && name.len() <= 253);
        assert!(!name.bytes().any(|b| b.is_ascii_uppercase()));
    }
    let _ = second.alert();
});
