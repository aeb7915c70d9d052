//! Raw bytes into the HTTP head readers: request heads (and the head written for the
//! backend from an accepted one, which must parse again to the same routing), response
//! heads, and the chunked framing tracker. None may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vdcnet_appliance::gateway::http::{
    parse_request, parse_response, write_backend_head, BodyReader, Chunked, Forwarded, Framing,
    Status, MAX_HEAD, MAX_HEADERS,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(req)) = parse_request(data) {
        assert!(req.len <= data.len() && req.len <= MAX_HEAD);
        assert_ne!(req.body, Framing::UntilClose);
        let mut out = Vec::new();
        let fwd = Forwarded {
            client: core::net::IpAddr::from([198, 51, 100, 7]),
            proto: "http",
        };
        write_backend_head(&data[..req.len], &req, fwd, &mut out);
        // The backend head is one whole, valid head (it may have a few more header lines
        // than a client may send us, as we add ours) ...
        let mut headers = [httparse::EMPTY_HEADER; 2 * MAX_HEADERS];
        let status = httparse::Request::new(&mut headers).parse(&out);
        assert_eq!(status, Ok(httparse::Status::Complete(out.len())), "backend head");
        // ... and routes, frames and upgrades as the client's did.
        match parse_request(&out) {
            Ok(Some(again)) => {
                assert_eq!(again.len, out.len());
                assert_eq!(again.host, req.host);
                assert_eq!(again.body, req.body);
                assert_eq!(again.upgrade, req.upgrade);
            }
            Err(Status::HeadTooLarge) => {}
            other => panic!("the backend head reads back as {other:?}"),
        }
        let mut body = BodyReader::new(req.body);
        let _ = body.feed(&data[req.len..]);
    }
    for (head, upgrade) in [(false, false), (true, true)] {
        if let Ok(Some(resp)) = parse_response(data, head, upgrade) {
            assert!(resp.len <= data.len());
            let _ = BodyReader::new(resp.body).feed(&data[resp.len..]);
        }
    }
    let mut chunked = Chunked::default();
    if let Ok(n) = chunked.feed(data) {
        assert!(n <= data.len());
        if n < data.len() {
            assert!(chunked.is_done(), "stopped early without being done");
        }
    }
});
