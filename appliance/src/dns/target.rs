//! The caller's buffer as a place `domain` composes a message into.
//!
//! `domain`'s message builder writes into any [`Composer`]; its own fixed-size targets
//! (`octseq::Array`, `heapless::Vec`) own their bytes, so an answer would be built on the
//! stack and copied out. [`SliceTarget`] borrows the caller's buffer instead: the answer
//! is written in place and a push that does not fit fails with [`ShortBuf`] (the builder
//! then rewinds, and the server answers with TC=1 instead).

use domain::base::wire::Composer;
use octseq::builder::{OctetsBuilder, ShortBuf, Truncate};

/// A growable message inside a fixed slice.
pub(super) struct SliceTarget<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> SliceTarget<'a> {
    /// An empty message over `buf`; it can grow to `buf.len()` bytes.
    pub(super) fn new(buf: &'a mut [u8]) -> SliceTarget<'a> {
        SliceTarget { buf, len: 0 }
    }

    /// Bytes written so far.
    pub(super) fn len(&self) -> usize {
        self.len
    }
}

impl AsRef<[u8]> for SliceTarget<'_> {
    fn as_ref(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl AsMut<[u8]> for SliceTarget<'_> {
    fn as_mut(&mut self) -> &mut [u8] {
        &mut self.buf[..self.len]
    }
}

impl OctetsBuilder for SliceTarget<'_> {
    type AppendError = ShortBuf;

    fn append_slice(&mut self, slice: &[u8]) -> Result<(), ShortBuf> {
        let end = self.len.checked_add(slice.len()).ok_or(ShortBuf)?;
        let room = self.buf.get_mut(self.len..end).ok_or(ShortBuf)?;
        room.copy_from_slice(slice);
        self.len = end;
        Ok(())
    }
}

impl Truncate for SliceTarget<'_> {
    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
}

impl Composer for SliceTarget<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appends_until_the_slice_is_full_and_then_refuses_whole() {
        let mut buf = [0u8; 5];
        let mut t = SliceTarget::new(&mut buf);
        t.append_slice(b"abc").unwrap();
        assert_eq!(t.append_slice(b"def"), Err(ShortBuf));
        assert_eq!(t.as_ref(), b"abc");
        t.append_slice(b"de").unwrap();
        assert_eq!(t.len(), 5);
        t.truncate(1);
        assert_eq!(t.as_ref(), b"a");
        t.truncate(4);
        assert_eq!(t.len(), 1);
    }
}
