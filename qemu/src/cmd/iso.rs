//! `vdcnet iso`: make the flashable hybrid image (BIOS and UEFI, CD or `dd` to a stick),
//! or replace the node file in one already made or flashed. Prints the image's path as
//! the last line of stdout.

use super::{Args, CmdResult, UsageError};
use std::path::PathBuf;
use std::process::ExitCode;
use vdcnet_appliance::config::DEFAULT_CONFIG_TEXT;
use vdcnet_qemu::iso::{self, IsoOptions};
use vdcnet_qemu::{build_image, BuildOutput};

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
struct Request {
    config: Option<PathBuf>,
    out: PathBuf,
    append: String,
    timeout_secs: u32,
    /// `--update IMAGE`: replace the node file there instead of building.
    update: Option<PathBuf>,
}

fn parse(args: &[String]) -> Result<Request, UsageError> {
    let mut r = Request {
        config: None,
        out: PathBuf::from("vdcnet.iso"),
        append: String::new(),
        timeout_secs: 0,
        update: None,
    };
    let mut out_given = false;
    let mut a = Args::new(args);
    while let Some(flag) = a.next_flag() {
        match flag {
            "--config" => r.config = Some(PathBuf::from(a.value(flag)?)),
            "--out" => {
                r.out = PathBuf::from(a.value(flag)?);
                out_given = true;
            }
            "--append" => {
                if !r.append.is_empty() {
                    r.append.push(' ');
                }
                r.append.push_str(a.value(flag)?.trim());
            }
            "--timeout" => r.timeout_secs = a.parsed(flag)?,
            "--update" => r.update = Some(PathBuf::from(a.value(flag)?)),
            other => return Err(UsageError(format!("unknown option `{other}`"))),
        }
    }
    if r.update.is_some() {
        if r.config.is_none() {
            return Err(UsageError("--update needs --config FILE".into()));
        }
        if out_given || !r.append.is_empty() || r.timeout_secs != 0 {
            return Err(UsageError(
                "--update only replaces the node file: --out, --append and --timeout need a new image"
                    .into(),
            ));
        }
    }
    Ok(r)
}

pub fn main(args: &[String]) -> CmdResult {
    let r = parse(args)?;
    let config = match &r.config {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("--config {}: {e}", path.display()))?,
        None => DEFAULT_CONFIG_TEXT.to_string(),
    };
    if let Some(target) = &r.update {
        iso::write_node_file(target, &config)?;
        eprintln!(
            "vdcnet: replaced {} in the config partition of {}",
            iso::NODE_FILE,
            target.display()
        );
        println!("{}", target.display());
        return Ok(ExitCode::SUCCESS);
    }
    // Fail on a bad node file or a missing tool before spending time on the build.
    iso::check_config(&config)?;
    iso::check_tools()?;
    let image = build_image(BuildOutput::Show)?;
    let made = iso::build(
        &IsoOptions {
            image,
            config,
            append: r.append,
            timeout_secs: r.timeout_secs,
        },
        &r.out,
    )?;
    let size = std::fs::metadata(&made.path)?.len();
    let (offset, len) = made.config_partition;
    eprintln!(
        "vdcnet: image is {size} bytes ({:.1} MiB); node file partition (FAT, label {}) at byte {offset}, {} KiB",
        size as f64 / (1024.0 * 1024.0),
        iso::CONFIG_LABEL,
        len / 1024
    );
    eprintln!(
        "vdcnet: flash: dd if={} of=/dev/sdX bs=4M conv=fsync; change the node file: \
         vdcnet iso --update {} --config NEW.conf (or mcopy -o -i {}@@{offset} NEW.conf ::{})",
        made.path.display(),
        made.path.display(),
        made.path.display(),
        iso::NODE_FILE
    );
    println!("{}", made.path.display());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn defaults_to_vdcnet_iso_with_the_built_in_config_and_no_menu_wait() {
        let r = parse(&[]).unwrap();
        assert_eq!(r.out, PathBuf::from("vdcnet.iso"));
        assert_eq!(r.config, None);
        assert_eq!(r.timeout_secs, 0);
        assert_eq!(r.update, None);
    }

    #[test]
    fn reads_every_flag_and_joins_appends() {
        let r = parse(&args(&[
            "--config",
            "n.conf",
            "--out",
            "/tmp/x.iso",
            "--append",
            "vdcnet.stats=10",
            "--append",
            "vdcnet.ping=10.0.2.2",
            "--timeout",
            "3",
        ]))
        .unwrap();
        assert_eq!(r.config, Some(PathBuf::from("n.conf")));
        assert_eq!(r.out, PathBuf::from("/tmp/x.iso"));
        assert_eq!(r.append, "vdcnet.stats=10 vdcnet.ping=10.0.2.2");
        assert_eq!(r.timeout_secs, 3);
    }

    #[test]
    fn update_needs_a_config_and_refuses_build_options() {
        assert!(parse(&args(&["--update", "x.iso"])).is_err());
        assert!(parse(&args(&["--update", "x.iso", "--config", "n", "--out", "y"])).is_err());
        let r = parse(&args(&["--update", "/dev/sdb", "--config", "n"])).unwrap();
        assert_eq!(r.update, Some(PathBuf::from("/dev/sdb")));
        assert!(parse(&args(&["--colour"])).is_err());
        assert!(parse(&args(&["--timeout", "soon"])).is_err());
    }
}
