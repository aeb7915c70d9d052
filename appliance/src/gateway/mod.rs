//! The web gateway (placeholder while it is written).
pub mod http;
pub mod proxy;
pub mod sni;
