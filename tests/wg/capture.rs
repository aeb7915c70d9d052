//! The underlay on the wire: tcpdump on a namespace's interface into a pcap file, the
//! UDP datagrams in it (a small pcap reader), and tshark's dissection of every frame.

use super::net_error;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};
use vdcnet_qemu::{Error, ErrorKind, Netns, Result, TempDir};

/// A tcpdump writing every frame on a namespace's interface to a pcap file. Killed on drop.
pub struct Capture {
    child: Option<Child>,
    path: PathBuf,
    _dir: TempDir,
    stderr: mpsc::Receiver<String>,
}

impl Capture {
    /// Starts tcpdump on `iface` in `ns` and returns once it is listening.
    pub fn start(ns: &Netns, iface: &str) -> Result<Capture> {
        let dir = TempDir::new("capture")?;
        let path = dir.path().join("underlay.pcap");
        let mut child = Command::new("ip")
            .args([
                "netns",
                "exec",
                ns.name(),
                "tcpdump",
                "-i",
                iface,
                "-n",
                "-s",
                "0",
            ])
            // Each frame handed over and written at once (not in blocks), so stopping
            // loses nothing already seen; -Z root: keep the right to write the file.
            .args(["--immediate-mode", "-U", "-Z", "root", "-w"])
            .arg(&path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| Error::new(ErrorKind::Spawn, format!("cannot start tcpdump: {e}")))?;
        let (tx, rx) = mpsc::channel();
        let err = child.stderr.take().expect("piped stderr");
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut cap = Capture {
            child: Some(child),
            path,
            _dir: dir,
            stderr: rx,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match cap.stderr.recv_timeout(left) {
                Ok(line) if line.contains("listening on") => return Ok(cap),
                Ok(line) => {
                    seen.push_str(&line);
                    seen.push('\n');
                }
                Err(_) => {
                    cap.stop_child();
                    return Err(Error::new(
                        ErrorKind::Spawn,
                        format!(
                            "tcpdump on {iface} in {} did not start listening",
                            ns.name()
                        ),
                    )
                    .with_evidence(seen));
                }
            }
        }
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGINT: tcpdump flushes and closes the file.
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .stdin(Stdio::null())
                .output();
            let deadline = Instant::now() + Duration::from_secs(5);
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Stops the capture and returns the pcap file's path (valid while `self` lives).
    pub fn stop(&mut self) -> &Path {
        self.stop_child();
        &self.path
    }

    /// What tcpdump said on stderr since it started listening (its drop counts once
    /// stopped).
    pub fn messages(&self) -> String {
        self.stderr.try_iter().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        self.stop_child();
    }
}

/// A UDP datagram over IPv4, as read from a capture.
#[derive(Clone, Debug)]
pub struct Datagram {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port.
    pub sport: u16,
    /// Destination port.
    pub dport: u16,
    /// The UDP payload.
    pub payload: Vec<u8>,
}

/// Every UDP-over-IPv4 datagram (first fragments only) of an Ethernet pcap file.
pub fn udp_datagrams(pcap: &Path) -> Result<Vec<Datagram>> {
    let mut bytes = Vec::new();
    File::open(pcap)
        .and_then(|mut f| f.read_to_end(&mut bytes))
        .map_err(|e| Error::new(ErrorKind::Io, format!("reading {}: {e}", pcap.display())))?;
    let bad = |why: &str| net_error(format!("{}: {why}", pcap.display()));
    if bytes.len() < 24 {
        return Err(bad("shorter than a pcap header"));
    }
    let u32_at = |b: &[u8], at: usize, le: bool| {
        let a: [u8; 4] = b[at..at + 4].try_into().expect("four bytes");
        if le {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let le = match &bytes[..4] {
        [0xd4, 0xc3, 0xb2, 0xa1] | [0x4d, 0x3c, 0xb2, 0xa1] => true,
        [0xa1, 0xb2, 0xc3, 0xd4] | [0xa1, 0xb2, 0x3c, 0x4d] => false,
        _ => return Err(bad("not a pcap file")),
    };
    if u32_at(&bytes, 20, le) != 1 {
        return Err(bad("not an Ethernet capture"));
    }
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let incl = u32_at(&bytes, at + 8, le) as usize;
        let start = at + 16;
        let end = (start + incl).min(bytes.len());
        at = start + incl;
        let frame = &bytes[start..end];
        if frame.len() < 14 + 20 || frame[12..14] != [0x08, 0x00] {
            continue;
        }
        let ip = &frame[14..];
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let frag_offset = u16::from_be_bytes([ip[6], ip[7]]) & 0x1fff;
        if ip[0] >> 4 != 4 || ip[9] != 17 || frag_offset != 0 || ip.len() < ihl + 8 {
            continue;
        }
        let udp = &ip[ihl..];
        let len = usize::from(u16::from_be_bytes([udp[4], udp[5]]));
        let payload_end = len.clamp(8, udp.len());
        out.push(Datagram {
            src: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
            dst: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
            sport: u16::from_be_bytes([udp[0], udp[1]]),
            dport: u16::from_be_bytes([udp[2], udp[3]]),
            payload: udp[8..payload_end].to_vec(),
        });
    }
    Ok(out)
}

pub use vdcnet_tests::dissect;
