//! `[Metrics]`: where the appliance serves its Prometheus metrics.
//!
//! ```text
//! [Metrics]
//! Enabled = yes                     # optional, default yes
//! Listen = 10.20.1.1:9100           # optional, repeatable; one of the appliance's addresses
//! ```
//!
//! Without `Listen` (and without the section at all) the service listens on port
//! [`DEFAULT_METRICS_PORT`] of every segment and `[Interface]` address: those are reached
//! only from the tenant's segments and through the tunnel. An underlay address is served
//! only when a `Listen` line names it. Whether a `Listen` address is one of ours is checked
//! once the whole file is read ([`check_addresses`]), since `[Metrics]` may come before the
//! `[Link]` that holds it.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use smoltcp::wire::IpAddress;

use super::link::yes_no;
use super::shared::{lookup, unknown_key, Seen, Single};
use super::values;
use super::MetricsConfig;
use crate::runtime::ECHO_PORT;

/// `Listen` lines per `[Metrics]`.
pub const MAX_METRICS_LISTEN: usize = 8;
/// The port served when `[Metrics]` names no `Listen` (node_exporter's).
pub const DEFAULT_METRICS_PORT: u16 = 9100;

#[derive(Clone, Copy)]
enum MetricsKey {
    Enabled,
    Listen,
}

const METRICS_KEYS: &[(&str, MetricsKey)] = &[
    ("Enabled", MetricsKey::Enabled),
    ("Listen", MetricsKey::Listen),
];

pub(super) struct MetricsBuilder {
    header: usize,
    keep: bool,
    enabled: Single<bool>,
    listen: Vec<((IpAddress, u16), usize)>,
    over_limit: bool,
}

impl MetricsBuilder {
    pub(super) fn new(header: usize, keep: bool) -> MetricsBuilder {
        MetricsBuilder {
            header,
            keep,
            enabled: Single::default(),
            listen: Vec::new(),
            over_limit: false,
        }
    }

    pub(super) fn entry(&mut self, seen: &mut Seen, line: usize, key: &str, value: &str) {
        let Some((name, key)) = lookup(key, METRICS_KEYS) else {
            return unknown_key(seen, line, key, "[Metrics]");
        };
        if value.is_empty() {
            return seen.error(line, format!("{name} has no value"));
        }
        match key {
            MetricsKey::Enabled => self.enabled.set(seen, name, line, |_| yes_no(name, value)),
            MetricsKey::Listen => {
                for item in values::list_items(value) {
                    if let Err(message) = self.listen(item, line) {
                        seen.error(line, message);
                    }
                }
            }
        }
    }

    fn listen(&mut self, item: &str, line: usize) -> Result<(), String> {
        let endpoint = listen_endpoint(item)?;
        if let Some((_, first)) = self.listen.iter().find(|(e, _)| *e == endpoint) {
            return Err(format!("Listen {item} is already given at line {first}"));
        }
        if self.listen.len() >= MAX_METRICS_LISTEN {
            if self.over_limit {
                return Ok(());
            }
            self.over_limit = true;
            return Err(format!(
                "more than {MAX_METRICS_LISTEN} Listen addresses in [Metrics]"
            ));
        }
        self.listen.push((endpoint, line));
        Ok(())
    }

    pub(super) fn finish(self, seen: &mut Seen) -> Option<MetricsConfig> {
        if let (Some(false), Some(line), Some((_, listen))) =
            (self.enabled.value, self.enabled.line, self.listen.first())
        {
            seen.error(
                line,
                format!("Enabled = no, yet Listen is given at line {listen}; keep one of them"),
            );
        }
        self.keep.then(|| MetricsConfig {
            enabled: self.enabled.value.unwrap_or(true),
            listen: self.listen,
            line: self.header,
        })
    }
}

/// `10.20.1.1:9100` or `[fd20:ab:cd:1::1]:9100`.
fn listen_endpoint(text: &str) -> Result<(IpAddress, u16), String> {
    let (host, port) = match text.strip_prefix('[') {
        Some(rest) => rest
            .split_once("]:")
            .ok_or_else(|| format!("Listen {text:?} is not [IPv6 address]:port"))?,
        None => text
            .rsplit_once(':')
            .filter(|(host, _)| !host.contains(':'))
            .ok_or_else(|| {
                format!("Listen {text:?} is not ADDRESS:PORT (an IPv6 address goes in brackets)")
            })?,
    };
    let addr = values::ip(host)
        .filter(|a| text.starts_with('[') == matches!(a, IpAddress::Ipv6(_)))
        .ok_or_else(|| format!("Listen {text:?}: {host:?} is not an IP address"))?;
    let port = values::number("Listen port", port, 1..=u16::MAX)?;
    if port == ECHO_PORT {
        return Err(format!(
            "Listen {text}: port {ECHO_PORT} is the appliance's TCP echo service"
        ));
    }
    Ok((addr, port))
}

/// Every `Listen` address must be one the `[Link]` or `[Interface]` sections give the
/// appliance (`seen.addresses`, complete once the file is read).
pub(super) fn check_addresses(seen: &mut Seen, metrics: &MetricsConfig) {
    for ((addr, _), line) in &metrics.listen {
        if !seen.addresses.contains_key(addr) {
            seen.error(
                *line,
                format!("Listen {addr} is not one of the appliance's addresses (from [Link] or [Interface] Address)"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Config, ConfigError};
    use super::*;
    use alloc::vec;

    const LINKS: &str = "[Link]\nAddress = 192.168.100.1/24\n\
                         [Link]\nRole = segment\nAddress = 10.20.1.1/24, fd20:ab:cd:1::1/64\n";

    fn ok(text: &str) -> Config {
        parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e:#?}"))
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        parse(text.as_bytes()).expect_err("expected errors")
    }

    fn at(a: &str, port: u16) -> (IpAddress, u16) {
        (values::ip(a).unwrap(), port)
    }

    #[test]
    fn without_the_section_segments_are_served_on_9100_and_the_underlay_is_not() {
        let c = ok(LINKS);
        assert_eq!(c.metrics, None);
        assert_eq!(
            c.metrics_listen(),
            vec![at("10.20.1.1", 9100), at("fd20:ab:cd:1::1", 9100)]
        );
        // Interface addresses are served too; an underlay-only node serves nothing.
        let key = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.99.0.1/32\n";
        let c = ok(&alloc::format!("[Link]\nAddress = 192.168.100.1/24\n{key}"));
        assert_eq!(c.metrics_listen(), vec![at("10.99.0.1", 9100)]);
        assert_eq!(
            ok("[Link]\nAddress = 10.0.2.15/24\n").metrics_listen(),
            vec![]
        );
    }

    #[test]
    fn listen_names_addresses_including_an_underlay_one_and_enabled_no_turns_it_off() {
        let c = ok(&alloc::format!(
            "[Metrics]\nListen = 192.168.100.1:9200, [fd20:ab:cd:1::1]:9300\nListen = 10.20.1.1:80\n{LINKS}"
        ));
        assert_eq!(
            c.metrics_listen(),
            vec![
                at("192.168.100.1", 9200),
                at("fd20:ab:cd:1::1", 9300),
                at("10.20.1.1", 80)
            ]
        );
        let c = ok(&alloc::format!("{LINKS}[Metrics]\n"));
        assert_eq!(
            c.metrics_listen().len(),
            2,
            "section without Listen: defaults"
        );
        let c = ok(&alloc::format!("{LINKS}[metrics]\nenabled = no\n"));
        assert_eq!(c.metrics_listen(), vec![]);
        let e = errors(&alloc::format!(
            "{LINKS}[Metrics]\nEnabled = no\nListen = 10.20.1.1:9100\n"
        ));
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].line, 7);
        assert!(e[0].message.contains("Listen is given at line 8"), "{e:#?}");
    }

    #[test]
    fn every_bad_line_is_reported_with_its_line() {
        let e = errors(&alloc::format!(
            "{LINKS}[Metrics]\nListen = 10.9.9.9:9100\nListen = 10.20.1.1\nListen = fd20:ab:cd:1::1:9100\n\
             Listen = 10.20.1.1:7\nListen = 10.20.1.1:0\nEnabled = maybe\nPort = 1\n\
             Listen = 10.20.1.1:9100, 10.20.1.1:9100\n[Metrics]\n"
        ));
        let lines: Vec<usize> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![7, 8, 9, 10, 11, 12, 13, 14, 15], "{e:#?}");
        assert!(
            e[0].message
                .contains("not one of the appliance's addresses"),
            "{e:#?}"
        );
        assert!(e[1].message.contains("ADDRESS:PORT"), "{e:#?}");
        assert!(e[2].message.contains("brackets"), "{e:#?}");
        assert!(e[3].message.contains("TCP echo"), "{e:#?}");
        assert!(e[5].message.contains("yes or no"), "{e:#?}");
        assert!(e[6].message.contains("unknown key"), "{e:#?}");
        assert!(e[7].message.contains("already given at line 14"), "{e:#?}");
        assert!(e[8].message.contains("second [Metrics]"), "{e:#?}");
    }

    #[test]
    fn more_listen_lines_than_the_limit_is_one_error() {
        let mut text = alloc::string::String::from(LINKS);
        text.push_str("[Metrics]\n");
        for port in 0..MAX_METRICS_LISTEN as u16 + 3 {
            text.push_str(&alloc::format!("Listen = 10.20.1.1:{}\n", 9100 + port));
        }
        let e = errors(&text);
        assert_eq!(e.len(), 1, "{e:#?}");
        assert_eq!(e[0].line, 6 + MAX_METRICS_LISTEN + 1);
    }
}
