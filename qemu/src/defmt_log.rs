//! Turning the image's defmt frames (its second serial port) into readable lines.
//!
//! defmt sends an index into a table of format strings plus the raw arguments; the table
//! lives in the image's ELF (`.defmt` section), so the host needs the very ELF it booted.
//! Frames are rzCOBS-encoded and separated by zero bytes, so a lost or garbled frame costs
//! only itself.

use defmt_decoder::{DecodeError, Table};
use std::io::Read;
use std::path::Path;

/// The decoding table of an image.
pub struct LogTable {
    table: Table,
}

impl LogTable {
    /// Reads the table from the image's ELF. `Ok(None)` when the image has no defmt data.
    pub fn load(elf: &Path) -> Result<Option<LogTable>, String> {
        let bytes =
            std::fs::read(elf).map_err(|e| format!("cannot read {}: {e}", elf.display()))?;
        Self::parse(&bytes)
    }

    /// Like [`LogTable::load`], from the ELF's bytes.
    pub fn parse(elf: &[u8]) -> Result<Option<LogTable>, String> {
        Table::parse(elf)
            .map(|t| t.map(|table| LogTable { table }))
            .map_err(|e| format!("cannot read the image's defmt table: {e}"))
    }

    /// Decodes a byte stream until it ends, calling `emit` with each frame as one line
    /// (`<timestamp> <LEVEL> <message>`). A malformed frame becomes a marker line.
    pub fn decode_stream(&self, mut input: impl Read, mut emit: impl FnMut(String)) {
        let mut decoder = self.table.new_stream_decoder();
        let mut buf = [0u8; 4096];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            decoder.received(&buf[..n]);
            loop {
                match decoder.decode() {
                    Ok(frame) => emit(frame.display(false).to_string()),
                    Err(DecodeError::UnexpectedEof) => break,
                    Err(DecodeError::Malformed) => {
                        emit("<malformed defmt frame>".to_string());
                        if !self.table.encoding().can_recover() {
                            // Raw encoding cannot find the next frame: stop decoding.
                            return;
                        }
                    }
                }
            }
        }
    }
}

/// Drains a stream that cannot be decoded (no table): reports how many bytes went by.
pub(crate) fn drain_undecodable(mut input: impl Read, why: &str, mut emit: impl FnMut(String)) {
    let mut total = 0usize;
    let mut buf = [0u8; 4096];
    while let Ok(n) = input.read(&mut buf) {
        if n == 0 {
            break;
        }
        if total == 0 {
            emit(format!("<defmt output not decoded: {why}>"));
        }
        total += n;
    }
    if total > 0 {
        emit(format!("<{total} bytes of defmt output not decoded>"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elf_without_defmt_has_no_table() {
        // A system ELF (coreutils) has no .defmt section. (Our own test binary may have
        // one: workspace feature unification builds the appliance with defmt on the host.)
        let elf = std::path::Path::new("/bin/true");
        assert!(LogTable::load(elf).unwrap().is_none());
    }

    #[test]
    fn undecodable_output_is_counted_not_lost() {
        let mut lines = Vec::new();
        drain_undecodable(&b"\x01\x02\x03"[..], "no table", |l| lines.push(l));
        assert_eq!(
            lines,
            [
                "<defmt output not decoded: no table>",
                "<3 bytes of defmt output not decoded>"
            ]
        );
    }
}
