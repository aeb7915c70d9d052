//! Raw bytes into the node-config parser and the kernel command-line parser: any input
//! must give a config or a list of errors (each with a line number inside the input),
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vdcnet_appliance::cmdline::Cmdline;
use vdcnet_appliance::config;

fuzz_target!(|data: &[u8]| {
    let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
    match config::parse(data) {
        Ok(c) => assert!(!c.links.is_empty()),
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in &errors {
                assert!(e.line <= lines, "error line {} beyond the input's {} lines", e.line, lines);
            }
        }
    }
    if let Ok(s) = core::str::from_utf8(data) {
        let _ = Cmdline::parse(s);
    }
});
