//! A script of events into the gateway core: accepts on the HTTP, TLS and tcp ports,
//! client and backend bytes, connects that succeed or fail, ends of stream and time
//! passing, all chosen by the input. No panic; no action for a connection after its
//! Close; the open count matches; after every deadline has passed nothing is left open.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use smoltcp::time::{Duration, Instant};
use vdcnet_appliance::config;
use vdcnet_appliance::gateway::{Action, ConnId, Gateway};

const CONFIG: &str = "\
[Link]
Address = 203.0.113.10/24
[Gateway]
Listen = 203.0.113.10
MaxConnections = 8
[Service]
Name = a.example.org
Mode = http
Backend = 10.20.1.10:80, 10.20.2.10:80
[Service]
Name = *.example.org
Mode = tls
Backend = 10.20.1.10:443
ProxyProtocol = v2
[Service]
Name = ssh
Mode = tcp
Port = 2222
Backend = 10.20.1.10:22
";

fuzz_target!(|data: &[u8]| {
    let cfg = config::parse(CONFIG.as_bytes()).expect("the config parses");
    let mut now = Instant::from_millis(0);
    let mut gw = Gateway::new(&cfg.gateway.expect("a gateway"), now);
    let mut open: BTreeMap<ConnId, ()> = BTreeMap::new();
    let mut ids: Vec<ConnId> = Vec::new();
    let mut out = Vec::new();
    let mut rest = data;
    while let [op, arg, tail @ ..] = rest {
        rest = tail;
        let pick = ids.get(usize::from(*arg) % ids.len().max(1)).copied();
        match op % 9 {
            0 => {
                let port = [80, 443, 2222, 9][usize::from(*arg) % 4];
                let client = "198.51.100.7:40000".parse().unwrap();
                let local = std::net::SocketAddr::new("203.0.113.10".parse().unwrap(), port);
                if let Ok(id) = gw.accept(client, local, now, &mut out) {
                    open.insert(id, ());
                    ids.push(id);
                }
            }
            1 | 2 => {
                let n = usize::from(*arg).min(rest.len());
                let (bytes, tail) = rest.split_at(n);
                rest = tail;
                if let Some(id) = pick {
                    if op % 9 == 1 {
                        gw.client_data(id, bytes, now, &mut out);
                    } else {
                        gw.backend_data(id, bytes, now, &mut out);
                    }
                }
            }
            3 => pick.into_iter().for_each(|id| gw.backend_connected(id, now, &mut out)),
            4 => pick.into_iter().for_each(|id| gw.backend_failed(id, now, &mut out)),
            5 => pick.into_iter().for_each(|id| gw.client_closed(id, &mut out)),
            6 => pick.into_iter().for_each(|id| gw.backend_closed(id, now, &mut out)),
            7 => {
                now += Duration::from_millis(u64::from(*arg) * 250);
                gw.poll(now, &mut out);
            }
            _ => {
                while let Some(job) = gw.next_check(now) {
                    gw.check_done(&job, arg & 1 == 0, now);
                }
            }
        }
        for (id, action) in out.drain(..) {
            assert!(open.contains_key(&id), "{action:?} for a closed connection");
            if action == Action::Close {
                open.remove(&id);
            }
        }
        assert_eq!(gw.open_connections(), open.len());
    }
    // Every deadline (head 10 s, connect 5 s, idle 60 s) passes: everything closes.
    now += Duration::from_secs(61);
    gw.poll(now, &mut out);
    now += Duration::from_secs(61);
    gw.poll(now, &mut out);
    for (id, action) in out.drain(..) {
        if action == Action::Close {
            open.remove(&id);
        }
    }
    assert_eq!(gw.open_connections(), 0, "left open: {open:?}");
});
