//! The kernel command line: `vdcnet.*` flags for diagnostics and tests. Unknown words are
//! left alone (a loader may add its own); malformed `vdcnet.*` flags become warnings.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use smoltcp::wire::IpAddress;

/// Most ping targets `vdcnet.ping=` takes.
pub const MAX_PING_TARGETS: usize = 8;

/// What the command line asks for.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cmdline {
    /// `vdcnet.fault=page`: force a page fault once booted (tests the fault report).
    pub fault_page: bool,
    /// `vdcnet.ping=ADDR[,ADDR...]`: ping these addresses once a second once ready.
    pub ping: Vec<IpAddress>,
    /// `vdcnet.stats=SECONDS`: print the counters on the console this often.
    pub stats_secs: Option<u32>,
    warnings: Vec<String>,
}

impl Cmdline {
    /// Parses a command line. Never fails: problems are kept as warnings.
    pub fn parse(line: &str) -> Cmdline {
        let mut c = Cmdline::default();
        for word in line.split_ascii_whitespace() {
            let Some(flag) = word.strip_prefix("vdcnet.") else {
                continue;
            };
            let (key, value) = flag.split_once('=').unwrap_or((flag, ""));
            match key {
                "fault" => match value {
                    "page" => c.fault_page = true,
                    _ => c
                        .warnings
                        .push(format!("vdcnet.fault={value}: the only fault is 'page'")),
                },
                "ping" => {
                    for a in value.split(',').filter(|a| !a.is_empty()) {
                        match a.parse::<IpAddress>() {
                            Ok(ip) if c.ping.len() < MAX_PING_TARGETS => c.ping.push(ip),
                            Ok(_) => c.warnings.push(format!(
                                "vdcnet.ping: more than {MAX_PING_TARGETS} targets; ignoring {a}"
                            )),
                            Err(_) => c
                                .warnings
                                .push(format!("vdcnet.ping: '{a}' is not an IP address")),
                        }
                    }
                }
                "stats" => match value.parse::<u32>() {
                    Ok(n) if n > 0 => c.stats_secs = Some(n),
                    _ => c.warnings.push(format!(
                        "vdcnet.stats={value}: want a number of seconds > 0"
                    )),
                },
                _ => c.warnings.push(format!("unknown flag vdcnet.{key}")),
            }
        }
        c
    }

    /// Problems found while parsing.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_are_parsed_and_other_words_ignored() {
        let c = Cmdline::parse(
            "console=ttyS0 vdcnet.fault=page vdcnet.ping=10.0.3.2,fd00::2 vdcnet.stats=5",
        );
        assert!(c.fault_page);
        assert_eq!(c.stats_secs, Some(5));
        assert_eq!(c.ping.len(), 2);
        assert_eq!(c.ping[0], "10.0.3.2".parse::<IpAddress>().unwrap());
        assert!(c.warnings().is_empty());
    }

    #[test]
    fn malformed_flags_become_warnings() {
        let c =
            Cmdline::parse("vdcnet.ping=10.0.0.300 vdcnet.fault=cpu vdcnet.bogus vdcnet.stats=0");
        assert!(c.ping.is_empty());
        assert!(!c.fault_page);
        assert_eq!(c.stats_secs, None);
        assert_eq!(c.warnings().len(), 4);
    }
}
