//! Host tests of the DNS server (see tests.rs).
