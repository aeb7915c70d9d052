//! Booting through firmware from a drive instead of `-kernel`: the medium (CD, IDE disk,
//! USB stick) holding a bootable image such as `vdcnet iso` makes, and the firmware that
//! boots it (SeaBIOS, QEMU's default, or OVMF for UEFI).

use crate::error::{Error, ErrorKind, Result};
use std::path::{Path, PathBuf};

/// A drive the VM boots from. Disks and sticks run with `snapshot=on`: what the guest
/// writes goes to a temporary overlay, so the image file stays as it was and several VMs
/// can boot the same file at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Medium {
    /// A CD-ROM drive (IDE) holding the image.
    Cdrom(PathBuf),
    /// An IDE hard disk holding the image (as after `dd` to a disk).
    Disk(PathBuf),
    /// A USB mass-storage stick behind an xHCI controller (as after `dd` to a stick).
    Usb(PathBuf),
}

impl Medium {
    /// The image file.
    pub fn path(&self) -> &Path {
        match self {
            Medium::Cdrom(p) | Medium::Disk(p) | Medium::Usb(p) => p,
        }
    }

    /// A short name for messages ("cd", "disk", "usb").
    pub fn kind(&self) -> &'static str {
        match self {
            Medium::Cdrom(_) => "cd",
            Medium::Disk(_) => "disk",
            Medium::Usb(_) => "usb",
        }
    }

    /// QEMU arguments that attach the drive.
    pub fn qemu_args(&self) -> Vec<String> {
        // QEMU option values escape a comma by doubling it.
        let file = self.path().to_string_lossy().replace(',', ",,");
        match self {
            Medium::Cdrom(_) => vec![
                "-drive".into(),
                format!("file={file},format=raw,if=ide,media=cdrom,readonly=on"),
            ],
            Medium::Disk(_) => vec![
                "-drive".into(),
                format!("file={file},format=raw,if=ide,snapshot=on"),
            ],
            Medium::Usb(_) => vec![
                "-drive".into(),
                format!("file={file},format=raw,if=none,id=stick,snapshot=on"),
                "-device".into(),
                "qemu-xhci,id=xhci".into(),
                "-device".into(),
                "usb-storage,bus=xhci.0,drive=stick".into(),
            ],
        }
    }
}

/// The firmware that boots a [`Medium`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Firmware {
    /// SeaBIOS (legacy BIOS), QEMU's default.
    #[default]
    SeaBios,
    /// OVMF (UEFI), from Debian's `ovmf` package. It wants at least 128 MiB of guest
    /// memory and, under TCG, takes tens of seconds to boot.
    Ovmf,
}

/// Where Debian (and older Debian/Ubuntu releases) put OVMF's combined image.
const OVMF_IMAGES: [&str; 3] = [
    "/usr/share/ovmf/OVMF.fd",
    "/usr/share/OVMF/OVMF.fd",
    "/usr/share/qemu/OVMF.fd",
];

impl Firmware {
    /// The name used in messages.
    pub fn name(self) -> &'static str {
        match self {
            Firmware::SeaBios => "seabios",
            Firmware::Ovmf => "ovmf",
        }
    }

    /// QEMU arguments that select the firmware; fails naming the package if OVMF is
    /// missing.
    pub fn qemu_args(self) -> Result<Vec<String>> {
        match self {
            Firmware::SeaBios => Ok(Vec::new()),
            Firmware::Ovmf => {
                let image = OVMF_IMAGES
                    .iter()
                    .find(|p| Path::new(p).is_file())
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::Spawn,
                            format!(
                                "no OVMF firmware (looked for {}): install the Debian package ovmf",
                                OVMF_IMAGES.join(", ")
                            ),
                        )
                    })?;
                // `-bios` maps the combined image read-only: UEFI variables written by
                // the guest are not kept, which is what a test wants.
                Ok(vec!["-bios".into(), image.to_string()])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drives_attach_as_cd_ide_disk_and_usb_stick_without_writing_the_file() {
        let cd = Medium::Cdrom("/t/a.iso".into()).qemu_args();
        assert_eq!(
            cd,
            [
                "-drive",
                "file=/t/a.iso,format=raw,if=ide,media=cdrom,readonly=on"
            ]
        );
        let disk = Medium::Disk("/t/a,b.iso".into()).qemu_args();
        assert_eq!(
            disk,
            ["-drive", "file=/t/a,,b.iso,format=raw,if=ide,snapshot=on"]
        );
        let usb = Medium::Usb("/t/a.iso".into()).qemu_args();
        assert!(usb[1].contains("if=none,id=stick,snapshot=on"), "{usb:?}");
        assert_eq!(usb[3], "qemu-xhci,id=xhci");
        assert_eq!(usb[5], "usb-storage,bus=xhci.0,drive=stick");
    }

    #[test]
    fn seabios_is_the_default_and_needs_no_arguments() {
        assert_eq!(Firmware::default(), Firmware::SeaBios);
        assert!(Firmware::SeaBios.qemu_args().unwrap().is_empty());
    }
}
