//! Untrusted bytes into the metrics service's request handling: the head judge on the
//! whole input, and a connection fed the input in chunks whose sizes come from its first
//! byte, with time advancing. Nothing may panic; once [`MAX_HEAD`] bytes have arrived the
//! connection has an answer; every answer has a response head.
#![no_main]

use libfuzzer_sys::fuzz_target;
use smoltcp::time::{Duration, Instant};
use vdcnet_appliance::metrics::http::{judge, Conn, MAX_HEAD};

fuzz_target!(|data: &[u8]| {
    if let Some(a) = judge(data) {
        assert!(a.head(a.error_body().len()).starts_with(b"HTTP/1.1 "));
    }
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(first % 64) + 1;
    let mut now = Instant::from_secs(1);
    let mut conn = Conn::new(now);
    let mut answer = None;
    let mut fed = 0;
    for part in rest.chunks(chunk) {
        now += Duration::from_millis(u64::from(first));
        fed += part.len().min(conn.room());
        answer = answer.or(conn.received(part, now));
        let _ = conn.timed_out(now);
    }
    if fed >= MAX_HEAD {
        assert!(answer.is_some());
    }
});
