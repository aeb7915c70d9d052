//! Building the appliance image and finding it.
//!
//! The image is the `vdcnet-image` binary of the `vdcnet-boot` crate, built for
//! `x86_64-unknown-none` in release mode. Cargo itself says where it put the ELF
//! (`--message-format=json`), so whatever `CARGO_TARGET_DIR` is in force, the path is right.
//! `VDCNET_IMAGE=/path/to/elf` skips the build and uses that file.

use crate::error::{Error, ErrorKind, Result};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, OnceLock};

/// The target the image is built for.
pub const IMAGE_TARGET: &str = "x86_64-unknown-none";
/// The crate that builds the image.
pub const IMAGE_PACKAGE: &str = "vdcnet-boot";
/// The image binary's name.
pub const IMAGE_BIN: &str = "vdcnet-image";

/// The workspace root (the directory holding the root `Cargo.toml`).
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The `cargo` to run: the one that is running us, if any.
pub(crate) fn cargo() -> PathBuf {
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

/// How much of cargo's output to show while building.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildOutput {
    /// Cargo's progress and warnings go to our stderr as they come.
    Show,
    /// Cargo's stderr is kept and only shown in the error if the build fails.
    Quiet,
}

/// Builds the image now (cargo decides whether anything needs rebuilding) and returns the
/// path of the ELF. Honours `VDCNET_IMAGE`.
pub fn build_image(output: BuildOutput) -> Result<PathBuf> {
    if let Some(path) = std::env::var_os("VDCNET_IMAGE") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Error::new(
                ErrorKind::Build,
                format!("VDCNET_IMAGE={} is not a file", path.display()),
            ))
        };
    }
    let mut cmd = Command::new(cargo());
    cmd.current_dir(workspace_root())
        .args(["build", "--release", "--target", IMAGE_TARGET, "-p"])
        .arg(IMAGE_PACKAGE)
        .args([
            "--bin",
            IMAGE_BIN,
            "--message-format=json-render-diagnostics",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(match output {
            BuildOutput::Show => Stdio::inherit(),
            BuildOutput::Quiet => Stdio::piped(),
        });
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format_args!("cannot run {:?}", cmd), e))?;
    // Drain stderr on a thread so a chatty build cannot block on a full pipe.
    let stderr = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(err).lines().map_while(|l| l.ok()) {
                text.push_str(&line);
                text.push('\n');
            }
            text
        })
    });
    let mut executable = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(|l| l.ok()) {
            if let Some(path) = executable_from_message(&line) {
                executable = Some(path);
            }
        }
    }
    let status = child
        .wait()
        .map_err(|e| Error::io("waiting for cargo build", e))?;
    let stderr = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    if !status.success() {
        return Err(Error::new(
            ErrorKind::Build,
            format!("building the image failed ({status})"),
        )
        .with_evidence(stderr));
    }
    executable.ok_or_else(|| {
        Error::new(
            ErrorKind::Build,
            format!("cargo built {IMAGE_PACKAGE} but named no `{IMAGE_BIN}` executable"),
        )
        .with_evidence(stderr)
    })
}

/// Picks the image's path out of one line of cargo's JSON messages.
fn executable_from_message(line: &str) -> Option<PathBuf> {
    let msg: serde_json::Value = serde_json::from_str(line).ok()?;
    if msg.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    if msg.get("target")?.get("name")?.as_str()? != IMAGE_BIN {
        return None;
    }
    Some(PathBuf::from(msg.get("executable")?.as_str()?))
}

/// The image, built at most once per process (later calls return the same path).
/// A failed build is not cached: the next call tries again.
pub fn image() -> Result<PathBuf> {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    static BUILDING: Mutex<()> = Mutex::new(());
    if let Some(path) = BUILT.get() {
        return Ok(path.clone());
    }
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(path) = BUILT.get() {
        return Ok(path.clone());
    }
    let path = build_image(BuildOutput::Quiet)?;
    Ok(BUILT.get_or_init(|| path).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_image_in_a_compiler_artifact_message() {
        let line = r#"{"reason":"compiler-artifact","package_id":"x","target":{"kind":["bin"],"name":"vdcnet-image"},"executable":"/t/x86_64-unknown-none/release/vdcnet-image","fresh":true}"#;
        assert_eq!(
            executable_from_message(line),
            Some(PathBuf::from("/t/x86_64-unknown-none/release/vdcnet-image"))
        );
    }

    #[test]
    fn ignores_other_artifacts_and_non_json() {
        let lib =
            r#"{"reason":"compiler-artifact","target":{"name":"vdcnet_hal"},"executable":null}"#;
        assert_eq!(executable_from_message(lib), None);
        assert_eq!(
            executable_from_message(r#"{"reason":"build-finished","success":true}"#),
            None
        );
        assert_eq!(executable_from_message("warning: something"), None);
    }
}
