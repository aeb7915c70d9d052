//! A flashable hybrid image: GRUB for BIOS and UEFI, the appliance and its node file, in
//! one file that boots as a CD and, written with `dd`, as a USB stick or disk.
//!
//! Debian's `grub-mkrescue` (with `xorriso` and `mtools`) makes the ISO 9660 image with
//! GRUB for both firmwares; [`build`] gives it a `grub.cfg` that keeps the menu on the
//! serial console and boots at once, and appends a small FAT partition (label `VDCNET`)
//! holding `node.conf`. GRUB looks for that partition by its volume serial, unique per
//! image, and boots its `node.conf` when it has one; otherwise the copy inside the ISO
//! file system (`/boot/node.conf`). So the node file can be changed after the image is
//! built or flashed, without rebuilding: on the stick by mounting the partition on any
//! OS, in the image file with mtools ([`write_node_file`], or `mcopy -o -i
//! IMAGE@@OFFSET`, the offset being [`config_partition`]'s).
//!
//! Every node file is checked with the appliance's own parser before it goes in.

use crate::error::{Error, ErrorKind, Result};
use crate::host::{run_command, TempDir};
use std::fmt::Write as _;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The config partition's volume label.
pub const CONFIG_LABEL: &str = "VDCNET";
/// The node file's name in the config partition.
pub const NODE_FILE: &str = "node.conf";
/// The config partition's size in 512-byte sectors (4 MiB: FAT16 with 1-sector clusters).
const CONFIG_SECTORS: u64 = 8192;
/// Its MBR partition type: FAT16 with LBA addressing (the GPT entry is "basic data").
const CONFIG_MBR_TYPE: u8 = 0x0e;
/// Its MBR slot (xorriso's `-append_partition` numbers from 1).
const CONFIG_SLOT: usize = 3;

/// Commands `vdcnet iso` runs, with the Debian package that provides each.
pub const TOOLS: [(&str, &str); 4] = [
    ("grub-mkrescue", "grub-common"),
    ("xorriso", "xorriso"),
    ("mformat", "mtools"),
    ("mcopy", "mtools"),
];

/// GRUB's platform directories the image needs, with the Debian package of each:
/// without one of them `grub-mkrescue` quietly makes an image that boots only the other
/// firmware.
pub const GRUB_PLATFORMS: [(&str, &str); 2] = [
    ("/usr/lib/grub/i386-pc", "grub-pc-bin"),
    ("/usr/lib/grub/x86_64-efi", "grub-efi-amd64-bin"),
];

/// GRUB modules copied into the image (with their dependencies): what `grub.cfg` uses,
/// plus `ls` and `cat` for looking around at the GRUB prompt.
const GRUB_MODULES: &str = "multiboot2 normal configfile echo test search search_fs_uuid \
    fat iso9660 part_msdos part_gpt serial terminal all_video ls cat";

/// What goes into an image.
#[derive(Clone, Debug)]
pub struct IsoOptions {
    /// The appliance's ELF.
    pub image: PathBuf,
    /// The node file's text (checked before anything is built).
    pub config: String,
    /// Kernel command line (for example `vdcnet.stats=10`); empty for none.
    pub append: String,
    /// Seconds GRUB shows its menu before booting (0: boot at once).
    pub timeout_secs: u32,
}

/// A built image.
#[derive(Clone, Debug)]
pub struct Iso {
    /// Where it was written.
    pub path: PathBuf,
    /// The config partition: byte offset in the image and length.
    pub config_partition: (u64, u64),
}

fn iso_error(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Iso, message)
}

fn on_path(command: &str, path: &std::ffi::OsStr) -> bool {
    std::env::split_paths(path).any(|dir| dir.join(command).is_file())
}

/// The Debian packages missing for [`build`], judged by the commands on `path` (a
/// `PATH`-style list) and GRUB's platform directories under `root` (`/` normally).
pub fn missing_packages_in(path: &std::ffi::OsStr, root: &Path) -> Vec<&'static str> {
    let mut missing: Vec<&'static str> = Vec::new();
    let tools = TOOLS
        .iter()
        .filter(|(cmd, _)| !on_path(cmd, path))
        .map(|(_, pkg)| *pkg);
    let platforms = GRUB_PLATFORMS
        .iter()
        .filter(|(dir, _)| !root.join(dir.trim_start_matches('/')).is_dir())
        .map(|(_, pkg)| *pkg);
    for pkg in tools.chain(platforms) {
        if !missing.contains(&pkg) {
            missing.push(pkg);
        }
    }
    missing
}

/// The Debian packages missing on this host for [`build`] (empty when all is there).
pub fn missing_packages() -> Vec<&'static str> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    missing_packages_in(&path, Path::new("/"))
}

/// Fails naming the missing packages (and how to install them), if any.
pub fn check_tools() -> Result<()> {
    let missing = missing_packages();
    if missing.is_empty() {
        return Ok(());
    }
    Err(iso_error(format!(
        "making the image needs these Debian packages: {}\n\
         install them: apt-get install --no-install-recommends {}",
        missing.join(", "),
        missing.join(" ")
    )))
}

/// Checks a node file with the appliance's parser; the error lists every problem with
/// its line number.
pub fn check_config(text: &str) -> Result<()> {
    match vdcnet_appliance::config::parse(text.as_bytes()) {
        Ok(_) => Ok(()),
        Err(errors) => {
            let mut msg = format!("the node file has {} error(s):", errors.len());
            for e in &errors {
                let _ = write!(msg, "\n  {e}");
            }
            Err(iso_error(msg))
        }
    }
}

/// GRUB's configuration: serial console, no waiting, the config partition's node file
/// when it has one, else the built-in copy.
pub fn grub_cfg(volume_serial: u32, append: &str, timeout_secs: u32) -> String {
    let uuid = fat_uuid(volume_serial);
    let kernel = if append.trim().is_empty() {
        "/boot/vdcnet".to_string()
    } else {
        format!("/boot/vdcnet {}", append.trim())
    };
    format!(
        "\
# Written by `vdcnet iso`. The node file comes from the FAT partition labelled
# {CONFIG_LABEL} (volume serial {uuid}) when it holds {NODE_FILE}, else from /boot/{NODE_FILE}.
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout={timeout_secs}
set default=0
set vdcnet_node=/boot/{NODE_FILE}
if search --no-floppy --fs-uuid --set=vdcnet_part {uuid}; then
  if [ -f ($vdcnet_part)/{NODE_FILE} ]; then
    set vdcnet_node=($vdcnet_part)/{NODE_FILE}
  fi
fi
echo \"vdcnet: grub: node file $vdcnet_node\"
menuentry \"vdcnet\" {{
  multiboot2 {kernel}
  module2 $vdcnet_node
}}
"
    )
}

/// A FAT volume serial as GRUB and blkid spell its UUID.
fn fat_uuid(serial: u32) -> String {
    format!("{:04x}-{:04x}", serial >> 16, serial & 0xffff)
}

/// What the config partition says about itself.
const PARTITION_README: &str = "\
This partition holds the vdcnet node file, node.conf. GRUB boots the appliance with it
(the copy inside the image is used only when this one is missing). Edit it here, keep
the name, and boot: the appliance checks it and prints every error with its line number.
";

/// Builds the image at `out`, replacing any file there.
pub fn build(opts: &IsoOptions, out: &Path) -> Result<Iso> {
    check_config(&opts.config)?;
    if !opts.image.is_file() {
        return Err(iso_error(format!(
            "the appliance image {} is not a file",
            opts.image.display()
        )));
    }
    check_tools()?;
    let tmp = TempDir::new("iso")?;
    let tree = tmp.path().join("tree");
    let boot = tree.join("boot");
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::write(path, bytes)
            .map_err(|e| Error::io(format_args!("writing {}", path.display()), e))
    };
    std::fs::create_dir_all(boot.join("grub"))
        .map_err(|e| Error::io(format_args!("creating {}", boot.display()), e))?;
    std::fs::copy(&opts.image, boot.join("vdcnet"))
        .map_err(|e| Error::io(format_args!("copying {}", opts.image.display()), e))?;
    write(&boot.join(NODE_FILE), opts.config.as_bytes())?;
    let serial = volume_serial()?;
    write(
        &boot.join("grub").join("grub.cfg"),
        grub_cfg(serial, &opts.append, opts.timeout_secs).as_bytes(),
    )?;

    // The config partition: FAT with the node file and a note on what it is for.
    let part = tmp.path().join("config.img");
    let node = tmp.path().join(NODE_FILE);
    let readme = tmp.path().join("README.txt");
    write(&node, opts.config.as_bytes())?;
    write(&readme, PARTITION_README.as_bytes())?;
    tool(
        Command::new("mformat")
            .arg("-C")
            .arg("-i")
            .arg(&part)
            .args([
                "-T",
                &CONFIG_SECTORS.to_string(),
                "-h",
                "4",
                "-s",
                "32",
                "-c",
                "1",
            ])
            .args(["-N", &format!("{serial:08x}"), "-v", CONFIG_LABEL, "::"]),
    )?;
    tool(
        Command::new("mcopy")
            .arg("-i")
            .arg(&part)
            .arg(&node)
            .arg(&readme)
            .arg("::"),
    )?;

    let _ = std::fs::remove_file(out);
    tool(
        Command::new("grub-mkrescue")
            .arg("-o")
            .arg(out)
            .args(["--compress=xz", "--locales=", "--fonts=", "--themes="])
            .arg(format!("--install-modules={GRUB_MODULES}"))
            .arg(&tree)
            .args(["--", "-append_partition", &CONFIG_SLOT.to_string()])
            .arg(format!("0x{CONFIG_MBR_TYPE:02x}"))
            .arg(&part),
    )?;
    Ok(Iso {
        path: out.to_path_buf(),
        config_partition: config_partition(out)?,
    })
}

/// A fresh random FAT volume serial (what GRUB finds the config partition by).
fn volume_serial() -> Result<u32> {
    use rand_core::RngCore;
    let mut b = [0u8; 4];
    rand_core::OsRng
        .try_fill_bytes(&mut b)
        .map_err(|e| iso_error(format!("no random numbers for the volume serial: {e}")))?;
    Ok(u32::from_le_bytes(b))
}

/// Runs one of the image tools; the error names the tool's package and shows its output.
fn tool(cmd: &mut Command) -> Result<()> {
    let program = cmd.get_program().to_string_lossy().into_owned();
    run_command(cmd).map(drop).map_err(|e| {
        let package = TOOLS
            .iter()
            .find(|(c, _)| *c == program)
            .map_or("", |(_, p)| p);
        iso_error(format!("{program} (Debian package {package}) failed"))
            .with_evidence(e.to_string())
    })
}

/// The config partition of the image at `path`: byte offset and length, from the MBR.
pub fn config_partition(path: &Path) -> Result<(u64, u64)> {
    let mut mbr = [0u8; 512];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut mbr))
        .map_err(|e| {
            Error::io(
                format_args!("reading the partition table of {}", path.display()),
                e,
            )
        })?;
    config_partition_in(&mbr).ok_or_else(|| {
        iso_error(format!(
            "{} has no vdcnet config partition (MBR slot {CONFIG_SLOT}, type 0x{CONFIG_MBR_TYPE:02x}): not made by `vdcnet iso`?",
            path.display()
        ))
    })
}

/// The config partition's byte offset and length in an MBR sector, if it is there.
pub fn config_partition_in(mbr: &[u8; 512]) -> Option<(u64, u64)> {
    if mbr[510..] != [0x55, 0xaa] {
        return None;
    }
    let e = &mbr[446 + 16 * (CONFIG_SLOT - 1)..][..16];
    let lba = u64::from(u32::from_le_bytes([e[8], e[9], e[10], e[11]]));
    let sectors = u64::from(u32::from_le_bytes([e[12], e[13], e[14], e[15]]));
    (e[4] == CONFIG_MBR_TYPE && lba > 0 && sectors > 0).then_some((lba * 512, sectors * 512))
}

/// The mtools image argument for the config partition: `PATH@@OFFSET`.
fn mtools_image(path: &Path) -> Result<String> {
    let (offset, _) = config_partition(path)?;
    Ok(format!("{}@@{offset}", path.display()))
}

/// The node file in the config partition of the image (or a device) at `path`.
pub fn read_node_file(path: &Path) -> Result<String> {
    let out = run_command(
        Command::new("mtype")
            .arg("-i")
            .arg(mtools_image(path)?)
            .arg(format!("::{NODE_FILE}")),
    )
    .map_err(|e| {
        iso_error(format!("reading {NODE_FILE} from {}", path.display()))
            .with_evidence(e.to_string())
    })?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Replaces the node file in the config partition of the image (or device) at `path`,
/// after checking it. The image's built-in copy stays as it was.
pub fn write_node_file(path: &Path, config: &str) -> Result<()> {
    check_config(config)?;
    let image = mtools_image(path)?;
    let tmp = TempDir::new("node")?;
    let node = tmp.path().join(NODE_FILE);
    std::fs::write(&node, config)
        .map_err(|e| Error::io(format_args!("writing {}", node.display()), e))?;
    tool(
        Command::new("mcopy")
            .arg("-o")
            .arg("-i")
            .arg(&image)
            .arg(&node)
            .arg(format!("::{NODE_FILE}")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grub_cfg_prefers_the_partition_with_this_serial_and_boots_at_once() {
        let cfg = grub_cfg(0x1234_abcd, "vdcnet.stats=10", 0);
        assert!(cfg.contains("search --no-floppy --fs-uuid --set=vdcnet_part 1234-abcd; then\n"));
        assert!(cfg.contains("set vdcnet_node=($vdcnet_part)/node.conf"));
        assert!(cfg.contains("set vdcnet_node=/boot/node.conf"));
        assert!(cfg.contains("set timeout=0\n"));
        assert!(cfg.contains("terminal_output serial console\n"));
        assert!(cfg.contains("  multiboot2 /boot/vdcnet vdcnet.stats=10\n"));
        assert!(cfg.contains("  module2 $vdcnet_node\n"));
        assert!(grub_cfg(1, " ", 5).contains("  multiboot2 /boot/vdcnet\n"));
        assert!(grub_cfg(1, "", 5).contains("set timeout=5\n"));
    }

    fn mbr_with(slot: usize, kind: u8, lba: u32, sectors: u32) -> [u8; 512] {
        let mut mbr = [0u8; 512];
        mbr[510] = 0x55;
        mbr[511] = 0xaa;
        let e = &mut mbr[446 + 16 * (slot - 1)..][..16];
        e[4] = kind;
        e[8..12].copy_from_slice(&lba.to_le_bytes());
        e[12..16].copy_from_slice(&sectors.to_le_bytes());
        mbr
    }

    #[test]
    fn finds_the_config_partition_in_slot_three_only() {
        let mbr = mbr_with(3, 0x0e, 8508, 8192);
        assert_eq!(config_partition_in(&mbr), Some((8508 * 512, 8192 * 512)));
        assert_eq!(config_partition_in(&mbr_with(2, 0x0e, 8508, 8192)), None);
        assert_eq!(config_partition_in(&mbr_with(3, 0xee, 1, 100)), None);
        assert_eq!(config_partition_in(&mbr_with(3, 0x0e, 0, 100)), None);
        let mut unsigned = mbr;
        unsigned[511] = 0;
        assert_eq!(config_partition_in(&unsigned), None);
    }

    #[test]
    fn names_each_missing_package_once() {
        let empty = TempDir::new("no-tools").unwrap();
        let missing = missing_packages_in(empty.path().as_os_str(), empty.path());
        assert_eq!(
            missing,
            [
                "grub-common",
                "xorriso",
                "mtools",
                "grub-pc-bin",
                "grub-efi-amd64-bin"
            ]
        );
        // With every tool and platform directory in place, nothing is missing.
        for (cmd, _) in TOOLS {
            std::fs::write(empty.path().join(cmd), "").unwrap();
        }
        for (dir, _) in GRUB_PLATFORMS {
            std::fs::create_dir_all(empty.path().join(dir.trim_start_matches('/'))).unwrap();
        }
        assert!(missing_packages_in(empty.path().as_os_str(), empty.path()).is_empty());
    }

    #[test]
    fn a_bad_node_file_is_refused_with_every_error_and_its_line() {
        let err = check_config("[Link]\nAddress = 10.0.2.15/33\nColour = blue\n").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Iso);
        assert!(err.message().contains("line 2:"), "{}", err.message());
        assert!(err.message().contains("line 3:"), "{}", err.message());
        assert!(check_config("[Link]\nAddress = 10.0.2.15/24\n").is_ok());
    }
}
