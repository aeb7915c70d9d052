//! The harness's one error type: what went wrong plus the evidence (console tail, QEMU's
//! stderr, exit status) so that a failing test explains itself.

use std::fmt;

/// What kind of step failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// `cargo build` of the image failed or did not name an image.
    Build,
    /// QEMU (or a helper such as `ip`) could not be started or set up.
    Spawn,
    /// A wait ran past its deadline.
    Timeout,
    /// The VM exited while we were waiting for something else.
    Exited,
    /// A host-side network step failed (namespace, tap, socket, ping, echo).
    Net,
    /// Making or editing a bootable image failed (a missing tool, a bad node file).
    Iso,
    /// Anything else from the host OS.
    Io,
}

/// An error with the evidence gathered at the time it happened.
///
/// `Debug` prints the same as `Display`, so `.unwrap()` in a test shows the console tail
/// rather than an escaped one-line struct.
pub struct Error {
    kind: ErrorKind,
    message: String,
    evidence: String,
}

impl Error {
    /// An error without evidence.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            evidence: String::new(),
        }
    }

    /// Attaches evidence (for example a VM's console tail) printed after the message.
    pub fn with_evidence(mut self, evidence: impl Into<String>) -> Self {
        let evidence = evidence.into();
        if !evidence.is_empty() {
            if !self.evidence.is_empty() {
                self.evidence.push('\n');
            }
            self.evidence.push_str(&evidence);
        }
        self
    }

    /// What kind of step failed.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The one-line message, without the evidence.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The evidence attached to this error (may be empty).
    pub fn evidence(&self) -> &str {
        &self.evidence
    }

    pub(crate) fn io(context: impl fmt::Display, err: std::io::Error) -> Self {
        Error::new(ErrorKind::Io, format!("{context}: {err}"))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if !self.evidence.is_empty() {
            write!(f, "\n{}", self.evidence)?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::error::Error for Error {}

/// The harness's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_message_and_evidence_on_separate_lines() {
        let err = Error::new(ErrorKind::Timeout, "no ready line").with_evidence("console:\n  boot");
        assert_eq!(format!("{err:?}"), "no ready line\nconsole:\n  boot");
        assert_eq!(err.kind(), ErrorKind::Timeout);
    }
}
