//! `vdcnet build`: build the image and print its path as the last line of stdout.

use super::{no_args, CmdResult};
use std::process::ExitCode;
use vdcnet_qemu::{build_image, BuildOutput};

pub fn main(args: &[String]) -> CmdResult {
    no_args(args)?;
    let path = build_image(BuildOutput::Show)?;
    let size = std::fs::metadata(&path)?.len();
    eprintln!(
        "vdcnet: image is {size} bytes ({:.1} KiB)",
        size as f64 / 1024.0
    );
    println!("{}", path.display());
    Ok(ExitCode::SUCCESS)
}
