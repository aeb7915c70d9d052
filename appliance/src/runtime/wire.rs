//! A [`NetDevice`] as smoltcp sees it: an Ethernet `phy::Device` with one receive buffer.

use super::PortCounters;
use smoltcp::phy::{self, Checksum, ChecksumCapabilities, DeviceCapabilities, Medium};
use smoltcp::time::Instant;
use vdcnet_hal::net::NetDevice;

/// Largest Ethernet frame (without FCS).
pub const MAX_FRAME: usize = 1514;
/// Ethernet header length.
pub const ETH_HEADER: usize = 14;

/// A NIC with its receive copy buffer and counters.
pub(crate) struct Wire<D> {
    pub dev: D,
    rx: [u8; MAX_FRAME],
    pub counters: PortCounters,
    /// Largest frame sent: the link's MTU plus the Ethernet header.
    max_frame: usize,
}

impl<D> Wire<D> {
    pub fn new(dev: D, max_frame: usize) -> Self {
        Wire {
            dev,
            rx: [0; MAX_FRAME],
            counters: PortCounters::default(),
            max_frame,
        }
    }
}

pub(crate) struct RxTok<'a> {
    frame: &'a [u8],
}

pub(crate) struct TxTok<'a, D> {
    dev: &'a mut D,
    counters: &'a mut PortCounters,
}

impl phy::RxToken for RxTok<'_> {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(self.frame)
    }
}

impl<D: NetDevice> phy::TxToken for TxTok<'_, D> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        // smoltcp's transmit is infallible; `transmit` only hands out a token when the NIC
        // has room, so `transmit_with` succeeds. If it ever does not, the frame is built in
        // scratch space and counted as dropped.
        let mut f = Some(f);
        let mut result = None;
        let sent = self.dev.transmit_with(len, |buf| {
            if let Some(f) = f.take() {
                result = Some(f(buf));
            }
        });
        if sent.is_some() {
            self.counters.tx_frames += 1;
        } else {
            self.counters.tx_dropped += 1;
        }
        match (result, f.take()) {
            (Some(r), _) => r,
            (None, Some(f)) => {
                let mut scratch = [0u8; MAX_FRAME];
                f(&mut scratch[..len.min(MAX_FRAME)])
            }
            // `f` was taken only inside the closure, which then stored its result.
            (None, None) => unreachable!("transmit closure ran without a result"),
        }
    }
}

impl<D: NetDevice> phy::Device for Wire<D> {
    type RxToken<'a>
        = RxTok<'a>
    where
        Self: 'a;
    type TxToken<'a>
        = TxTok<'a, D>
    where
        Self: 'a;

    fn receive(&mut self, _now: Instant) -> Option<(RxTok<'_>, TxTok<'_, D>)> {
        let Wire {
            dev, rx, counters, ..
        } = self;
        let n = dev.receive_with(|frame| {
            let n = frame.len().min(MAX_FRAME);
            rx[..n].copy_from_slice(&frame[..n]);
            n
        })?;
        counters.rx_frames += 1;
        Some((RxTok { frame: &rx[..n] }, TxTok { dev, counters }))
    }

    fn transmit(&mut self, _now: Instant) -> Option<TxTok<'_, D>> {
        if !self.dev.can_transmit() {
            return None;
        }
        Some(TxTok {
            dev: &mut self.dev,
            counters: &mut self.counters,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.max_frame;
        caps.max_burst_size = Some(16);
        let mut cs = ChecksumCapabilities::default();
        cs.ipv4 = Checksum::Both;
        caps.checksum = cs;
        caps
    }
}
