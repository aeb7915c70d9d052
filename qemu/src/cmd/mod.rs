//! The `vdcnet` subcommands, one module each, and a small argument reader they share.

pub mod bench;
pub mod bench_mycelium;
pub mod bench_routing;
pub mod build;
pub mod check;
pub mod demo;
pub mod iso;
pub mod keygen;
pub mod lab;
pub mod mesh;
pub mod run;
pub mod status;
pub mod test;

use std::fmt;

/// What a subcommand returns: an exit code, or an error to print.
pub type CmdResult = Result<std::process::ExitCode, Box<dyn std::error::Error>>;

/// A mistake in the command line (printed with the usage text, exit status 2).
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Reads `--flag value` pairs in order.
pub struct Args<'a> {
    args: std::slice::Iter<'a, String>,
}

impl<'a> Args<'a> {
    pub fn new(args: &'a [String]) -> Self {
        Args { args: args.iter() }
    }

    /// The next flag, if any.
    pub fn next_flag(&mut self) -> Option<&'a str> {
        self.args.next().map(String::as_str)
    }

    /// The value that must follow `flag`.
    pub fn value(&mut self, flag: &str) -> Result<&'a str, UsageError> {
        self.args
            .next()
            .map(String::as_str)
            .ok_or_else(|| UsageError(format!("{flag} needs a value")))
    }

    /// The value that must follow `flag`, parsed.
    pub fn parsed<T: std::str::FromStr>(&mut self, flag: &str) -> Result<T, UsageError>
    where
        T::Err: fmt::Display,
    {
        let v = self.value(flag)?;
        v.parse()
            .map_err(|e| UsageError(format!("{flag} {v}: {e}")))
    }
}

/// Fails on any argument (for subcommands that take none).
pub fn no_args(args: &[String]) -> Result<(), UsageError> {
    match args.first() {
        Some(a) => Err(UsageError(format!("unexpected argument `{a}`"))),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_flags_and_values_in_order() {
        let v: Vec<String> = ["--mem", "16", "--machine"].map(String::from).to_vec();
        let mut a = Args::new(&v);
        assert_eq!(a.next_flag(), Some("--mem"));
        assert_eq!(a.parsed::<u32>("--mem").unwrap(), 16);
        assert_eq!(a.next_flag(), Some("--machine"));
        assert!(a.value("--machine").is_err());
        assert_eq!(a.next_flag(), None);
    }
}
