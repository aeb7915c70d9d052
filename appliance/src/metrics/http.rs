//! The metrics service's HTTP, sans-I/O: one connection's request head judged with
//! `httparse` ([`judge`]), its timeouts ([`Conn`]), and the response head ([`Answer`]).
//!
//! One request per connection (`Connection: close`): `GET /metrics` and `HEAD /metrics`
//! are answered 200; other paths 404, other methods 405, anything that is not an HTTP/1.x
//! request head 400, and a head longer than [`MAX_HEAD`] bytes (or with more than
//! [`MAX_HEADERS`] header lines) 431. A head not complete within [`HEAD_TIMEOUT`] of the
//! connection opening, or a response the client stops reading for [`IDLE_TIMEOUT`], ends
//! the connection.

use alloc::vec::Vec;
use core::fmt::Write;

use smoltcp::time::{Duration, Instant};

use super::exposition::CONTENT_TYPE;

/// The longest request head read.
pub const MAX_HEAD: usize = 2048;
/// Header lines a request may have.
pub const MAX_HEADERS: usize = 32;
/// The whole request head must arrive within this time of the connection opening.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// A response the client makes no room for during this time is abandoned.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// The path served.
pub const PATH: &str = "/metrics";

/// What a request gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// 200 with the body (`head_only`: a `HEAD` request, headers only).
    Metrics { head_only: bool },
    /// 400: not an HTTP/1.x request head.
    BadRequest,
    /// 404: a path other than [`PATH`].
    NotFound,
    /// 405: a method other than `GET` or `HEAD`.
    MethodNotAllowed,
    /// 431: the head is longer than [`MAX_HEAD`] or has too many header lines.
    HeadTooLarge,
}

impl Answer {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Answer::Metrics { .. } => 200,
            Answer::BadRequest => 400,
            Answer::NotFound => 404,
            Answer::MethodNotAllowed => 405,
            Answer::HeadTooLarge => 431,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Answer::Metrics { .. } => "OK",
            Answer::BadRequest => "Bad Request",
            Answer::NotFound => "Not Found",
            Answer::MethodNotAllowed => "Method Not Allowed",
            Answer::HeadTooLarge => "Request Header Fields Too Large",
        }
    }

    /// The body of an error answer (the metrics body comes from the renderer).
    pub fn error_body(self) -> &'static str {
        match self {
            Answer::Metrics { .. } => "",
            Answer::BadRequest => "bad request\n",
            Answer::NotFound => "not found; the metrics are at /metrics\n",
            Answer::MethodNotAllowed => "only GET and HEAD\n",
            Answer::HeadTooLarge => "request head too large\n",
        }
    }

    /// The status line and headers for a body of `body_len` bytes.
    pub fn head(self, body_len: usize) -> Vec<u8> {
        let mut s = alloc::string::String::new();
        let content_type = match self {
            Answer::Metrics { .. } => CONTENT_TYPE,
            _ => "text/plain; charset=utf-8",
        };
        let _ = write!(
            s,
            "HTTP/1.1 {} {}\r\nContent-Type: {content_type}\r\nContent-Length: {body_len}\r\nConnection: close\r\n",
            self.code(),
            self.reason()
        );
        if self == Answer::MethodNotAllowed {
            s.push_str("Allow: GET, HEAD\r\n");
        }
        s.push_str("\r\n");
        s.into_bytes()
    }
}

/// Judges the bytes of a request head received so far: `None` while it may still become
/// a complete head of at most [`MAX_HEAD`] bytes.
pub fn judge(received: &[u8]) -> Option<Answer> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(received) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) if received.len() >= MAX_HEAD => {
            return Some(Answer::HeadTooLarge)
        }
        Ok(httparse::Status::Partial) => return None,
        Err(httparse::Error::TooManyHeaders) => return Some(Answer::HeadTooLarge),
        Err(_) => return Some(Answer::BadRequest),
    }
    let (Some(method), Some(target)) = (req.method, req.path) else {
        return Some(Answer::BadRequest);
    };
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Some(Answer::MethodNotAllowed),
    };
    if path == PATH {
        Some(Answer::Metrics { head_only })
    } else {
        Some(Answer::NotFound)
    }
}

/// One connection's request side: the head so far and its deadlines.
#[derive(Debug)]
pub struct Conn {
    head: Vec<u8>,
    opened: Instant,
    last_progress: Instant,
    answer: Option<Answer>,
}

impl Conn {
    /// A connection that opened at `now`.
    pub fn new(now: Instant) -> Conn {
        Conn {
            head: Vec::new(),
            opened: now,
            last_progress: now,
            answer: None,
        }
    }

    /// How many more head bytes this connection reads.
    pub fn room(&self) -> usize {
        if self.answer.is_some() {
            0
        } else {
            MAX_HEAD - self.head.len()
        }
    }

    /// Takes bytes received at `now` (at most [`Conn::room`] of them are kept); returns
    /// the answer once the head is judged (once).
    pub fn received(&mut self, bytes: &[u8], now: Instant) -> Option<Answer> {
        if self.answer.is_some() || bytes.is_empty() {
            return None;
        }
        let n = bytes.len().min(self.room());
        self.head.extend_from_slice(&bytes[..n]);
        self.last_progress = now;
        self.answer = judge(&self.head);
        if self.answer.is_some() {
            self.head = Vec::new();
        }
        self.answer
    }

    /// The client took some of the response at `now`.
    pub fn sent(&mut self, now: Instant) {
        self.last_progress = now;
    }

    /// Whether the connection is too slow at `now`: no complete head within
    /// [`HEAD_TIMEOUT`] of opening, or no progress on the answer for [`IDLE_TIMEOUT`].
    pub fn timed_out(&self, now: Instant) -> bool {
        match self.answer {
            None => now >= self.opened + HEAD_TIMEOUT,
            Some(_) => now >= self.last_progress + IDLE_TIMEOUT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn get_and_head_of_metrics_are_answered_and_others_refused() {
        let cases: [(&[u8], Option<Answer>); 10] = [
            (
                b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
                Some(Answer::Metrics { head_only: false }),
            ),
            (
                b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n",
                Some(Answer::Metrics { head_only: true }),
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Some(Answer::NotFound)),
            (b"GET /metricsx HTTP/1.1\r\n\r\n", Some(Answer::NotFound)),
            (
                b"POST /metrics HTTP/1.1\r\n\r\n",
                Some(Answer::MethodNotAllowed),
            ),
            (b"GET /metrics HTTP/1.1\r\nHost", None),
            (b"GET /metr", None),
            (
                b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
                Some(Answer::BadRequest),
            ),
            (b"GET /metrics HTTP/2.0\r\n\r\n", Some(Answer::BadRequest)),
            (
                b"GET /metrics HTTP/1.1\r\nBad Header\r\n\r\n",
                Some(Answer::BadRequest),
            ),
        ];
        for (bytes, want) in cases {
            assert_eq!(judge(bytes), want, "{:?}", core::str::from_utf8(bytes));
        }
    }

    #[test]
    fn a_head_longer_than_the_limit_or_with_too_many_headers_gets_431() {
        let mut long = b"GET /metrics HTTP/1.1\r\nX-Pad: ".to_vec();
        long.resize(MAX_HEAD, b'a');
        assert_eq!(judge(&long), Some(Answer::HeadTooLarge));
        let mut many = b"GET /metrics HTTP/1.1\r\n".to_vec();
        for i in 0..=MAX_HEADERS {
            many.extend_from_slice(alloc::format!("X-{i}: y\r\n").as_bytes());
        }
        many.extend_from_slice(b"\r\n");
        assert_eq!(judge(&many), Some(Answer::HeadTooLarge));

        // Through a connection: the excess is never stored.
        let now = Instant::from_secs(1);
        let mut c = Conn::new(now);
        assert_eq!(c.received(b"G", now), None);
        let answer = c.received(&vec![b'a'; 10 * MAX_HEAD], now);
        assert_eq!(
            answer,
            Some(Answer::HeadTooLarge),
            "a method that never ends"
        );
        assert_eq!(c.room(), 0);
        let mut c = Conn::new(now);
        let mut head = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
        head.resize(10 * MAX_HEAD, b'a');
        assert_eq!(c.received(&head, now), Some(Answer::HeadTooLarge));
        assert_eq!(c.room(), 0);
    }

    #[test]
    fn a_slow_client_times_out_and_a_prompt_one_does_not() {
        let t0 = Instant::from_secs(100);
        let mut slow = Conn::new(t0);
        // A slowloris: a byte now and then, never the end of the head.
        for (i, b) in b"GET /metrics HTTP/1.1\r\nX: ".iter().enumerate() {
            let at = t0 + Duration::from_millis(300 * i as u64);
            assert_eq!(slow.received(&[*b], at), None);
        }
        assert!(slow.timed_out(t0 + HEAD_TIMEOUT));
        assert!(!slow.timed_out(t0 + HEAD_TIMEOUT - Duration::from_millis(1)));

        let mut prompt = Conn::new(t0);
        let answer = prompt.received(b"GET /metrics HTTP/1.1\r\n\r\n", t0);
        assert_eq!(answer, Some(Answer::Metrics { head_only: false }));
        // Judged once: later bytes change nothing.
        assert_eq!(prompt.received(b"GET / HTTP/1.1\r\n\r\n", t0), None);
        prompt.sent(t0 + Duration::from_secs(15));
        assert!(!prompt.timed_out(t0 + Duration::from_secs(20)));
        assert!(prompt.timed_out(t0 + Duration::from_secs(15) + IDLE_TIMEOUT));
    }

    #[test]
    fn random_bytes_never_panic_and_always_end_in_an_answer_or_a_wait() {
        // xorshift: deterministic garbage, some of it shaped like a request line.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for round in 0..2000 {
            let len = (next() % 3000) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if round % 2 == 0 {
                let prefix = b"GET /metrics HTTP/1.1\r\n";
                let n = prefix.len().min(bytes.len());
                bytes[..n].copy_from_slice(&prefix[..n]);
            }
            let now = Instant::from_secs(1);
            let mut c = Conn::new(now);
            let mut answer = None;
            for chunk in bytes.chunks(1 + (next() % 700) as usize) {
                answer = answer.or(c.received(chunk, now));
            }
            if bytes.len() >= MAX_HEAD {
                assert!(answer.is_some(), "{} bytes and no answer", bytes.len());
            }
            if let Some(a) = answer {
                let head = a.head(a.error_body().len());
                assert!(head.starts_with(b"HTTP/1.1 "));
            }
        }
    }

    #[test]
    fn response_heads_carry_length_type_and_close() {
        let h = Answer::Metrics { head_only: false }.head(1234);
        let h = core::str::from_utf8(&h).unwrap();
        assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
        assert!(h.contains("\r\nContent-Length: 1234\r\n"), "{h}");
        assert!(
            h.contains("\r\nContent-Type: text/plain; version=0.0.4"),
            "{h}"
        );
        assert!(h.contains("\r\nConnection: close\r\n"), "{h}");
        assert!(h.ends_with("\r\n\r\n"));
        let h = Answer::MethodNotAllowed.head(0);
        assert!(core::str::from_utf8(&h)
            .unwrap()
            .contains("Allow: GET, HEAD\r\n"));
    }
}
