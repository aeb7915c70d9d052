//! The web gateway's part of a scrape: connections, refusals and errors by reason, the
//! gateway's own answers by status, and per service and backend traffic and health.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::net::{IpAddr, SocketAddr};

use super::exposition::{Exposition, Kind};
use crate::gateway::backend::BackendCounters;
use crate::gateway::{Gateway, GatewayCounters, ServiceCounters};

/// One backend of a service.
#[derive(Clone, Debug)]
pub struct BackendStats {
    pub addr: SocketAddr,
    /// In the rotation.
    pub up: bool,
    /// Connections open to it now.
    pub active: u32,
    pub counters: BackendCounters,
}

/// One `[Service]`.
#[derive(Clone, Debug)]
pub struct GatewayServiceStats {
    /// Its name as configured (`shop.example.org`, `*.example.org`).
    pub name: String,
    pub counters: ServiceCounters,
    pub backends: Vec<BackendStats>,
    /// Public addresses serving it now: this gateway's and its live peers'.
    pub serving: usize,
}

/// The gateway at the time of a scrape.
#[derive(Clone, Debug, Default)]
pub struct GatewayStats {
    /// Client connections open now.
    pub open: usize,
    pub counters: GatewayCounters,
    /// Backend connects the appliance could not start (no source address, no port).
    pub connect_errors: u64,
    pub services: Vec<GatewayServiceStats>,
    /// The peer gateways (`[Gateway] Peer`) and whether each is alive.
    pub peers: Vec<(IpAddr, bool)>,
}

impl GatewayStats {
    /// Copies the core's counters and pools; `serving(i)`: how many public addresses
    /// serve service `i` now; `peers`: the peer gateways and whether each is alive.
    pub fn of(
        core: &Gateway,
        connect_errors: u64,
        serving: &dyn Fn(usize) -> usize,
        peers: Vec<(IpAddr, bool)>,
    ) -> GatewayStats {
        let services = (0..core.service_count())
            .filter_map(|i| core.service(i).map(|s| (i, s)))
            .map(|(i, (name, counters, pool))| GatewayServiceStats {
                serving: serving(i),
                name: name.to_string(),
                counters,
                backends: (0..pool.len())
                    .filter_map(|b| {
                        Some(BackendStats {
                            addr: pool.addr(b)?,
                            up: pool.is_up(b),
                            active: pool.active(b),
                            counters: pool.counters(b)?,
                        })
                    })
                    .collect(),
            })
            .collect();
        GatewayStats {
            open: core.open_connections(),
            counters: core.counters(),
            connect_errors,
            services,
            peers,
        }
    }

    pub(super) fn render(&self, e: &mut Exposition) {
        let c = &self.counters;
        e.single(
            "vdcnet_gateway_connections_open",
            Kind::Gauge,
            "Client connections open now.",
            self.open,
        );
        e.single(
            "vdcnet_gateway_accepted_total",
            Kind::Counter,
            "Client connections accepted.",
            c.accepted,
        );
        e.single(
            "vdcnet_gateway_refused_total",
            Kind::Counter,
            "Client connections reset because MaxConnections were open.",
            c.refused_full,
        );
        e.single(
            "vdcnet_gateway_requests_total",
            Kind::Counter,
            "HTTP requests routed to a service.",
            c.requests,
        );
        e.single(
            "vdcnet_gateway_upgrades_total",
            Kind::Counter,
            "HTTP connections upgraded to a tunnel (WebSocket).",
            c.upgrades,
        );
        e.single(
            "vdcnet_gateway_connect_errors_total",
            Kind::Counter,
            "Backend connects that could not start (no source address or local port).",
            self.connect_errors,
        );
        e.family(
            "vdcnet_gateway_client_errors_total",
            Kind::Counter,
            "Client connections ended for what the client sent (or did not send), by reason.",
        );
        for (reason, n) in [
            ("not_tls", c.not_tls),
            ("no_sni", c.no_sni),
            ("unknown_name", c.unknown_name),
            ("hello_too_large", c.hello_too_large),
            ("hello_malformed", c.hello_malformed),
            ("bad_request_body", c.bad_request_bodies),
            ("pipeline_overflow", c.pipeline_overflows),
            ("head_timeout", c.head_timeouts),
            ("idle_timeout", c.idle_timeouts),
        ] {
            e.sample(&[("reason", &reason)], n);
        }
        e.family(
            "vdcnet_gateway_backend_errors_total",
            Kind::Counter,
            "Backend answers that broke HTTP, or bytes outside any answer.",
        );
        e.sample(&[("reason", &"bad_response")], c.bad_responses);
        e.sample(&[("reason", &"stray_bytes")], c.stray_backend_bytes);
        e.family(
            "vdcnet_gateway_answers_total",
            Kind::Counter,
            "Answers the gateway wrote itself, by HTTP status.",
        );
        for (code, n) in [
            (400, c.status_400),
            (404, c.status_404),
            (421, c.status_421),
            (431, c.status_431),
            (501, c.status_501),
            (502, c.status_502),
            (503, c.status_503),
            (504, c.status_504),
        ] {
            e.sample(&[("code", &code)], n);
        }
        e.family(
            "vdcnet_gateway_peer_alive",
            Kind::Gauge,
            "1 while the peer gateway answers its status requests over the mesh, else 0.",
        );
        for (peer, alive) in &self.peers {
            e.sample(&[("peer", peer)], u64::from(*alive));
        }
        self.render_services(e);
        self.render_backends(e);
    }

    fn render_services(&self, e: &mut Exposition) {
        type Get = fn(&ServiceCounters) -> u64;
        let families: [(&'static str, &str, Get); 6] = [
            (
                "vdcnet_gateway_service_connections_total",
                "Client connections routed to the service (tls, tcp).",
                |c| c.connections,
            ),
            (
                "vdcnet_gateway_service_requests_total",
                "HTTP requests routed to the service.",
                |c| c.requests,
            ),
            (
                "vdcnet_gateway_service_connect_failures_total",
                "Connects to one of its backends that failed (retried on the next).",
                |c| c.connect_failures,
            ),
            (
                "vdcnet_gateway_service_no_backend_total",
                "Clients that found no backend left to try.",
                |c| c.no_backend,
            ),
            (
                "vdcnet_gateway_service_response_timeouts_total",
                "Requests whose answer did not start within IdleTimeout (504).",
                |c| c.response_timeouts,
            ),
            (
                "vdcnet_gateway_service_connect_timeouts_total",
                "Backend connects that timed out.",
                |c| c.connect_timeouts,
            ),
        ];
        for (name, help, get) in families {
            e.family(name, Kind::Counter, help);
            for s in &self.services {
                e.sample(&[("service", &s.name)], get(&s.counters));
            }
        }
        e.family(
            "vdcnet_gateway_service_serving_addresses",
            Kind::Gauge,
            "Public addresses serving the service now: this gateway's and its live peers'.",
        );
        for s in &self.services {
            e.sample(&[("service", &s.name)], s.serving);
        }
        e.family(
            "vdcnet_gateway_service_bytes_total",
            Kind::Counter,
            "Bytes passed between clients and the service's backends.",
        );
        for s in &self.services {
            e.sample(
                &[("service", &s.name), ("direction", &"from_clients")],
                s.counters.bytes_from_clients,
            );
            e.sample(
                &[("service", &s.name), ("direction", &"to_clients")],
                s.counters.bytes_to_clients,
            );
        }
    }

    fn render_backends(&self, e: &mut Exposition) {
        let each = |e: &mut Exposition, value: &dyn Fn(&BackendStats) -> u64| {
            for s in &self.services {
                for b in &s.backends {
                    e.sample(&[("service", &s.name), ("backend", &b.addr)], value(b));
                }
            }
        };
        e.family(
            "vdcnet_gateway_backend_up",
            Kind::Gauge,
            "1 while the backend is in the rotation (its health checks pass), else 0.",
        );
        each(e, &|b| u64::from(b.up));
        e.family(
            "vdcnet_gateway_backend_active_connections",
            Kind::Gauge,
            "Connections open to the backend now.",
        );
        each(e, &|b| u64::from(b.active));
        e.family(
            "vdcnet_gateway_backend_connections_total",
            Kind::Counter,
            "Connections established to the backend.",
        );
        each(e, &|b| b.counters.connections);
        e.family(
            "vdcnet_gateway_backend_connect_failures_total",
            Kind::Counter,
            "Connects to the backend that failed.",
        );
        each(e, &|b| b.counters.connect_failures);
        e.family(
            "vdcnet_gateway_backend_check_failures_total",
            Kind::Counter,
            "Health checks of the backend that failed.",
        );
        each(e, &|b| b.counters.check_failures);
        e.family(
            "vdcnet_gateway_backend_transitions_total",
            Kind::Counter,
            "Times the backend left (down) or rejoined (up) the rotation.",
        );
        for s in &self.services {
            for b in &s.backends {
                for (to, n) in [("down", b.counters.went_down), ("up", b.counters.came_up)] {
                    e.sample(
                        &[("service", &s.name), ("backend", &b.addr), ("to", &to)],
                        n,
                    );
                }
            }
        }
    }
}
