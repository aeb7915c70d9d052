//! One appliance VM under QEMU: how it is started, what it says, how it ends.
//!
//! The console (COM1) and the defmt log (COM2) reach us through Unix sockets that QEMU
//! connects to at start; a reader thread per stream keeps every line in [`Lines`], so a
//! test can wait for a line with a deadline and an error can show the console's tail.
//! QEMU's own stderr is kept the same way; its end also tells us that QEMU exited. The VM
//! is killed when the [`Vm`] is dropped, and its NICs' far ends (wire ports, taps and
//! namespaces) go with it.

use crate::defmt_log::{self, LogTable};
use crate::drive::{Firmware, Medium};
use crate::error::{Error, ErrorKind, Result};
use crate::host::TempDir;
use crate::image;
use crate::lines::{LineSplitter, Lines, WaitError};
use crate::machine::{Accel, Machine};
use crate::netns::{Netns, Tap};
use crate::nic::{Mac, Nic, NicRuntime};
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The exit status QEMU reports when the appliance fails on purpose (bad config, CPU
/// fault, no RNG): the image writes 0x10 to isa-debug-exit, QEMU exits with (0x10 << 1) | 1.
pub const APPLIANCE_FAILED: i32 = 33;
/// The line the appliance prints once every configured link is up.
pub const READY: &str = "vdcnet: ready";
/// A generous bound for anything a VM does under TCG (boot is well under a second).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How many console lines an error shows.
const TAIL: usize = 40;

/// Where a VM's output goes besides being kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// Kept only (shown in errors).
    Off,
    /// Console and decoded log lines also go to stderr, prefixed with `[name]`.
    Prefixed,
    /// Console bytes go to stdout as they come; decoded log lines to stderr, prefixed.
    Terminal,
}

impl Echo {
    /// `VDCNET_ECHO=1` (any value) selects `Prefixed`, otherwise `Off`.
    pub fn from_env() -> Echo {
        if std::env::var_os("VDCNET_ECHO").is_some() {
            Echo::Prefixed
        } else {
            Echo::Off
        }
    }
}

/// Everything about a VM to be; [`VmBuilder::spawn`] starts it.
#[must_use]
pub struct VmBuilder {
    name: String,
    machine: Machine,
    memory_mib: u32,
    config: Option<ConfigSource>,
    append: Vec<String>,
    nics: Vec<Nic>,
    image: Option<PathBuf>,
    echo: Echo,
    accel: Accel,
    medium: Option<Medium>,
    firmware: Firmware,
    cpu: String,
    virtio_rng: Option<RngBackend>,
}

/// Where a virtio-rng device gets its bytes.
enum RngBackend {
    /// QEMU's built-in backend (the host's getrandom).
    Builtin,
    /// QEMU's `rng-random` backend reading this file (a FIFO nobody writes makes a device
    /// that never answers).
    File(PathBuf),
}

/// The default `-cpu` model: `max` gives the guest RDRAND and RDSEED.
pub const DEFAULT_CPU: &str = "max";

enum ConfigSource {
    Text(String),
    File(PathBuf),
}

/// A running appliance VM. Dropping it kills QEMU and removes its NICs' far ends.
pub struct Vm {
    name: String,
    machine: Machine,
    command_line: String,
    started: Instant,
    proc: Arc<Proc>,
    console: Lines,
    log: Lines,
    stderr: Lines,
    nics: Vec<NicRuntime>,
    macs: Vec<Mac>,
    readers: Vec<JoinHandle<()>>,
    /// Last: removed after everything that may still use it.
    dir: TempDir,
}

/// The QEMU process and its exit status once known.
struct Proc {
    child: Mutex<Child>,
    pid: u32,
    status: Mutex<Option<ExitStatus>>,
    exited: Condvar,
}

impl Proc {
    fn status(&self) -> Option<ExitStatus> {
        *self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reaps the child if it has exited; returns its status.
    fn poll(&self) -> Option<ExitStatus> {
        if let Some(s) = self.status() {
            return Some(s);
        }
        let polled = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .try_wait()
            .ok()
            .flatten();
        if let Some(s) = polled {
            *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
            self.exited.notify_all();
        }
        polled
    }

    /// Blocks until the child exits (called once its stderr closed, so it is exiting).
    fn reap(&self) {
        let status = self
            .child
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .wait()
            .ok();
        if let Some(s) = status {
            *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
        }
        self.exited.notify_all();
    }

    fn wait(&self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(s) = self.poll() {
                return Some(s);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            let guard = self.status.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_some() {
                continue;
            }
            // Woken by the stderr reader once it reaped QEMU; poll again every 50 ms in
            // case something else keeps QEMU's stderr open.
            let wait = (deadline - now).min(Duration::from_millis(50));
            let _ = self.exited.wait_timeout(guard, wait);
        }
    }

    fn kill(&self) {
        let mut child = self.child.lock().unwrap_or_else(|p| p.into_inner());
        if child.try_wait().ok().flatten().is_none() {
            let _ = child.kill();
        }
        if let Ok(s) = child.wait() {
            *self.status.lock().unwrap_or_else(|p| p.into_inner()) = Some(s);
            self.exited.notify_all();
        }
    }
}

/// A process-wide VM counter: it makes MAC addresses unique among the VMs of a process
/// (wires never span processes).
fn next_vm_number() -> u16 {
    static NEXT: AtomicU16 = AtomicU16::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A name made safe for file names and QEMU option values (no commas, no slashes).
fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

impl Vm {
    /// Starts describing a VM. `name` prefixes its log lines and names its temp files.
    pub fn builder(name: &str) -> VmBuilder {
        VmBuilder {
            name: name.to_string(),
            machine: Machine::Pc,
            memory_mib: 64,
            config: None,
            append: Vec::new(),
            nics: Vec::new(),
            image: None,
            echo: Echo::from_env(),
            accel: Accel::from_env(),
            medium: None,
            firmware: Firmware::default(),
            cpu: DEFAULT_CPU.to_string(),
            virtio_rng: None,
        }
    }
}

impl VmBuilder {
    /// The machine type (default `pc`).
    pub fn machine(mut self, machine: Machine) -> Self {
        self.machine = machine;
        self
    }

    /// Guest memory in MiB (default 64).
    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// The node config, as text; it is written to a file and passed as `-initrd`.
    /// Without a config the appliance boots its default.
    pub fn config(mut self, text: &str) -> Self {
        self.config = Some(ConfigSource::Text(text.to_string()));
        self
    }

    /// The node config, from a file passed as `-initrd` as is.
    pub fn config_file(mut self, path: &Path) -> Self {
        self.config = Some(ConfigSource::File(path.to_path_buf()));
        self
    }

    /// Appends to the kernel command line (space-separated from earlier parts).
    pub fn append(mut self, args: &str) -> Self {
        if !args.trim().is_empty() {
            self.append.push(args.trim().to_string());
        }
        self
    }

    /// Adds a NIC (NICs appear to the guest in the order they are added).
    pub fn nic(mut self, nic: Nic) -> Self {
        self.nics.push(nic);
        self
    }

    /// Boots this ELF instead of building the image.
    pub fn image(mut self, path: &Path) -> Self {
        self.image = Some(path.to_path_buf());
        self
    }

    /// Where output goes besides being kept (default: [`Echo::from_env`]).
    pub fn echo(mut self, echo: Echo) -> Self {
        self.echo = echo;
        self
    }

    /// The accelerator (default: [`Accel::from_env`]).
    pub fn accel(mut self, accel: Accel) -> Self {
        self.accel = accel;
        self
    }

    /// Boots the firmware from this drive instead of loading the image with `-kernel`:
    /// the drive's boot loader brings the node file and the command line, so
    /// [`config`](Self::config) and [`append`](Self::append) are refused with it. The
    /// image given to [`image`](Self::image) (or built) still decodes the defmt log, so it
    /// should be the one on the drive.
    pub fn boot_from(mut self, medium: Medium) -> Self {
        self.medium = Some(medium);
        self
    }

    /// The firmware (default SeaBIOS); matters when booting from a drive.
    pub fn firmware(mut self, firmware: Firmware) -> Self {
        self.firmware = firmware;
        self
    }

    /// The `-cpu` model (default [`DEFAULT_CPU`]); e.g. `qemu64`, QEMU's own default,
    /// has neither RDRAND nor RDSEED.
    pub fn cpu(mut self, model: &str) -> Self {
        self.cpu = model.to_string();
        self
    }

    /// Adds a virtio-rng device (entropy from the host): `virtio-rng-pci` on pc/q35,
    /// `virtio-rng-device` on microvm. Off by default.
    pub fn virtio_rng(mut self) -> Self {
        self.virtio_rng = Some(RngBackend::Builtin);
        self
    }

    /// As [`virtio_rng`](Self::virtio_rng), the device reading its bytes from `path`
    /// (QEMU's `rng-random` backend).
    pub fn virtio_rng_from(mut self, path: &Path) -> Self {
        self.virtio_rng = Some(RngBackend::File(path.to_path_buf()));
        self
    }

    /// Starts QEMU and returns as soon as it runs (taps already moved into their
    /// namespaces); it does not wait for the appliance to be ready.
    pub fn spawn(self) -> Result<Vm> {
        if self.medium.is_some() && (self.config.is_some() || !self.append.is_empty()) {
            return Err(Error::new(
                ErrorKind::Spawn,
                format!(
                    "vm `{}`: a VM booting from a drive takes its node file and command line from the drive",
                    self.name
                ),
            ));
        }
        if self.medium.is_some() && self.machine == Machine::Microvm {
            return Err(Error::new(
                ErrorKind::Spawn,
                format!(
                    "vm `{}`: microvm has no firmware to boot a drive",
                    self.name
                ),
            ));
        }
        let firmware_args = self.firmware.qemu_args()?;
        let image = match &self.image {
            Some(p) => p.clone(),
            None => image::image()?,
        };
        let dir = TempDir::new(&sanitize(&self.name))?;
        let config = match &self.config {
            None => None,
            Some(ConfigSource::File(p)) => Some(p.clone()),
            Some(ConfigSource::Text(text)) => {
                let path = dir.path().join("node.conf");
                std::fs::write(&path, text)
                    .map_err(|e| Error::io(format_args!("writing {}", path.display()), e))?;
                Some(path)
            }
        };
        let console_sock = dir.path().join("console.sock");
        let log_sock = dir.path().join("log.sock");
        let listen = |p: &Path| {
            UnixListener::bind(p).map_err(|e| Error::io(format_args!("binding {}", p.display()), e))
        };
        let console_listener = listen(&console_sock)?;
        let log_listener = listen(&log_sock)?;

        let vm_number = next_vm_number();
        let mut nics = Vec::new();
        let mut macs = Vec::new();
        for (i, nic) in self.nics.iter().enumerate() {
            nics.push(NicRuntime::prepare(&nic.kind)?);
            let [hi, lo] = vm_number.to_be_bytes();
            macs.push(nic.mac.unwrap_or(Mac([0x52, 0x54, 0x00, hi, lo, i as u8])));
        }

        let mut args: Vec<String> = Vec::new();
        let mut arg = |a: &str| args.push(a.to_string());
        arg("-name");
        arg(&sanitize(&self.name));
        arg("-accel");
        arg(self.accel.qemu_arg());
        arg("-M");
        arg(self.machine.qemu_machine_arg());
        arg("-cpu");
        arg(&self.cpu);
        arg("-m");
        arg(&self.memory_mib.to_string());
        for a in ["-nodefaults", "-display", "none", "-no-reboot"] {
            arg(a);
        }
        arg("-device");
        arg("isa-debug-exit,iobase=0xf4,iosize=4");
        args.extend(firmware_args);
        if let Some(medium) = &self.medium {
            args.extend(medium.qemu_args());
        } else {
            args.push("-kernel".into());
            args.push(image.to_string_lossy().into_owned());
            if let Some(config) = &config {
                args.push("-initrd".into());
                args.push(config.to_string_lossy().into_owned());
            }
            if !self.append.is_empty() {
                args.push("-append".into());
                args.push(self.append.join(" "));
            }
        }
        let mut arg = |a: &str| args.push(a.to_string());
        arg("-chardev");
        arg(&format!("socket,id=con,path={}", console_sock.display()));
        arg("-serial");
        arg("chardev:con");
        arg("-chardev");
        arg(&format!("socket,id=log,path={}", log_sock.display()));
        args.extend(self.machine.second_serial_args("log"));
        for (i, (nic, rt)) in self.nics.iter().zip(&nics).enumerate() {
            let id = format!("n{i}");
            args.push("-netdev".into());
            args.push(rt.netdev(&nic.kind, &id));
            args.push("-device".into());
            args.push(format!(
                "{},netdev={id},mac={}",
                self.machine.virtio_net_device(),
                macs[i]
            ));
        }
        match &self.virtio_rng {
            None => {}
            Some(RngBackend::Builtin) => {
                args.push("-device".into());
                args.push(self.machine.virtio_rng_device().into());
            }
            Some(RngBackend::File(path)) => {
                args.push("-object".into());
                args.push(format!("rng-random,id=rng0,filename={}", path.display()));
                args.push("-device".into());
                args.push(format!("{},rng=rng0", self.machine.virtio_rng_device()));
            }
        }
        let command_line = std::iter::once("qemu-system-x86_64".to_string())
            .chain(args.iter().map(|a| shell_quote(a)))
            .collect::<Vec<_>>()
            .join(" ");

        let started = Instant::now();
        let mut child = Command::new("qemu-system-x86_64")
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| {
                Error::new(
                    ErrorKind::Spawn,
                    format!("cannot start qemu-system-x86_64 (is QEMU installed?): {e}"),
                )
            })?;
        let qemu_stderr = child.stderr.take();
        let proc = Arc::new(Proc {
            pid: child.id(),
            child: Mutex::new(child),
            status: Mutex::new(None),
            exited: Condvar::new(),
        });

        let console = Lines::new();
        let log = Lines::new();
        let stderr = Lines::new();
        let mut readers = Vec::new();
        let spawn_reader = |what: &str, f: Box<dyn FnOnce() + Send>| {
            thread::Builder::new()
                .name(format!("{}-{what}", self.name))
                .spawn(f)
                .map_err(|e| Error::io("spawning a reader thread", e))
        };

        // QEMU's stderr: kept; its end means QEMU exited, which also closes the serial
        // streams if QEMU never connected them.
        {
            let (lines, proc, socks) = (
                stderr.clone(),
                proc.clone(),
                [console_sock.clone(), log_sock.clone()],
            );
            readers.push(spawn_reader(
                "stderr",
                Box::new(move || {
                    if let Some(err) = qemu_stderr {
                        for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                            lines.push(line);
                        }
                    }
                    lines.close();
                    // QEMU closes stderr when it exits: reap it now, so `wait_exit` returns
                    // the moment it is gone (the benchmark times this).
                    proc.reap();
                    for sock in socks {
                        // Wakes a reader still waiting in accept(); harmless otherwise.
                        let _ = UnixStream::connect(sock);
                    }
                }),
            )?);
        }
        {
            let (lines, name, echo) = (console.clone(), self.name.clone(), self.echo);
            readers.push(spawn_reader(
                "console",
                Box::new(move || {
                    if let Ok((stream, _)) = console_listener.accept() {
                        read_console(stream, &lines, &name, echo);
                    }
                    lines.close();
                }),
            )?);
        }
        {
            let (lines, name, echo, image) =
                (log.clone(), self.name.clone(), self.echo, image.clone());
            readers.push(spawn_reader(
                "defmt",
                Box::new(move || {
                    if let Ok((stream, _)) = log_listener.accept() {
                        read_log(stream, &image, &lines, &name, echo);
                    }
                    lines.close();
                }),
            )?);
        }

        let mut vm = Vm {
            name: self.name,
            machine: self.machine,
            command_line,
            started,
            proc,
            console,
            log,
            stderr,
            nics,
            macs,
            readers,
            dir,
        };
        let proc = vm.proc.clone();
        let mut failure = None;
        for nic in &mut vm.nics {
            if let NicRuntime::Tap(tap) = nic {
                if let Err(e) =
                    tap.attach_to_namespace(Duration::from_secs(10), || proc.poll().is_some())
                {
                    failure = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failure {
            vm.kill();
            return Err(vm.fail(e));
        }
        Ok(vm)
    }
}

/// Quotes an argument for a copy-pasteable command line.
fn shell_quote(arg: &str) -> String {
    if arg
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_=,.:/@+".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

fn read_console(mut stream: UnixStream, lines: &Lines, name: &str, echo: Echo) {
    let mut splitter = LineSplitter::default();
    let mut buf = [0u8; 4096];
    let emit = |line: String| {
        if echo == Echo::Prefixed {
            eprintln!("[{name}] {line}");
        }
        lines.push(line);
    };
    loop {
        let n = match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if echo == Echo::Terminal {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&buf[..n]);
            let _ = out.flush();
        }
        splitter.feed(&buf[..n], emit);
    }
    if let Some(last) = splitter.finish() {
        emit(last);
    }
}

fn read_log(stream: UnixStream, image: &Path, lines: &Lines, name: &str, echo: Echo) {
    let emit = |line: String| {
        if echo != Echo::Off {
            eprintln!("[{name}] {line}");
        }
        lines.push(line);
    };
    match LogTable::load(image) {
        Ok(Some(table)) => table.decode_stream(stream, emit),
        Ok(None) => defmt_log::drain_undecodable(stream, "the image has no defmt table", emit),
        Err(why) => defmt_log::drain_undecodable(stream, &why, emit),
    }
}

impl Vm {
    /// The name given to the builder.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The machine type.
    pub fn machine(&self) -> Machine {
        self.machine
    }

    /// QEMU's process id (for CPU accounting).
    pub fn pid(&self) -> u32 {
        self.proc.pid
    }

    /// When QEMU was started.
    pub fn started(&self) -> Instant {
        self.started
    }

    /// The full QEMU command line, shell-quoted (copy it to boot the same VM by hand).
    pub fn command_line(&self) -> &str {
        &self.command_line
    }

    /// The console (COM1) lines so far and to come.
    pub fn console(&self) -> &Lines {
        &self.console
    }

    /// The decoded defmt log (COM2) lines.
    pub fn log(&self) -> &Lines {
        &self.log
    }

    /// QEMU's own stderr lines.
    pub fn qemu_stderr(&self) -> &Lines {
        &self.stderr
    }

    /// How many NICs the VM has.
    pub fn nic_count(&self) -> usize {
        self.nics.len()
    }

    /// The MAC address of NIC `index`.
    pub fn mac(&self, index: usize) -> Option<Mac> {
        self.macs.get(index).copied()
    }

    /// The host address forwarded to `guest_port` on the first user-mode NIC that
    /// forwards it.
    pub fn forwarded(&self, guest_port: u16) -> Option<SocketAddr> {
        self.nics.iter().find_map(|n| n.forwarded(guest_port))
    }

    /// The host address forwarded to `guest_port` on NIC `index`.
    pub fn forwarded_on(&self, index: usize, guest_port: u16) -> Option<SocketAddr> {
        self.nics.get(index).and_then(|n| n.forwarded(guest_port))
    }

    /// The wire port of NIC `index`, if that NIC is on a wire (its id is what
    /// [`Wire::set_policy`](crate::Wire::set_policy) takes).
    pub fn wire_port(&self, index: usize) -> Option<&crate::WirePort> {
        match self.nics.get(index) {
            Some(NicRuntime::Wire(p)) => Some(p),
            _ => None,
        }
    }

    /// The tap of NIC `index`, if that NIC is a tap.
    pub fn tap(&self, index: usize) -> Option<&Tap> {
        match self.nics.get(index) {
            Some(NicRuntime::Tap(t)) => Some(t),
            _ => None,
        }
    }

    /// The namespace behind NIC `index`, if that NIC is a tap.
    pub fn netns(&self, index: usize) -> Option<&Netns> {
        self.tap(index).map(Tap::netns)
    }

    /// One line per NIC saying what it is plugged into.
    pub fn describe_nics(&self) -> Vec<String> {
        self.nics
            .iter()
            .zip(&self.macs)
            .enumerate()
            .map(|(i, (n, mac))| format!("nic {i} ({mac}): {}", n.describe()))
            .collect()
    }

    /// Waits for a console line containing `pattern` (lines already printed count) and
    /// returns it. Fails with the evidence if the deadline passes or the VM exits first.
    pub fn wait_for_line(&self, pattern: &str, timeout: Duration) -> Result<String> {
        match self.console.wait_for(pattern, timeout) {
            Ok(line) => Ok(line),
            Err(WaitError::TimedOut) => Err(self.fail(Error::new(
                ErrorKind::Timeout,
                format!(
                    "vm `{}`: no console line containing `{pattern}` within {timeout:?}",
                    self.name
                ),
            ))),
            Err(WaitError::Closed) => {
                // Let the exit status arrive so the error can show it.
                self.proc.wait(Duration::from_secs(2));
                Err(self.fail(Error::new(
                    ErrorKind::Exited,
                    format!(
                        "vm `{}` ended before printing a line containing `{pattern}`",
                        self.name
                    ),
                )))
            }
        }
    }

    /// Waits for `vdcnet: ready` with [`DEFAULT_TIMEOUT`]; returns the line.
    pub fn wait_ready(&self) -> Result<String> {
        self.wait_for_line(READY, DEFAULT_TIMEOUT)
    }

    /// Waits for QEMU to exit and returns its status; fails (with the evidence) at the
    /// deadline, leaving the VM running.
    pub fn wait_exit(&self, timeout: Duration) -> Result<ExitStatus> {
        match self.proc.wait(timeout) {
            Some(status) => {
                // Let the readers take in the last bytes before anyone looks at them.
                let _ = self.console.wait_closed(Duration::from_secs(2));
                let _ = self.log.wait_closed(Duration::from_secs(2));
                Ok(status)
            }
            None => Err(self.fail(Error::new(
                ErrorKind::Timeout,
                format!("vm `{}` still running after {timeout:?}", self.name),
            ))),
        }
    }

    /// QEMU's exit status, if it has exited.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.proc.poll()
    }

    /// Kills QEMU (if it still runs) and waits for it.
    pub fn kill(&self) {
        self.proc.kill();
    }

    /// What a failure report shows about this VM: status, command line, the console's
    /// tail, the decoded log's tail and QEMU's stderr.
    pub fn evidence(&self) -> String {
        let mut s = String::new();
        let status = match self.proc.poll() {
            Some(st) => format!("exited, {st}"),
            None => "still running".to_string(),
        };
        let _ = writeln!(
            s,
            "--- vm `{}` ({}, {status}, started {:.2?} ago) ---",
            self.name,
            self.machine,
            self.started.elapsed()
        );
        let _ = writeln!(s, "command: {}", self.command_line);
        for nic in self.describe_nics() {
            let _ = writeln!(s, "{nic}");
        }
        let section = |s: &mut String, title: &str, lines: &Lines, n: usize| {
            let all = lines.len();
            let tail = lines.tail(n);
            let _ = writeln!(s, "--- {title} (last {} of {all} lines) ---", tail.len());
            for l in tail {
                let _ = writeln!(s, "  {l}");
            }
        };
        section(&mut s, "console", &self.console, TAIL);
        if !self.log.is_empty() {
            section(&mut s, "defmt log", &self.log, TAIL / 2);
        }
        if !self.stderr.is_empty() {
            section(&mut s, "qemu stderr", &self.stderr, TAIL / 2);
        }
        s
    }

    /// Attaches this VM's evidence to an error.
    pub fn fail(&self, err: Error) -> Error {
        err.with_evidence(self.evidence())
    }

    /// The VM's private directory (config file, sockets).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.proc.kill();
        for r in self.readers.drain(..) {
            let _ = r.join();
        }
        // `nics` (wire ports, taps, namespaces) and `dir` drop after this, in field order.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitize_keeps_names_usable_in_paths_and_qemu_options() {
        assert_eq!(sanitize("reboot-1"), "reboot-1");
        assert_eq!(sanitize("a,b/c d"), "a-b-c-d");
    }

    #[test]
    fn a_vm_booting_a_drive_refuses_a_config_or_command_line_of_its_own() {
        let cd = || Medium::Cdrom("/nonexistent.iso".into());
        for builder in [
            Vm::builder("c").boot_from(cd()).config("[Link]\n"),
            Vm::builder("a").boot_from(cd()).append("vdcnet.stats=10"),
            Vm::builder("m").boot_from(cd()).machine(Machine::Microvm),
        ] {
            match builder.spawn() {
                Ok(_) => panic!("spawned a VM the builder should have refused"),
                Err(e) => assert_eq!(e.kind(), ErrorKind::Spawn, "{e}"),
            }
        }
    }

    #[test]
    fn shell_quote_leaves_plain_args_and_quotes_the_rest() {
        assert_eq!(
            shell_quote("virtio-net-pci,netdev=n0"),
            "virtio-net-pci,netdev=n0"
        );
        assert_eq!(shell_quote("vdcnet.ping=a b"), "'vdcnet.ping=a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
