//! What the router answers itself on a link: ARP and neighbour discovery (and the probes
//! that resolve next hops), router advertisements, and the segment's DHCP server.

use super::packet::{
    udp4_checksum, write_ipv4, write_ipv6, write_udp, IPV4_HEADER, IPV6_HEADER, UDP_HEADER,
};
use super::ports::{multicast_mac, solicited_node, Link};
use super::{dst_of, ra, take, udp_payload_to, Discard, Router};
use rand_core::CryptoRngCore;
use smoltcp::phy::ChecksumCapabilities;
use smoltcp::time::Duration;
use smoltcp::wire::{
    ArpOperation, ArpPacket, ArpRepr, EthernetAddress, EthernetProtocol, Icmpv6Packet, Icmpv6Repr,
    IpAddress, IpCidr, IpProtocol, Ipv4Address, Ipv6Address, Ipv6Packet, NdiscNeighborFlags,
    NdiscRepr, RawHardwareAddress,
};
use vdcnet_hal::net::NetDevice;

impl<D: NetDevice, R: CryptoRngCore> Router<D, R> {
    pub(super) fn arp_in(&mut self, i: usize, payload: &[u8]) {
        let Ok(p) = ArpPacket::new_checked(payload) else {
            return self.malformed(i);
        };
        let Ok(ArpRepr::EthernetIpv4 {
            operation,
            source_hardware_addr,
            source_protocol_addr,
            target_protocol_addr,
            ..
        }) = ArpRepr::parse(&p)
        else {
            return self.malformed(i);
        };
        let now = self.now;
        let link = &mut self.links[i];
        let sender = IpAddress::Ipv4(source_protocol_addr);
        let target = IpAddress::Ipv4(target_protocol_addr);
        let for_us = link.owns(target);
        if source_hardware_addr.is_unicast()
            && link.admits(source_hardware_addr, sender)
            && !link.owns(sender)
        {
            link.neigh.learn(sender, source_hardware_addr, now, for_us);
            self.flush_held(i, sender);
        }
        // A workload of this segment that is away visiting another: its neighbours here
        // still think it on-link, so the router answers for it and forwards to it.
        let away = !for_us
            && self.links[i]
                .dhcp
                .as_ref()
                .is_some_and(|d| d.pins(target_protocol_addr))
            && self
                .route(target)
                .is_some_and(|hop| hop != super::Hop::OnLink(i));
        let link = &mut self.links[i];
        if operation == ArpOperation::Request && (for_us || away) {
            let reply = ArpRepr::EthernetIpv4 {
                operation: ArpOperation::Reply,
                source_hardware_addr: link.mac,
                source_protocol_addr: target_protocol_addr,
                target_hardware_addr: source_hardware_addr,
                target_protocol_addr: source_protocol_addr,
            };
            let mut buf = [0u8; 28];
            reply.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
            link.transmit(source_hardware_addr, EthernetProtocol::Arp, &buf);
        }
    }

    /// Handles the Neighbor Discovery messages; `true` if `pkt` was one (consumed).
    pub(super) fn ndp_in(&mut self, i: usize, src_mac: EthernetAddress, pkt: &[u8]) -> bool {
        let Ok(ip) = Ipv6Packet::new_checked(pkt) else {
            return false;
        };
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let Ok(icmp) = Icmpv6Packet::new_checked(ip.payload()) else {
            return false;
        };
        let ty = u8::from(icmp.msg_type());
        if !(133..=137).contains(&ty) {
            return false;
        }
        // RFC 4861: every NDP message has hop limit 255 (it never crossed a router).
        if ip.hop_limit() != 255 {
            self.malformed(i);
            return true;
        }
        let Ok(Icmpv6Repr::Ndisc(repr)) =
            Icmpv6Repr::parse(&src, &dst, &icmp, &ChecksumCapabilities::default())
        else {
            self.malformed(i);
            return true;
        };
        let now = self.now;
        let eth = |l: Option<RawHardwareAddress>| {
            l.filter(|r| r.len() == 6)
                .map(|r| EthernetAddress::from_bytes(r.as_bytes()))
        };
        match repr {
            NdiscRepr::NeighborSolicit {
                target_addr,
                lladdr,
            } => {
                let link = &mut self.links[i];
                let ours = link.owns(IpAddress::Ipv6(target_addr));
                if !src.is_unspecified() {
                    if let Some(mac) = eth(lladdr).filter(|m| m.is_unicast()) {
                        link.neigh.learn(IpAddress::Ipv6(src), mac, now, ours);
                        self.flush_held(i, IpAddress::Ipv6(src));
                    }
                }
                if ours {
                    let (to, to_mac, solicited) = if src.is_unspecified() {
                        let all = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
                        (all, multicast_mac(all), false)
                    } else {
                        (src, src_mac, true)
                    };
                    let mut flags = NdiscNeighborFlags::OVERRIDE;
                    if solicited {
                        flags |= NdiscNeighborFlags::SOLICITED;
                    }
                    if self.links[i].is_segment() {
                        flags |= NdiscNeighborFlags::ROUTER;
                    }
                    let mac = self.links[i].mac;
                    let na = NdiscRepr::NeighborAdvert {
                        flags,
                        target_addr,
                        lladdr: Some(mac.into()),
                    };
                    let _ = self.send_ndp(i, target_addr, to, to_mac, na);
                }
            }
            NdiscRepr::NeighborAdvert {
                target_addr,
                lladdr,
                ..
            } => {
                let mac = eth(lladdr).unwrap_or(src_mac);
                let t = IpAddress::Ipv6(target_addr);
                let link = &mut self.links[i];
                if mac.is_unicast() && !link.owns(t) {
                    link.neigh.learn(t, mac, now, false);
                    self.flush_held(i, t);
                }
            }
            NdiscRepr::RouterSolicit { lladdr } => {
                if !src.is_unspecified() {
                    if let Some(mac) = eth(lladdr).filter(|m| m.is_unicast()) {
                        self.links[i]
                            .neigh
                            .learn(IpAddress::Ipv6(src), mac, now, true);
                    }
                }
                let link = &mut self.links[i];
                let recent = link
                    .last_solicited_ra
                    .is_some_and(|t| now - t < Duration::from_secs(1));
                if !link.ra_prefixes.is_empty() && !recent {
                    link.last_solicited_ra = Some(now);
                    self.send_ra(i);
                }
            }
            // Router advertisements and redirects from others: we are the router here.
            _ => {}
        }
        true
    }

    /// Sends an NDP message on link `i`; `false` if the NIC did not take it.
    pub(super) fn send_ndp(
        &mut self,
        i: usize,
        src: Ipv6Address,
        dst: Ipv6Address,
        dst_mac: EthernetAddress,
        repr: NdiscRepr,
    ) -> bool {
        let icmp = Icmpv6Repr::Ndisc(repr);
        let len = icmp.buffer_len();
        let mut buf = [0u8; 128];
        if IPV6_HEADER + len > buf.len() {
            return false;
        }
        write_ipv6(&mut buf, src, dst, IpProtocol::Icmpv6, len, 255);
        icmp.emit(
            &src,
            &dst,
            &mut Icmpv6Packet::new_unchecked(&mut buf[IPV6_HEADER..IPV6_HEADER + len]),
            &ChecksumCapabilities::default(),
        );
        self.links[i].transmit(dst_mac, EthernetProtocol::Ipv6, &buf[..IPV6_HEADER + len])
    }

    pub(super) fn send_ra(&mut self, i: usize) {
        let link = &self.links[i];
        let all = Ipv6Address::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
        let mut buf = take(&mut self.scratch);
        let n = ra::build_ra(
            &mut buf,
            link.link_local,
            all,
            link.mac,
            &link.ra_prefixes,
            link.mtu as u16,
            ra::ROUTER_LIFETIME_SECS,
        );
        if n > 0 {
            let link = &mut self.links[i];
            if link.transmit(multicast_mac(all), EthernetProtocol::Ipv6, &buf[..n]) {
                self.counters.router_adverts += 1;
            }
        }
        self.scratch = buf;
    }

    pub(super) fn send_router_adverts(&mut self) {
        for i in 0..self.links.len() {
            let link = &mut self.links[i];
            if link.ra_prefixes.is_empty() || self.now < link.next_ra {
                continue;
            }
            link.next_ra = self.now + Duration::from_secs(ra::RA_INTERVAL_SECS);
            self.send_ra(i);
        }
    }

    /// Serves DHCP on a segment; `true` if `pkt` was a datagram to the server port.
    pub(super) fn dhcp_in(&mut self, i: usize, pkt: &[u8]) -> bool {
        if self.links[i].dhcp.is_none() {
            return false;
        }
        let Some(range) = udp_payload_to(pkt, 67) else {
            return false;
        };
        let dst = dst_of(pkt);
        let link = &self.links[i];
        let to_us = match dst {
            IpAddress::Ipv4(a) => a.is_broadcast() || link.owns(dst),
            IpAddress::Ipv6(_) => false,
        };
        if !to_us {
            return false;
        }
        let Some(our) = link.first_v4() else {
            return false;
        };
        let mut buf = take(&mut self.scratch);
        let now_secs = self.now_secs();
        let hdr = IPV4_HEADER + UDP_HEADER;
        let result = self.links[i]
            .dhcp
            .as_mut()
            .map(|d| d.handle(now_secs, &pkt[range], &mut buf[hdr..]));
        let mut bound = None;
        match result {
            Some(Ok(Some(reply))) => {
                let n = reply.len;
                write_udp(&mut buf[IPV4_HEADER..], 67, 68, n);
                udp4_checksum(&mut buf[IPV4_HEADER..hdr + n], &our, &reply.dst_ip);
                write_ipv4(
                    &mut buf,
                    our,
                    reply.dst_ip,
                    IpProtocol::Udp,
                    UDP_HEADER + n,
                    64,
                );
                let link = &mut self.links[i];
                if link.transmit(reply.dst_mac, EthernetProtocol::Ipv4, &buf[..hdr + n]) {
                    self.counters.dhcp_replies += 1;
                }
                // The client has its address now: no need to ask who has it (and an
                // earlier failure to resolve it, before it came, is forgotten).
                if let Some((mac, ip)) = reply.bound {
                    let ip = IpAddress::Ipv4(ip);
                    link.neigh.learn(ip, mac, self.now, true);
                    bound = Some(ip);
                }
            }
            Some(Ok(None)) | None => {}
            Some(Err(_)) => self.count(Discard::Dhcp),
        }
        self.scratch = buf;
        if let Some(ip) = bound {
            self.flush_held(i, ip);
        }
        let now = self.now;
        let link = &mut self.links[i];
        if let (false, Some(d)) = (link.visitors.is_empty(), link.dhcp.as_ref()) {
            link.visitors.leases(d.visiting(), now);
        }
        true
    }

    /// Asks a visitor of link `j` whether it is still there: an ARP request for `ip` sent
    /// straight to its MAC, as Linux re-confirms a neighbour.
    pub(super) fn arp_request(&mut self, j: usize, mac: EthernetAddress, ip: Ipv4Address) {
        let link = &mut self.links[j];
        if let Some(ours) = link.first_v4() {
            send_arp_request(link, mac, ours, ip);
        }
    }

    /// Asks who has `hop` on link `j` (ARP request or neighbour solicitation); the caller
    /// took the probe's token from the link's budget. Counted when sent.
    pub(super) fn probe(&mut self, j: usize, hop: IpAddress) {
        let link = &mut self.links[j];
        match hop {
            IpAddress::Ipv4(a) => {
                let Some(ours) = link
                    .addrs
                    .iter()
                    .find_map(|c| match c {
                        IpCidr::Ipv4(c) if c.contains_addr(&a) => Some(c.address()),
                        _ => None,
                    })
                    .or_else(|| link.first_v4())
                else {
                    return;
                };
                if send_arp_request(link, EthernetAddress::BROADCAST, ours, a) {
                    self.counters.neighbor_probes += 1;
                }
            }
            IpAddress::Ipv6(a) => {
                let sn = solicited_node(a);
                let src = link.link_local;
                let ns = NdiscRepr::NeighborSolicit {
                    target_addr: a,
                    lladdr: Some(link.mac.into()),
                };
                if self.send_ndp(j, src, sn, multicast_mac(sn), ns) {
                    self.counters.neighbor_probes += 1;
                }
            }
        }
    }
}

/// Asks `dst` on `link` who has `target`, from our address `ours`; `false` if the NIC did
/// not take the frame.
fn send_arp_request<D: NetDevice>(
    link: &mut Link<D>,
    dst: EthernetAddress,
    ours: Ipv4Address,
    target: Ipv4Address,
) -> bool {
    let req = ArpRepr::EthernetIpv4 {
        operation: ArpOperation::Request,
        source_hardware_addr: link.mac,
        source_protocol_addr: ours,
        target_hardware_addr: EthernetAddress([0; 6]),
        target_protocol_addr: target,
    };
    let mut buf = [0u8; 28];
    req.emit(&mut ArpPacket::new_unchecked(&mut buf[..]));
    link.transmit(dst, EthernetProtocol::Arp, &buf)
}
