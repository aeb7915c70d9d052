//! The metrics service: the appliance's counters and tables as a Prometheus text
//! exposition, served over HTTP on the local stack.
//!
//! - `snapshot`: what one scrape reports ([`Snapshot`], plain data) and its rendering.
//! - `collect`: copies a [`Snapshot`] out of the router and the tunnel.
//! - `exposition`: the text format (HELP/TYPE lines, samples, label escaping).
//! - `http`: request heads (`httparse`), answers and per-connection timeouts, sans-I/O.
//! - `gateway`: the web gateway's counters, services and backends; `dns`: its DNS server; `mycelium`: the Planetary Network node.
//! - `server`: the TCP sockets on the local stack, one request per connection.
//!
//! Where it listens is the config's business ([`Config::metrics_listen`]): by default
//! port 9100 on the segment and `[Interface]` addresses only. The router already keeps
//! the underlay from reaching those addresses, and the sockets listen on the addresses
//! themselves, so an underlay address is never served unless the config names it.
//!
//! [`Config::metrics_listen`]: crate::config::Config::metrics_listen

mod collect;
mod dns;
pub mod exposition;
mod gateway;
pub mod http;
mod mycelium;
mod server;
mod snapshot;

pub use collect::collect;
pub use dns::DnsStats;
pub use gateway::{BackendStats, GatewayServiceStats, GatewayStats};
pub use mycelium::MyceliumStats;
pub use server::{MetricsServer, LINGER, SOCKETS_PER_LISTEN};
pub use snapshot::{
    BabelNeighbourStats, BabelStats, LinkStats, NatStats, PeerStats, RouteStats, ServiceCounters,
    Snapshot, TunnelStats, RESPONSE_CODES,
};
