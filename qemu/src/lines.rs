//! A growing list of text lines filled by a reader thread (a VM's console, its decoded
//! defmt log, QEMU's stderr) that other threads can wait on with a deadline.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Why a wait ended without a matching line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitError {
    /// The deadline passed.
    TimedOut,
    /// The writer closed the stream (the VM exited) and no line matched.
    Closed,
}

/// Shared, append-only lines. Cloning gives another handle to the same lines.
#[derive(Clone, Default)]
pub struct Lines {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

#[derive(Default)]
struct State {
    lines: Vec<String>,
    closed: bool,
}

impl Lines {
    /// New, empty and open.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A reader thread that panicked leaves consistent data behind: keep going.
        self.shared
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
    }

    /// Appends one line and wakes the waiters.
    pub fn push(&self, line: impl Into<String>) {
        self.lock().lines.push(line.into());
        self.shared.changed.notify_all();
    }

    /// Marks the stream as finished: waits that find nothing now fail with `Closed`.
    pub fn close(&self) {
        self.lock().closed = true;
        self.shared.changed.notify_all();
    }

    /// Whether the writer has finished.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Number of lines so far.
    pub fn len(&self) -> usize {
        self.lock().lines.len()
    }

    /// Whether no line has arrived yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A copy of every line so far.
    pub fn snapshot(&self) -> Vec<String> {
        self.lock().lines.clone()
    }

    /// A copy of the last `n` lines.
    pub fn tail(&self, n: usize) -> Vec<String> {
        let state = self.lock();
        let start = state.lines.len().saturating_sub(n);
        state.lines[start..].to_vec()
    }

    /// Every line so far that contains `pattern`.
    pub fn matching(&self, pattern: &str) -> Vec<String> {
        let state = self.lock();
        state
            .lines
            .iter()
            .filter(|l| l.contains(pattern))
            .cloned()
            .collect()
    }

    /// Waits for the first line, counting from index `from`, for which `matches` holds;
    /// returns its index and text. Lines already present count.
    pub fn wait_from(
        &self,
        from: usize,
        mut matches: impl FnMut(&str) -> bool,
        timeout: Duration,
    ) -> Result<(usize, String), WaitError> {
        let deadline = Instant::now() + timeout;
        let mut next = from;
        let mut state = self.lock();
        loop {
            while next < state.lines.len() {
                if matches(&state.lines[next]) {
                    return Ok((next, state.lines[next].clone()));
                }
                next += 1;
            }
            if state.closed {
                return Err(WaitError::Closed);
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(WaitError::TimedOut);
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, deadline - now)
                .unwrap_or_else(|poison| poison.into_inner())
                .0;
        }
    }

    /// Waits for the first line (from the start) that contains `pattern`.
    pub fn wait_for(&self, pattern: &str, timeout: Duration) -> Result<String, WaitError> {
        self.wait_from(0, |l| l.contains(pattern), timeout)
            .map(|(_, l)| l)
    }

    /// Waits until the writer closes the stream.
    pub fn wait_closed(&self, timeout: Duration) -> Result<(), WaitError> {
        match self.wait_from(usize::MAX, |_| false, timeout) {
            Err(WaitError::Closed) => Ok(()),
            Err(e) => Err(e),
            Ok(_) => unreachable!("no line matches"),
        }
    }
}

/// Splits a byte stream into lines: `\n` ends a line, `\r` is dropped, invalid UTF-8 is
/// replaced. Whatever is left when the stream ends is the last line.
#[derive(Default)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
}

impl LineSplitter {
    /// Feeds bytes; calls `emit` for each completed line.
    pub(crate) fn feed(&mut self, bytes: &[u8], mut emit: impl FnMut(String)) {
        for &b in bytes {
            match b {
                b'\n' => emit(self.take()),
                b'\r' => {}
                _ => self.partial.push(b),
            }
        }
    }

    /// Ends the stream; returns the unterminated last line, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        line
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::thread;

    #[test]
    fn wait_returns_a_line_pushed_later_by_another_thread() {
        let lines = Lines::new();
        let writer = lines.clone();
        let t = thread::spawn(move || {
            writer.push("booting");
            thread::sleep(Duration::from_millis(20));
            writer.push("vdcnet: ready (1 link)");
        });
        let got = lines.wait_for("vdcnet: ready", Duration::from_secs(5));
        t.join().unwrap();
        assert_eq!(got, Ok("vdcnet: ready (1 link)".to_string()));
    }

    #[test]
    fn wait_fails_with_closed_when_stream_ends_without_a_match() {
        let lines = Lines::new();
        lines.push("config: line 2: bad");
        lines.close();
        assert_eq!(
            lines.wait_for("ready", Duration::from_secs(5)),
            Err(WaitError::Closed)
        );
        // A line that did arrive is still found after close.
        assert!(lines.wait_for("line 2", Duration::ZERO).is_ok());
    }

    #[test]
    fn wait_times_out() {
        let lines = Lines::new();
        assert_eq!(
            lines.wait_for("x", Duration::from_millis(10)),
            Err(WaitError::TimedOut)
        );
    }

    #[test]
    fn splitter_handles_crlf_split_reads_and_a_final_partial_line() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.feed(b"vdcnet 0.1 boo", |l| out.push(l));
        s.feed(b"ting\r\nvdcnet: fault: vec", |l| out.push(l));
        s.feed(b"tor=14", |l| out.push(l));
        out.extend(s.finish());
        assert_eq!(out, ["vdcnet 0.1 booting", "vdcnet: fault: vector=14"]);
    }
}
