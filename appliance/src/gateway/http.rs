//! HTTP/1.1 heads for routing by Host: what a request asks for, what goes to the
//! backend, where a message's body ends, and the gateway's own short answers.
//!
//! Heads are parsed by `httparse` (RFC 9112 syntax); this file adds the proxy's rules:
//!
//! - [`parse_request`]: a bounded head ([`MAX_HEAD`], over it 431), HTTP/1.0 or 1.1, the
//!   routing name from an absolute-form target or else the one `Host` header
//!   (case-insensitive, port stripped), body framing (`Content-Length` or `chunked`;
//!   both at once, or conflicting lengths, are refused as request smuggling attempts),
//!   keep-alive and `Connection: upgrade`.
//! - [`write_backend_head`]: the head the backend gets: hop-by-hop headers dropped (those
//!   named in `Connection` too), client-sent `X-Forwarded-*` and `Forwarded` removed, and
//!   `X-Forwarded-For`/`-Proto`/`-Host` set by us.
//! - [`parse_response`]: where a backend's response ends (length, chunked, close, or no
//!   body for 1xx/204/304/HEAD), and whether it switched protocols (101).
//! - [`BodyReader`] and [`Chunked`]: body framing only; bytes pass through unmodified.
//! - [`canned`]: 400/404/421/431/501/502/503/504 answers, all `Connection: close`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::net::IpAddr;

use super::sni::host_name;

/// The largest request or response head, in bytes; a bigger request head gets 431.
pub const MAX_HEAD: usize = 8 * 1024;
/// Header lines per head; more gets 431.
pub const MAX_HEADERS: usize = 64;
/// Bytes of chunk extensions on one chunk-size line.
pub const MAX_CHUNK_EXT: usize = 1024;
/// Bytes of trailer fields after the last chunk.
pub const MAX_TRAILERS: usize = 8 * 1024;

/// The gateway's own answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Status {
    /// 400: the request head is not valid HTTP/1.x or breaks a framing rule.
    BadRequest,
    /// 404: no service has this name.
    NotFound,
    /// 421: the name is served here, but not as HTTP (a `tls` or `tcp` service).
    MisdirectedRequest,
    /// 431: the head is over [`MAX_HEAD`] or [`MAX_HEADERS`].
    HeadTooLarge,
    /// 501: a transfer coding other than `chunked`, or CONNECT.
    NotImplemented,
    /// 502: the backend failed or sent something that is not an HTTP response.
    BadGateway,
    /// 503: the service has no healthy backend.
    Unavailable,
    /// 504: the backend did not answer in time.
    GatewayTimeout,
}

impl Status {
    /// The status code.
    pub fn code(self) -> u16 {
        match self {
            Status::BadRequest => 400,
            Status::NotFound => 404,
            Status::MisdirectedRequest => 421,
            Status::HeadTooLarge => 431,
            Status::NotImplemented => 501,
            Status::BadGateway => 502,
            Status::Unavailable => 503,
            Status::GatewayTimeout => 504,
        }
    }

    fn reason(self) -> &'static str {
        match self {
            Status::BadRequest => "Bad Request",
            Status::NotFound => "Not Found",
            Status::MisdirectedRequest => "Misdirected Request",
            Status::HeadTooLarge => "Request Header Fields Too Large",
            Status::NotImplemented => "Not Implemented",
            Status::BadGateway => "Bad Gateway",
            Status::Unavailable => "Service Unavailable",
            Status::GatewayTimeout => "Gateway Timeout",
        }
    }
}

/// A whole response with `Connection: close` and a one-line text body.
pub fn canned(status: Status) -> Vec<u8> {
    let body = format!("{} {}\n", status.code(), status.reason());
    format!(
        "HTTP/1.1 {} {}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        status.code(),
        status.reason(),
        body.len(),
        body
    )
    .into_bytes()
}

/// How a message body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// Exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the sender closes (responses only).
    UntilClose,
}

/// A parsed request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    /// Bytes the head takes in the buffer; the body (or the next request) follows.
    pub len: usize,
    /// `HEAD` (its response has no body whatever it says).
    pub is_head: bool,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// The name to route by, lowercase, without port or trailing dot; `None` only for an
    /// HTTP/1.0 request without `Host`.
    pub host: Option<String>,
    /// The authority as the client wrote it (host and port), for `X-Forwarded-Host`.
    pub authority: Option<String>,
    /// The request body's framing (never `UntilClose`).
    pub body: Framing,
    /// The client wants the connection kept open after this exchange.
    pub keep_alive: bool,
    /// `Connection: upgrade` with an `Upgrade` header: a 101 answer makes a tunnel.
    pub upgrade: bool,
}

/// Parses the request head at the start of `buf`: `Ok(None)` while it is incomplete
/// (and under [`MAX_HEAD`]), or the answer to send back when it is no good.
pub fn parse_request(buf: &[u8]) -> Result<Option<RequestHead>, Status> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => return Err(Status::HeadTooLarge),
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Status::HeadTooLarge),
        Err(_) => return Err(Status::BadRequest),
    };
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(Status::BadRequest);
    };
    if method == "CONNECT" {
        return Err(Status::NotImplemented);
    }
    let absolute = absolute_authority(target)?;
    let mut host_header = None;
    let mut lengths = None;
    let mut chunked = false;
    let mut other_coding = false;
    let mut connection = Tokens::default();
    let mut upgrade_header = false;
    for h in req.headers.iter() {
        let value = trim(h.value);
        if h.name.eq_ignore_ascii_case("host") {
            if host_header.replace(value).is_some() {
                return Err(Status::BadRequest);
            }
        } else if h.name.eq_ignore_ascii_case("content-length") {
            for item in value.split(|&b| b == b',') {
                let n = content_length(trim(item)).ok_or(Status::BadRequest)?;
                if lengths.replace(n).is_some_and(|m| m != n) {
                    return Err(Status::BadRequest);
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in value.split(|&b| b == b',').map(trim) {
                if chunked {
                    // Anything after chunked: chunked must be the last coding.
                    return Err(Status::BadRequest);
                }
                if coding.eq_ignore_ascii_case(b"chunked") {
                    chunked = true;
                } else if !coding.is_empty() {
                    other_coding = true;
                }
            }
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection.add(value);
        } else if h.name.eq_ignore_ascii_case("upgrade") {
            upgrade_header = !value.is_empty();
        }
    }
    let transfer_encoding = chunked || other_coding;
    if transfer_encoding && (minor_version == 0 || lengths.is_some()) {
        return Err(Status::BadRequest);
    }
    if other_coding {
        return Err(Status::NotImplemented);
    }
    let authority = match (absolute, host_header) {
        (Some(a), _) => Some(a),
        (None, Some(h)) => Some(core::str::from_utf8(h).map_err(|_| Status::BadRequest)?),
        (None, None) if minor_version == 0 => None,
        (None, None) => return Err(Status::BadRequest),
    };
    let host = match authority {
        Some(a) => Some(authority_host(a).ok_or(Status::BadRequest)?),
        None => None,
    };
    let body = match (chunked, lengths) {
        (true, _) => Framing::Chunked,
        (false, Some(0)) | (false, None) => Framing::Empty,
        (false, Some(n)) => Framing::Length(n),
    };
    let keep_alive = if minor_version == 0 {
        connection.keep_alive && !connection.close
    } else {
        !connection.close
    };
    Ok(Some(RequestHead {
        len,
        is_head: method == "HEAD",
        minor_version,
        host,
        authority: authority.map(String::from),
        body,
        keep_alive,
        upgrade: connection.upgrade && upgrade_header,
    }))
}

/// `Connection` header tokens.
#[derive(Default)]
struct Tokens {
    close: bool,
    keep_alive: bool,
    upgrade: bool,
}

impl Tokens {
    fn add(&mut self, value: &[u8]) {
        for token in value.split(|&b| b == b',').map(trim) {
            if token.eq_ignore_ascii_case(b"close") {
                self.close = true;
            } else if token.eq_ignore_ascii_case(b"keep-alive") {
                self.keep_alive = true;
            } else if token.eq_ignore_ascii_case(b"upgrade") {
                self.upgrade = true;
            }
        }
    }
}

fn trim(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

fn content_length(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 18 || !text.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(text.iter().fold(0, |n, &d| n * 10 + u64::from(d - b'0')))
}

/// The authority of an absolute-form target (`http://host:port/path`), if it is one.
fn absolute_authority(target: &str) -> Result<Option<&str>, Status> {
    let Some((scheme, rest)) = target.split_once("://") else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err(Status::BadRequest);
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    if authority.is_empty() || authority.contains('@') {
        return Err(Status::BadRequest);
    }
    Ok(Some(authority))
}

/// The host of `host[:port]` or `[v6]:port`, lowercase, checked.
fn authority_host(authority: &str) -> Option<String> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (v6, after) = rest.split_once(']')?;
        port_ok(after.strip_prefix(':').unwrap_or(after)).then_some(())?;
        let addr: core::net::Ipv6Addr = v6.parse().ok()?;
        return Some(format!("{addr}"));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p),
        None => (authority, ""),
    };
    if !port_ok(port) {
        return None;
    }
    host_name(host.as_bytes())
}

fn port_ok(port: &str) -> bool {
    port.len() <= 5 && port.bytes().all(|b| b.is_ascii_digit())
}

/// What the gateway knows about the client, for the `X-Forwarded-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forwarded<'a> {
    /// The client's address.
    pub client: IpAddr,
    /// The scheme the client used toward us (`http`).
    pub proto: &'a str,
}

/// Headers a proxy never forwards (RFC 9110 §7.6.1), besides those `Connection` names.
/// `Transfer-Encoding` is kept: the body is passed on in its original framing.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// Headers the client may not set: the gateway writes its own.
const REPLACED: &[&str] = &[
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "host",
];

/// Writes the head for the backend into `out` from the client's head `head` (the bytes
/// [`parse_request`] accepted, `req` its result).
pub fn write_backend_head(head: &[u8], req: &RequestHead, fwd: Forwarded<'_>, out: &mut Vec<u8>) {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    if !matches!(parsed.parse(head), Ok(httparse::Status::Complete(_))) {
        return; // not a head parse_request accepted; the caller's bug, write nothing
    }
    let mut named = Vec::new();
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            for token in h.value.split(|&b| b == b',').map(trim) {
                named.push(token);
            }
        }
    }
    out.extend_from_slice(parsed.method.unwrap_or("GET").as_bytes());
    out.push(b' ');
    out.extend_from_slice(parsed.path.unwrap_or("/").as_bytes());
    out.extend_from_slice(if req.minor_version == 0 {
        b" HTTP/1.0\r\n"
    } else {
        b" HTTP/1.1\r\n"
    });
    if let Some(authority) = &req.authority {
        push_header(out, "Host", authority.as_bytes());
    }
    for h in parsed.headers.iter() {
        let name = h.name;
        let drop = HOP_BY_HOP.iter().any(|n| name.eq_ignore_ascii_case(n))
            || REPLACED.iter().any(|n| name.eq_ignore_ascii_case(n))
            || named
                .iter()
                .any(|t| t.eq_ignore_ascii_case(name.as_bytes()));
        if drop && !(req.upgrade && name.eq_ignore_ascii_case("upgrade")) {
            continue;
        }
        push_header(out, name, h.value);
    }
    if req.upgrade {
        push_header(out, "Connection", b"upgrade");
    } else if !req.keep_alive {
        push_header(out, "Connection", b"close");
    } else if req.minor_version == 0 {
        push_header(out, "Connection", b"keep-alive");
    }
    push_header(out, "X-Forwarded-For", format!("{}", fwd.client).as_bytes());
    push_header(out, "X-Forwarded-Proto", fwd.proto.as_bytes());
    if let Some(authority) = &req.authority {
        push_header(out, "X-Forwarded-Host", authority.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

fn push_header(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A parsed response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// Bytes the head takes.
    pub len: usize,
    /// The status code.
    pub code: u16,
    /// A 1xx other than 101: another head follows for the same request.
    pub interim: bool,
    /// 101 Switching Protocols to an upgrade request: the connection is a tunnel now.
    pub upgraded: bool,
    /// The body's framing.
    pub body: Framing,
    /// The backend keeps the connection open after this response.
    pub keep_alive: bool,
}

/// Parses a backend's response head to a request (`is_head`: it was a HEAD; `upgrade`:
/// it asked to upgrade). `Ok(None)` while incomplete; `Err(())` for anything that is not
/// a usable response (the client gets 502).
#[allow(clippy::result_unit_err)]
pub fn parse_response(
    buf: &[u8],
    is_head: bool,
    upgrade: bool,
) -> Result<Option<ResponseHead>, ()> {
    let window = &buf[..buf.len().min(MAX_HEAD)];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let len = match resp.parse(window) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok(None),
        _ => return Err(()),
    };
    let (Some(code), Some(minor)) = (resp.code, resp.version) else {
        return Err(());
    };
    let mut length = None;
    let mut chunked = false;
    let mut coded = false;
    let mut connection = Tokens::default();
    for h in resp.headers.iter() {
        let value = trim(h.value);
        if h.name.eq_ignore_ascii_case("content-length") {
            for item in value.split(|&b| b == b',') {
                let n = content_length(trim(item)).ok_or(())?;
                if length.replace(n).is_some_and(|m| m != n) {
                    return Err(());
                }
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            coded = true;
            chunked = value
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| trim(last).eq_ignore_ascii_case(b"chunked"));
        } else if h.name.eq_ignore_ascii_case("connection") {
            connection.add(value);
        }
    }
    let upgraded = code == 101;
    if upgraded && !upgrade {
        return Err(());
    }
    let interim = (100..200).contains(&code) && !upgraded;
    let body = if interim || upgraded || code == 204 || code == 304 || is_head {
        Framing::Empty
    } else if chunked {
        Framing::Chunked
    } else if coded {
        Framing::UntilClose
    } else {
        match length {
            Some(0) => Framing::Empty,
            Some(n) => Framing::Length(n),
            None => Framing::UntilClose,
        }
    };
    let persistent = if minor == 0 {
        connection.keep_alive && !connection.close
    } else {
        !connection.close
    };
    Ok(Some(ResponseHead {
        len,
        code,
        interim,
        upgraded,
        body,
        keep_alive: persistent && body != Framing::UntilClose && !upgraded,
    }))
}

/// Why a body could not be followed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Broken chunked framing (bad size line, missing CRLF, bare LF).
    BadChunk,
    /// A chunk size over 2^60, or extensions or trailers over their limits.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ChunkState {
    Size { digits: u8 },
    Ext { len: usize },
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

/// Follows chunked framing (RFC 9112 §7.1) without changing or keeping any byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunked {
    state: ChunkState,
    /// The current chunk's size, then what is left of its data.
    left: u64,
    trailers: usize,
}

impl Default for Chunked {
    fn default() -> Self {
        Chunked {
            state: ChunkState::Size { digits: 0 },
            left: 0,
            trailers: 0,
        }
    }
}

impl Chunked {
    /// Whether the last chunk and the trailers have been seen.
    pub fn is_done(&self) -> bool {
        self.state == ChunkState::Done
    }

    /// Consumes body bytes from `bytes`, returning how many belong to the body (fewer than
    /// `bytes.len()` only when the body ended inside them).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, BodyError> {
        let mut i = 0;
        while i < bytes.len() && self.state != ChunkState::Done {
            if self.state == ChunkState::Data {
                let take = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len() - i);
                i += take;
                self.left -= take as u64;
                if self.left == 0 {
                    self.state = ChunkState::DataCr;
                }
                continue;
            }
            self.step(bytes[i])?;
            i += 1;
        }
        Ok(i)
    }

    fn step(&mut self, b: u8) -> Result<(), BodyError> {
        use ChunkState::*;
        self.state = match (self.state, b) {
            (Size { digits }, _) if b.is_ascii_hexdigit() => {
                if digits >= 15 {
                    return Err(BodyError::TooLarge);
                }
                let d = char::from(b).to_digit(16).unwrap_or(0);
                self.left = self.left << 4 | u64::from(d);
                Size { digits: digits + 1 }
            }
            (Size { digits: 0 }, _) => return Err(BodyError::BadChunk),
            (Size { .. }, b';' | b' ' | b'\t') => Ext { len: 1 },
            (Size { .. }, b'\r') => SizeLf,
            (Ext { len }, _) if b != b'\r' && b != b'\n' => {
                if len >= MAX_CHUNK_EXT {
                    return Err(BodyError::TooLarge);
                }
                Ext { len: len + 1 }
            }
            (Ext { .. }, b'\r') => SizeLf,
            (SizeLf, b'\n') if self.left == 0 => TrailerStart,
            (SizeLf, b'\n') => Data,
            (DataCr, b'\r') => DataLf,
            (DataLf, b'\n') => Size { digits: 0 },
            (TrailerStart, b'\r') => EndLf,
            (TrailerStart | Trailer, _) if b != b'\n' => {
                self.trailers += 1;
                if self.trailers > MAX_TRAILERS {
                    return Err(BodyError::TooLarge);
                }
                if b == b'\r' {
                    TrailerLf
                } else {
                    Trailer
                }
            }
            (TrailerLf, b'\n') => TrailerStart,
            (EndLf, b'\n') => Done,
            _ => return Err(BodyError::BadChunk),
        };
        Ok(())
    }
}

/// Follows one message body of any [`Framing`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyReader {
    /// Bytes left of a `Content-Length` body (0: done).
    Length(u64),
    /// A chunked body.
    Chunked(Chunked),
    /// Everything until the sender closes.
    UntilClose,
}

impl BodyReader {
    /// The reader for a body framed so.
    pub fn new(framing: Framing) -> BodyReader {
        match framing {
            Framing::Empty => BodyReader::Length(0),
            Framing::Length(n) => BodyReader::Length(n),
            Framing::Chunked => BodyReader::Chunked(Chunked::default()),
            Framing::UntilClose => BodyReader::UntilClose,
        }
    }

    /// Whether the body is complete (never for `UntilClose`: the close ends it).
    pub fn is_done(&self) -> bool {
        match self {
            BodyReader::Length(n) => *n == 0,
            BodyReader::Chunked(c) => c.is_done(),
            BodyReader::UntilClose => false,
        }
    }

    /// How many of `bytes` belong to the body.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<usize, BodyError> {
        match self {
            BodyReader::Length(n) => {
                let take = usize::try_from(*n).unwrap_or(usize::MAX).min(bytes.len());
                *n -= take as u64;
                Ok(take)
            }
            BodyReader::Chunked(c) => c.feed(bytes),
            BodyReader::UntilClose => Ok(bytes.len()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    fn req(text: &str) -> Result<Option<RequestHead>, Status> {
        parse_request(text.as_bytes())
    }

    fn host_of(text: &str) -> Option<String> {
        req(text).unwrap().unwrap().host
    }

    #[test]
    fn host_is_case_insensitive_and_loses_its_port() {
        let r = req("GET / HTTP/1.1\r\nhOsT: Shop.Example.ORG:8080\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.host.as_deref(), Some("shop.example.org"));
        assert_eq!(r.authority.as_deref(), Some("Shop.Example.ORG:8080"));
        assert_eq!(r.len, 47);
        assert!(r.keep_alive);
        assert_eq!(r.body, Framing::Empty);
        assert_eq!(
            host_of("GET / HTTP/1.1\r\nHost: shop.example.org.\r\n\r\n").as_deref(),
            Some("shop.example.org")
        );
        assert_eq!(
            host_of("GET / HTTP/1.1\r\nHost: [2001:DB8::1]:80\r\n\r\n").as_deref(),
            Some("2001:db8::1")
        );
    }

    #[test]
    fn an_absolute_form_target_wins_over_host() {
        let r = req("GET http://A.example.org:81/x?y HTTP/1.1\r\nHost: b.example.org\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.host.as_deref(), Some("a.example.org"));
        assert_eq!(r.authority.as_deref(), Some("A.example.org:81"));
        assert_eq!(
            req("GET ftp://a.org/ HTTP/1.1\r\nHost: a.org\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            req("GET http://u@a.org/ HTTP/1.1\r\nHost: a.org\r\n\r\n"),
            Err(Status::BadRequest)
        );
    }

    #[test]
    fn host_is_required_once_in_http_1_1() {
        assert_eq!(req("GET / HTTP/1.1\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: a.org\r\nHost: b.org\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            req("GET / HTTP/1.1\r\nHost: a.org:99999x\r\n\r\n"),
            Err(Status::BadRequest)
        );
        let old = req("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert_eq!(old.host, None);
        assert!(!old.keep_alive);
    }

    #[test]
    fn incomplete_heads_wait_and_oversized_ones_get_431() {
        assert_eq!(req("GET / HTTP/1.1\r\nHost: a"), Ok(None));
        let mut big = String::from("GET / HTTP/1.1\r\nHost: a.org\r\nX-Pad: ");
        while big.len() < MAX_HEAD {
            big.push('a');
        }
        assert_eq!(req(&big), Err(Status::HeadTooLarge));
        let mut many = String::from("GET / HTTP/1.1\r\nHost: a.org\r\n");
        for i in 0..MAX_HEADERS {
            many.push_str(&format!("X-{i}: v\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(req(&many), Err(Status::HeadTooLarge));
    }

    #[test]
    fn malformed_heads_get_400_and_connect_501() {
        assert_eq!(req("GET / HTTP/2.0\r\n\r\n"), Err(Status::BadRequest));
        assert_eq!(req("\x16\x03\x01\x02\x00"), Err(Status::BadRequest));
        assert_eq!(
            req("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            req("CONNECT a.org:443 HTTP/1.1\r\nHost: a.org\r\n\r\n"),
            Err(Status::NotImplemented)
        );
    }

    #[test]
    fn body_framing_is_read_and_smuggling_shapes_are_refused() {
        let framing = |extra: &str| {
            req(&format!("POST / HTTP/1.1\r\nHost: a.org\r\n{extra}\r\n")).map(|r| r.unwrap().body)
        };
        assert_eq!(framing("Content-Length: 12\r\n"), Ok(Framing::Length(12)));
        assert_eq!(
            framing("Content-Length: 12, 12\r\n"),
            Ok(Framing::Length(12))
        );
        assert_eq!(framing("Content-Length: 0\r\n"), Ok(Framing::Empty));
        assert_eq!(
            framing("Transfer-Encoding: Chunked\r\n"),
            Ok(Framing::Chunked)
        );
        assert_eq!(framing("Content-Length: 1, 2\r\n"), Err(Status::BadRequest));
        assert_eq!(
            framing("Content-Length: 1\r\nContent-Length: 2\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(framing("Content-Length: -1\r\n"), Err(Status::BadRequest));
        assert_eq!(framing("Content-Length: +1\r\n"), Err(Status::BadRequest));
        assert_eq!(
            framing("Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            framing("Transfer-Encoding: chunked, gzip\r\n"),
            Err(Status::BadRequest)
        );
        assert_eq!(
            framing("Transfer-Encoding: gzip\r\n"),
            Err(Status::NotImplemented)
        );
        assert_eq!(
            req("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Status::BadRequest)
        );
    }

    #[test]
    fn connection_tokens_decide_keep_alive_and_upgrade() {
        let r = |extra: &str| {
            req(&format!("GET / HTTP/1.1\r\nHost: a.org\r\n{extra}\r\n"))
                .unwrap()
                .unwrap()
        };
        assert!(!r("Connection: close\r\n").keep_alive);
        assert!(r("Connection: keep-alive\r\n").keep_alive);
        let up = r("Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n");
        assert!(up.upgrade);
        assert!(!r("Connection: upgrade\r\n").upgrade, "no Upgrade header");
        assert!(!r("Upgrade: websocket\r\n").upgrade, "not in Connection");
        let old = req("GET / HTTP/1.0\r\nHost: a.org\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(old.keep_alive);
    }

    fn backend_head(text: &str, client: &str) -> String {
        let r = req(text).unwrap().unwrap();
        let mut out = Vec::new();
        let fwd = Forwarded {
            client: client.parse().unwrap(),
            proto: "http",
        };
        write_backend_head(&text.as_bytes()[..r.len], &r, fwd, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_backend_head_replaces_forwarding_headers_and_drops_hop_by_hop_ones() {
        let head = backend_head(
            "POST /p?q=1 HTTP/1.1\r\nHost: Shop.example.org\r\nX-Forwarded-For: 6.6.6.6\r\n\
             x-forwarded-proto: https\r\nForwarded: for=6.6.6.6\r\nConnection: keep-alive, X-Secret\r\n\
             X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nContent-Length: 3\r\n\
             Accept: */*\r\n\r\n",
            "198.51.100.7",
        );
        assert_eq!(
            head,
            "POST /p?q=1 HTTP/1.1\r\nHost: Shop.example.org\r\nContent-Length: 3\r\n\
             Accept: */*\r\nX-Forwarded-For: 198.51.100.7\r\nX-Forwarded-Proto: http\r\n\
             X-Forwarded-Host: Shop.example.org\r\n\r\n"
        );
    }

    #[test]
    fn the_backend_head_keeps_upgrade_and_close_and_chunked() {
        let head = backend_head(
            "GET /ws HTTP/1.1\r\nHost: a.org\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
             Sec-WebSocket-Key: k\r\n\r\n",
            "2001:db8::7",
        );
        assert_eq!(
            head,
            "GET /ws HTTP/1.1\r\nHost: a.org\r\nUpgrade: websocket\r\nSec-WebSocket-Key: k\r\n\
             Connection: upgrade\r\nX-Forwarded-For: 2001:db8::7\r\nX-Forwarded-Proto: http\r\n\
             X-Forwarded-Host: a.org\r\n\r\n"
        );
        let close = backend_head(
            "POST / HTTP/1.1\r\nHost: a.org\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n",
            "10.0.0.1",
        );
        assert!(
            close.contains("\r\nTransfer-Encoding: chunked\r\n"),
            "{close}"
        );
        assert!(close.contains("\r\nConnection: close\r\n"), "{close}");
        let absolute = backend_head(
            "GET http://b.org:8080/x HTTP/1.1\r\nHost: other.org\r\n\r\n",
            "10.0.0.1",
        );
        assert!(absolute.starts_with("GET http://b.org:8080/x HTTP/1.1\r\nHost: b.org:8080\r\n"));
        assert!(!absolute.contains("other.org"));
    }

    #[test]
    fn response_framing_follows_status_method_and_headers() {
        let resp = |text: &str, head: bool| {
            parse_response(text.as_bytes(), head, true)
                .unwrap()
                .unwrap()
        };
        let r = resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", false);
        assert_eq!(
            (r.len, r.body, r.keep_alive),
            (38, Framing::Length(5), true)
        );
        assert_eq!(
            resp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", true).body,
            Framing::Empty
        );
        assert_eq!(
            resp("HTTP/1.1 204 No Content\r\n\r\n", false).body,
            Framing::Empty
        );
        assert_eq!(
            resp(
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
                false
            )
            .body,
            Framing::Empty
        );
        let cont = resp("HTTP/1.1 100 Continue\r\n\r\n", false);
        assert!(cont.interim);
        assert_eq!(
            resp(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
                false
            )
            .body,
            Framing::Chunked
        );
        let close = resp("HTTP/1.1 200 OK\r\n\r\n", false);
        assert_eq!((close.body, close.keep_alive), (Framing::UntilClose, false));
        assert!(
            !resp(
                "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n",
                false
            )
            .keep_alive
        );
        assert!(!resp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false).keep_alive);
        let up = resp(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            false,
        );
        assert!(up.upgraded && !up.interim);
        assert_eq!(
            parse_response(b"HTTP/1.1 101 Switching\r\n\r\n", false, false),
            Err(())
        );
        assert_eq!(
            parse_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\n",
                false,
                false
            ),
            Err(())
        );
        assert_eq!(
            parse_response(b"SSH-2.0-OpenSSH\r\n", false, false),
            Err(())
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 200 OK\r\n", false, false),
            Ok(None)
        );
    }

    const CHUNKED: &[u8] =
        b"5;name=v\r\nhello\r\n1A\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";

    #[test]
    fn chunked_bodies_end_after_the_trailers_at_any_split() {
        let body_len = CHUNKED.len() - 4;
        for at in 0..=CHUNKED.len() {
            let mut c = Chunked::default();
            let (a, b) = CHUNKED.split_at(at);
            let n = c.feed(a).unwrap();
            let m = c.feed(&b[n.saturating_sub(a.len())..]).unwrap();
            assert_eq!(n + m, body_len, "split at {at}");
            assert!(c.is_done());
        }
        let mut c = Chunked::default();
        let mut total = 0;
        for byte in CHUNKED {
            if !c.is_done() {
                total += c.feed(core::slice::from_ref(byte)).unwrap();
            }
        }
        assert_eq!(total, body_len);
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        let bad = |b: &[u8]| Chunked::default().feed(b);
        assert_eq!(bad(b"x\r\n"), Err(BodyError::BadChunk));
        assert_eq!(bad(b"5\nhello"), Err(BodyError::BadChunk));
        assert_eq!(bad(b"2\r\nabX"), Err(BodyError::BadChunk));
        assert_eq!(bad(b"ffffffffffffffff\r\n"), Err(BodyError::TooLarge));
        let mut ext = b"1;".to_vec();
        ext.extend(vec![b'a'; MAX_CHUNK_EXT]);
        assert_eq!(bad(&ext), Err(BodyError::TooLarge));
        let mut trailers = b"0\r\n".to_vec();
        trailers.extend(vec![b'a'; MAX_TRAILERS + 1]);
        assert_eq!(bad(&trailers), Err(BodyError::TooLarge));
        assert_eq!(bad(b"0\r\n\r\n"), Ok(5));
    }

    #[test]
    fn body_readers_stop_at_the_end_of_the_body() {
        let mut r = BodyReader::new(Framing::Length(3));
        assert_eq!(r.feed(b"ab"), Ok(2));
        assert_eq!(r.feed(b"cdef"), Ok(1));
        assert!(r.is_done());
        assert!(BodyReader::new(Framing::Empty).is_done());
        let mut c = BodyReader::new(Framing::UntilClose);
        assert_eq!(c.feed(b"abc"), Ok(3));
        assert!(!c.is_done());
    }

    #[test]
    fn canned_answers_are_complete_and_close() {
        for status in [
            Status::BadRequest,
            Status::NotFound,
            Status::MisdirectedRequest,
            Status::HeadTooLarge,
            Status::NotImplemented,
            Status::BadGateway,
            Status::Unavailable,
            Status::GatewayTimeout,
        ] {
            let bytes = canned(status);
            let r = parse_response(&bytes, false, false).unwrap().unwrap();
            assert_eq!(r.code, status.code());
            assert!(!r.keep_alive);
            let Framing::Length(n) = r.body else {
                panic!("no length")
            };
            assert_eq!(r.len + n as usize, bytes.len());
        }
        assert!(canned(Status::HeadTooLarge)
            .starts_with(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"));
    }
}
