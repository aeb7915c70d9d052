//! The Prometheus text exposition format (version 0.0.4), written family by family.
//!
//! A family is opened with [`Exposition::family`] (its `# HELP` and `# TYPE` lines), then
//! gets one [`Exposition::sample`] per label set. Label values are escaped (`\`, `"`,
//! newline); names are `&'static str`s chosen in this crate, so they are valid by
//! construction.

use core::fmt::{self, Write};

/// The `Content-Type` of a body written here.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// What a family counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (name ends in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

/// A metric value: counts print as integers, measurements with their fraction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Int(v as u64)
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

/// Writes one exposition into `out`.
pub struct Exposition<'a> {
    out: &'a mut dyn Write,
    family: &'static str,
    failed: bool,
}

impl<'a> Exposition<'a> {
    pub fn new(out: &'a mut dyn Write) -> Exposition<'a> {
        Exposition {
            out,
            family: "",
            failed: false,
        }
    }

    /// Starts the family `name`: its HELP and TYPE lines. Every family is started once.
    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) {
        self.family = name;
        let kind = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        };
        let r = writeln!(self.out, "# HELP {name} {help}")
            .and_then(|()| writeln!(self.out, "# TYPE {name} {kind}"));
        self.failed |= r.is_err();
    }

    /// One sample of the current family with `labels` (name, value) pairs.
    pub fn sample(&mut self, labels: &[(&str, &dyn fmt::Display)], value: impl Into<Value>) {
        let r = self.write_sample(labels, value.into());
        self.failed |= r.is_err();
    }

    /// Starts a family and writes its one unlabelled sample.
    pub fn single(&mut self, name: &'static str, kind: Kind, help: &str, value: impl Into<Value>) {
        self.family(name, kind, help);
        self.sample(&[], value);
    }

    /// Whether every write succeeded.
    pub fn finish(self) -> fmt::Result {
        if self.failed {
            Err(fmt::Error)
        } else {
            Ok(())
        }
    }

    fn write_sample(&mut self, labels: &[(&str, &dyn fmt::Display)], value: Value) -> fmt::Result {
        self.out.write_str(self.family)?;
        if !labels.is_empty() {
            self.out.write_char('{')?;
            for (i, (name, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.write_char(',')?;
                }
                write!(self.out, "{name}=\"")?;
                write!(Escaped(self.out), "{v}")?;
                self.out.write_char('"')?;
            }
            self.out.write_char('}')?;
        }
        match value {
            Value::Int(v) => writeln!(self.out, " {v}"),
            Value::Float(v) if v.is_finite() => writeln!(self.out, " {v}"),
            Value::Float(v) if v.is_nan() => writeln!(self.out, " NaN"),
            Value::Float(v) if v > 0.0 => writeln!(self.out, " +Inf"),
            Value::Float(_) => writeln!(self.out, " -Inf"),
        }
    }
}

/// Escapes a label value as the format requires.
struct Escaped<'a>(&'a mut dyn Write);

impl Write for Escaped<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            match c {
                '\\' => self.0.write_str("\\\\")?,
                '"' => self.0.write_str("\\\"")?,
                '\n' => self.0.write_str("\\n")?,
                c => self.0.write_char(c)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn families_have_help_and_type_and_labels_are_escaped() {
        let mut s = String::new();
        let mut e = Exposition::new(&mut s);
        e.family("vdcnet_x_total", Kind::Counter, "Things.");
        e.sample(&[("a", &"q\"u\\o\nte"), ("b", &7)], 3u64);
        e.single("vdcnet_y_seconds", Kind::Gauge, "Time.", 1.5);
        e.finish().unwrap();
        assert_eq!(
            s,
            "# HELP vdcnet_x_total Things.\n# TYPE vdcnet_x_total counter\n\
             vdcnet_x_total{a=\"q\\\"u\\\\o\\nte\",b=\"7\"} 3\n\
             # HELP vdcnet_y_seconds Time.\n# TYPE vdcnet_y_seconds gauge\nvdcnet_y_seconds 1.5\n"
        );
    }
}
