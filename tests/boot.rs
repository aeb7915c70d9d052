//! Booting: ready on every machine type, the default config, failures that end the VM
//! with the failure status and say why, and several NICs.

use vdcnet_qemu::{Machine, Nic, Vm, APPLIANCE_FAILED, ECHO_PORT, READY};
use vdcnet_tests::{assert_echoes, echo_addr, ok, payload, TIMEOUT};

const ONE_LINK: &str = "\
[Link]
Address = 10.0.2.15/24, fec0::15/64
Gateway = 10.0.2.2
";

#[test]
fn boots_to_ready_on_pc() {
    let vm = ok(Vm::builder("pc").config(ONE_LINK).nic(Nic::user()).spawn());
    let line = ok(vm.wait_for_line(READY, TIMEOUT));
    assert!(line.starts_with(READY), "{line}");
    // Exactly one ready line, after the banner.
    let console = vm.console().snapshot();
    assert_eq!(vm.console().matching(READY).len(), 1, "{}", vm.evidence());
    assert!(
        console[0].starts_with("vdcnet ") && console[0].contains("booting"),
        "first console line is the banner\n{}",
        vm.evidence()
    );
}

#[test]
fn defmt_log_on_the_second_serial_port_is_decoded_with_the_image() {
    let vm = ok(Vm::builder("defmt").nic(Nic::user()).spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    // A decoded frame reads `<seconds.micros> <LEVEL> <message>`.
    let decoded = |l: &str| {
        let mut words = l.split_whitespace();
        let stamp = words.next().unwrap_or("");
        let level = words.next().unwrap_or("");
        stamp.split_once('.').is_some_and(|(s, us)| {
            !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && us.len() == 6
        }) && ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"].contains(&level)
    };
    let first = vm.log().wait_from(0, |l| decoded(l), TIMEOUT);
    assert!(first.is_ok(), "no decoded defmt line\n{}", vm.evidence());
    let undecoded: Vec<String> = vm
        .log()
        .snapshot()
        .into_iter()
        .filter(|l| !decoded(l))
        .collect();
    assert!(
        undecoded.is_empty(),
        "lines that did not decode: {undecoded:?}\n{}",
        vm.evidence()
    );
}

/// Boots on `machine`, checks TCP echo at once, then again after a second of idling (when
/// the image sits in its halt-until-interrupt loop, which must still wake up for frames).
fn boots_and_echoes_before_and_after_idling_on(machine: Machine) {
    let vm = ok(Vm::builder(machine.name())
        .machine(machine)
        .config(ONE_LINK)
        .nic(Nic::user())
        .spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    assert_echoes(&vm, echo_addr(&vm), &payload(machine.name(), 100));
    std::thread::sleep(std::time::Duration::from_secs(1));
    assert_echoes(&vm, echo_addr(&vm), &payload("after idling", 100));
}

#[test]
fn answers_tcp_echo_before_and_after_idling_on_pc() {
    boots_and_echoes_before_and_after_idling_on(Machine::Pc);
}

#[test]
fn answers_tcp_echo_before_and_after_idling_on_q35() {
    boots_and_echoes_before_and_after_idling_on(Machine::Q35);
}

#[test]
fn answers_tcp_echo_before_and_after_idling_on_microvm() {
    boots_and_echoes_before_and_after_idling_on(Machine::Microvm);
}

#[test]
fn boots_without_config_on_the_default_address_and_answers() {
    // No -initrd: the default is 10.0.2.15/24 on the first NIC, which is where QEMU's
    // user-mode network forwards to.
    let vm = ok(Vm::builder("default").nic(Nic::user()).spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    assert_echoes(&vm, echo_addr(&vm), b"default config answers");
}

#[test]
fn bad_config_prints_every_error_with_its_line_and_exits_with_failure() {
    let config = "\
[Link]
Address = 10.0.2.15/33
Gateway = not-an-address
Colour = blue
[Nonsense]
";
    let vm = ok(Vm::builder("badconf")
        .config(config)
        .nic(Nic::user())
        .spawn());
    let status = ok(vm.wait_exit(TIMEOUT));
    assert_eq!(status.code(), Some(APPLIANCE_FAILED), "{}", vm.evidence());
    for line in [2, 3, 4, 5] {
        let prefix = format!("config: line {line}: ");
        assert!(
            vm.console()
                .snapshot()
                .iter()
                .any(|l| l.starts_with(&prefix)),
            "no `{prefix}...` error on the console\n{}",
            vm.evidence()
        );
    }
    assert!(
        vm.console().matching(READY).is_empty(),
        "a bad config must never boot to ready\n{}",
        vm.evidence()
    );
}

#[test]
fn page_fault_flag_prints_the_fault_report_and_exits_with_failure() {
    let vm = ok(Vm::builder("fault")
        .append("vdcnet.fault=page")
        .nic(Nic::user())
        .spawn());
    let line = ok(vm.wait_for_line("vdcnet: fault:", TIMEOUT));
    let status = ok(vm.wait_exit(TIMEOUT));
    assert_eq!(status.code(), Some(APPLIANCE_FAILED), "{}", vm.evidence());
    assert!(
        line.contains("vector=14"),
        "the report names vector 14 (page fault): {line}"
    );
    for field in ["error=", "rip=0x", "cr2=0x"] {
        assert!(line.contains(field), "the report has `{field}`: {line}");
    }
}

#[test]
fn four_nics_come_up_and_each_answers_tcp_echo() {
    // Four user-mode networks, 10.0.2.0/24 .. 10.0.5.0/24, the appliance at .15 on each.
    let mut config = String::new();
    let mut builder = Vm::builder("four").machine(Machine::Q35);
    for i in 0..4 {
        let net = 2 + i;
        config.push_str(&format!("[Link]\nAddress = 10.0.{net}.15/24\n\n"));
        builder = builder.nic(Nic::user().subnet(&format!("10.0.{net}.0/24"), None));
    }
    let vm = ok(builder.config(&config).spawn());
    ok(vm.wait_for_line(READY, TIMEOUT));
    for i in 0..4 {
        let addr = vm
            .forwarded_on(i, ECHO_PORT)
            .expect("every NIC forwards the echo port");
        assert_echoes(&vm, addr, &payload(&format!("nic{i}"), 64));
    }
}
