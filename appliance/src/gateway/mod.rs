//! The web gateway (placeholder while it is written).
pub mod backend;
pub mod http;
pub mod names;
pub mod proxy;
pub mod sni;
