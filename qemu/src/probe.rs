//! Talking to an appliance's services from the host: TCP echo round trips.

use crate::error::{Error, ErrorKind, Result};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

/// Connects to `addr`, sends `payload` and reads back as many bytes; returns what came
/// back. Every step is bounded by `timeout`.
pub fn tcp_echo(addr: SocketAddr, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
    let fail = |step: &str, e: std::io::Error| {
        Error::new(ErrorKind::Net, format!("TCP echo via {addr}: {step}: {e}"))
    };
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail("connect", e))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| fail("set timeouts", e))?;
    stream.write_all(payload).map_err(|e| fail("send", e))?;
    let mut back = vec![0u8; payload.len()];
    let mut got = 0;
    while got < back.len() {
        match stream.read(&mut back[got..]) {
            Ok(0) => {
                back.truncate(got);
                return Err(Error::new(
                    ErrorKind::Net,
                    format!(
                        "TCP echo via {addr}: connection closed after {got} of {} bytes",
                        payload.len()
                    ),
                ));
            }
            Ok(n) => got += n,
            Err(e) => return Err(fail(&format!("receive (after {got} bytes)"), e)),
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    Ok(back)
}

/// [`tcp_echo`], tried again every 200 ms until it succeeds or `timeout` passes. Through
/// a user-mode forward the host side accepts at once and then closes if the guest does
/// not answer yet, so the first attempts right after boot may fail.
pub fn tcp_echo_retry(addr: SocketAddr, payload: &[u8], timeout: Duration) -> Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    loop {
        let attempt = deadline
            .saturating_duration_since(Instant::now())
            .clamp(Duration::from_millis(500), Duration::from_secs(5));
        match tcp_echo(addr, payload, attempt) {
            Ok(back) => return Ok(back),
            Err(e) if Instant::now() >= deadline => {
                return Err(Error::new(
                    ErrorKind::Net,
                    format!("no TCP echo via {addr} within {timeout:?}; last: {e}"),
                ))
            }
            Err(_) => thread::sleep(Duration::from_millis(200)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn echo_round_trip_against_a_local_echo_server() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).unwrap();
            s.write_all(&buf[..n]).unwrap();
        });
        let back = tcp_echo(addr, b"hello", Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert_eq!(back, b"hello");
    }

    #[test]
    fn a_server_that_closes_early_is_an_error() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let t = thread::spawn(move || drop(server.accept().unwrap()));
        let err = tcp_echo(addr, b"hello", Duration::from_secs(5)).unwrap_err();
        t.join().unwrap();
        assert_eq!(err.kind(), ErrorKind::Net);
    }
}
