//! DNS over TCP: the two-byte length framing (RFC 1035 §4.2.2, RFC 7766) of one
//! connection's queries.
//!
//! A connection may carry several queries, back to back or pipelined, split anywhere by
//! TCP. [`TcpQueries`] keeps the bytes of at most one query (plus its length) in a fixed
//! buffer: [`receive`](TcpQueries::receive) takes what fits and leaves the rest in the
//! socket, so a client that sends faster than it reads its answers is slowed by TCP's
//! own flow control, not by memory. [`DnsServer::answer_tcp`](super::DnsServer::answer_tcp)
//! takes the next whole query out and writes its framed answer.
//!
//! A query longer than [`MAX_TCP_QUERY`] (real ones are a few hundred bytes) or of length
//! zero ends the connection: the stream cannot be resynchronised.

/// The longest query accepted over TCP, in bytes.
pub const MAX_TCP_QUERY: usize = 1024;

/// One connection's received bytes.
#[derive(Clone)]
pub struct TcpQueries {
    buf: [u8; 2 + MAX_TCP_QUERY],
    len: usize,
}

/// What the front of the stream holds.
pub(super) enum Front<'a> {
    /// Not a whole query yet.
    Incomplete,
    /// A whole query (without its length).
    Query(&'a [u8]),
    /// A length the server does not accept: close the connection.
    Bad,
}

impl Default for TcpQueries {
    fn default() -> Self {
        TcpQueries::new()
    }
}

impl TcpQueries {
    /// An empty stream.
    pub fn new() -> TcpQueries {
        TcpQueries {
            buf: [0; 2 + MAX_TCP_QUERY],
            len: 0,
        }
    }

    /// Takes bytes received on the connection, as many as fit; returns how many. Stop
    /// reading the socket when it returns less than it was given, until
    /// [`answer_tcp`](super::DnsServer::answer_tcp) has made room.
    pub fn receive(&mut self, data: &[u8]) -> usize {
        let mut taken = 0;
        // Twice at most: the length, then (once it is known) the query.
        loop {
            let want = match self.declared() {
                Some(len) if len > 0 && len <= MAX_TCP_QUERY => 2 + len,
                Some(_) => self.len, // a bad length: nothing more is needed to say so
                None => 2,
            };
            let room = want.saturating_sub(self.len).min(data.len() - taken);
            if room == 0 {
                return taken;
            }
            self.buf[self.len..self.len + room].copy_from_slice(&data[taken..taken + room]);
            self.len += room;
            taken += room;
        }
    }

    /// Whether the stream holds part of a query (a connection closed now cut it short).
    pub fn is_mid_query(&self) -> bool {
        self.len > 0
    }

    /// The length the front query declares, once both bytes are in.
    fn declared(&self) -> Option<usize> {
        (self.len >= 2).then(|| usize::from(u16::from_be_bytes([self.buf[0], self.buf[1]])))
    }

    pub(super) fn front(&self) -> Front<'_> {
        match self.declared() {
            None => Front::Incomplete,
            Some(0) => Front::Bad,
            Some(len) if len > MAX_TCP_QUERY => Front::Bad,
            Some(len) if self.len < 2 + len => Front::Incomplete,
            Some(len) => Front::Query(&self.buf[2..2 + len]),
        }
    }

    /// Forgets the front query (it has been answered).
    pub(super) fn consume(&mut self) {
        // `receive` never takes bytes past the front query, so this empties the buffer.
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_split_anywhere_is_reassembled_and_the_next_waits_in_the_socket() {
        let stream = [0u8, 3, b'a', b'b', b'c', 0, 1, b'z'];
        for split in 0..stream.len() {
            let mut q = TcpQueries::new();
            let mut taken = q.receive(&stream[..split]);
            if taken == split {
                taken += q.receive(&stream[split..]);
            }
            assert_eq!(taken, 5, "split at {split}");
            assert!(matches!(q.front(), Front::Query(b"abc")));
            q.consume();
            assert!(!q.is_mid_query());
            assert_eq!(q.receive(&stream[taken..]), 3);
            assert!(matches!(q.front(), Front::Query(b"z")));
        }
    }

    #[test]
    fn zero_and_overlong_lengths_are_bad_and_take_nothing_more() {
        let mut q = TcpQueries::new();
        assert_eq!(q.receive(&[0, 0, 1, 2]), 2);
        assert!(matches!(q.front(), Front::Bad));
        let mut q = TcpQueries::new();
        assert_eq!(q.receive(&[0xff, 0xff, 1, 2]), 2);
        assert!(matches!(q.front(), Front::Bad));
        assert_eq!(q.receive(&[1, 2]), 0);
        let mut q = TcpQueries::new();
        q.receive(&[0]);
        assert!(matches!(q.front(), Front::Incomplete));
        assert!(q.is_mid_query());
    }
}
