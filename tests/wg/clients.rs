//! Clients that run inside a namespace: a TCP echo client and a UDP sender (python3,
//! started with `ip netns exec`), and a deterministic source of junk bytes.

use super::{net_error, pipe, text};
use std::net::{IpAddr, Ipv4Addr};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::{Netns, Result};

const TCP_ECHO_CLIENT: &str = r#"
import socket, sys, threading
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
data = sys.stdin.buffer.read()
s = socket.create_connection((host, port), timeout=timeout)
got, err = [], []
def reader():
    try:
        while True:
            b = s.recv(65536)
            if not b:
                return
            got.append(b)
    except Exception as e:
        err.append(e)
t = threading.Thread(target=reader)
t.start()
s.sendall(data)
s.shutdown(socket.SHUT_WR)
t.join()
sys.stdout.buffer.write(b"".join(got))
if err:
    sys.stderr.write("receiving: %r\n" % err[0])
    sys.exit(1)
"#;

/// Sends `payload` to the TCP echo service at `addr:port` from inside `ns`, half-closes,
/// and returns everything read back until the server closed.
pub fn tcp_echo_in(ns: &Netns, addr: IpAddr, port: u16, payload: &[u8]) -> Result<Vec<u8>> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name(), "python3", "-c", TCP_ECHO_CLIENT])
        .arg(addr.to_string())
        .arg(port.to_string())
        .arg("20");
    pipe(&mut cmd, payload).map(|out| out.stdout).map_err(|e| {
        net_error(format!(
            "TCP echo to [{addr}]:{port} from namespace {}",
            ns.name()
        ))
        .with_evidence(e.to_string())
    })
}

/// [`tcp_echo_in`], retried while it fails until `timeout` passes (the first attempt may
/// meet a handshake in progress).
pub fn tcp_echo_in_retry(
    ns: &Netns,
    addr: IpAddr,
    port: u16,
    payload: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>> {
    let deadline = Instant::now() + timeout;
    loop {
        // Only a failed connection is retried: bytes that came back wrong are the answer.
        match tcp_echo_in(ns, addr, port, payload) {
            Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(500)),
            other => return other,
        }
    }
}

const UDP_SENDER: &str = r#"
import socket, sys, time
host, port = sys.argv[1], int(sys.argv[2])
data = sys.stdin.buffer.read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
print(s.getsockname()[1], flush=True)
i = 0
while i < len(data):
    n = int.from_bytes(data[i:i + 4], "big")
    s.sendto(data[i + 4:i + 4 + n], (host, port))
    i += 4 + n
    time.sleep(0.005)
"#;

/// Sends each datagram to `to:port` from one ephemeral UDP port inside `ns`; returns that
/// source port.
pub fn send_udp_in(ns: &Netns, to: Ipv4Addr, port: u16, datagrams: &[Vec<u8>]) -> Result<u16> {
    let mut framed = Vec::new();
    for d in datagrams {
        framed.extend_from_slice(&(d.len() as u32).to_be_bytes());
        framed.extend_from_slice(d);
    }
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name(), "python3", "-c", UDP_SENDER])
        .arg(to.to_string())
        .arg(port.to_string());
    let out = pipe(&mut cmd, &framed)?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .map_err(|_| net_error(format!("the UDP sender printed no port: {}", text(&out))))
}

/// A small deterministic generator for junk bytes (xorshift64*).
pub struct Junk(u64);

impl Junk {
    /// Seeded from the clock, printed by the caller so a failure can be replayed.
    pub fn new(seed: u64) -> Junk {
        Junk(seed | 1)
    }

    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// `n` random bytes.
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}
