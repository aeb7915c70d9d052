//! The node-file parser seen from outside: whole files in, `Config` or line-numbered
//! errors out.

use smoltcp::wire::{
    EthernetAddress, IpAddress, IpCidr, Ipv4Address, Ipv4Cidr, Ipv6Address, Ipv6Cidr,
};
use vdcnet_appliance::config::{
    parse, Config, ConfigError, PublicKey, SecretKey, DEFAULT_CONFIG_TEXT, DEFAULT_LISTEN_PORT,
    MAX_CONFIG_LEN, MAX_ERRORS, MAX_LINE_LEN,
};

// RFC 7748 §6.1 key pairs, as `wg genkey` / `wg pubkey` would print them.
const ALICE_PRIVATE: [u8; 32] =
    hex32("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
const ALICE_PRIVATE_B64: &str = "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=";
const ALICE_PUBLIC: [u8; 32] =
    hex32("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
const ALICE_PUBLIC_B64: &str = "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=";
const BOB_PRIVATE: [u8; 32] =
    hex32("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
const BOB_PRIVATE_B64: &str = "XasIfmJKikt54X+Lg4AO5m87sSkmGLb9HC+LJ/+I4Os=";
const BOB_PUBLIC: [u8; 32] =
    hex32("de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
const BOB_PUBLIC_B64: &str = "3p7bfXt9wbTTW2HC7OQ1Nz+DQ8hbeGdNrfx+FG+IK08=";

const fn hex32(text: &str) -> [u8; 32] {
    const fn nibble(c: u8) -> u8 {
        match c {
            b'0'..=b'9' => c - b'0',
            b'a'..=b'f' => c - b'a' + 10,
            _ => panic!("not lowercase hex"),
        }
    }
    let text = text.as_bytes();
    assert!(text.len() == 64);
    let mut out = [0u8; 32];
    let mut i = 0;
    while i < 32 {
        out[i] = nibble(text[2 * i]) << 4 | nibble(text[2 * i + 1]);
        i += 1;
    }
    out
}

/// The example from the format description, comments and all.
fn example() -> String {
    format!(
        "\
[Link]                      # one per NIC, in PCI order (or matched by MACAddress = ...)
MACAddress = 52:54:00:12:34:56   # optional: bind this section to the NIC with that MAC
Address = 10.0.2.15/24, fec0::15/64   # IPv4 and/or IPv6 with prefix length, comma-separated, can repeat the key
Gateway = 10.0.2.2          # optional default route; at most one IPv4 and one IPv6 (comma-separated or repeated key)
MTU = 1500                  # optional, 576..=9000 (IPv6 needs >= 1280 if the link has an IPv6 address)

[Interface]                 # at most one: the WireGuard tunnel (wg-quick key names)
PrivateKey = {ALICE_PRIVATE_B64}
ListenPort = 51820          # optional, default 51820
Address = 10.20.1.1/24, fd20:1::1/64
MTU = 1420                  # optional

[Peer]                      # zero or more
PublicKey = {BOB_PUBLIC_B64}
PresharedKey = {BOB_PRIVATE_B64}     # optional
Endpoint = 192.0.2.11:51820 # optional; IPv6 as [fd00::1]:51820; no DNS names (error says so)
AllowedIPs = 10.20.2.0/24, fd20:2::/64   # repeatable; host bits set in a prefix -> error (like systemd)
PersistentKeepalive = 25    # optional, 0..=65535 or \"off\"
"
    )
}

/// A valid link and tunnel to put peers after; its last line is line 5.
fn tunnel() -> String {
    format!("[Link]\nAddress = 10.0.2.15/24\n[Interface]\nPrivateKey = {ALICE_PRIVATE_B64}\nAddress = 10.20.1.1/24\n")
}

fn v4(a: u8, b: u8, c: u8, d: u8, len: u8) -> IpCidr {
    IpCidr::Ipv4(Ipv4Cidr::new(Ipv4Address::new(a, b, c, d), len))
}

fn v6(segments: [u16; 8], len: u8) -> IpCidr {
    let [a, b, c, d, e, f, g, h] = segments;
    IpCidr::Ipv6(Ipv6Cidr::new(Ipv6Address::new(a, b, c, d, e, f, g, h), len))
}

fn ok(text: &str) -> Config {
    match parse(text.as_bytes()) {
        Ok(config) => config,
        Err(errors) => panic!("expected a config, got errors: {errors:#?}"),
    }
}

fn errors(text: &str) -> Vec<ConfigError> {
    parse(text.as_bytes()).expect_err("expected errors")
}

/// Asserts that `text` fails with exactly one error, on `line`, containing `needle`.
#[track_caller]
fn assert_error(text: &str, line: usize, needle: &str) {
    let errors = errors(text);
    assert_eq!(errors.len(), 1, "expected one error, got {errors:#?}");
    assert_eq!(errors[0].line, line, "wrong line: {errors:#?}");
    assert!(
        errors[0].message.contains(needle),
        "{:?} does not contain {needle:?}",
        errors[0].message
    );
}

// --- valid files ------------------------------------------------------------------------

#[test]
fn example_file_parses_to_expected_values() {
    let config = ok(&example());

    assert_eq!(config.links.len(), 1);
    let link = &config.links[0];
    assert_eq!(
        link.mac,
        Some(EthernetAddress([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]))
    );
    assert_eq!(
        link.addresses,
        [
            v4(10, 0, 2, 15, 24),
            v6([0xfec0, 0, 0, 0, 0, 0, 0, 0x15], 64)
        ]
    );
    assert_eq!(link.gateway_v4, Some(Ipv4Address::new(10, 0, 2, 2)));
    assert_eq!(link.gateway_v6, None);
    assert_eq!(link.mtu, Some(1500));
    assert_eq!(link.line, 1);

    let interface = config.interface.as_ref().expect("an [Interface]");
    assert_eq!(interface.private_key.0, ALICE_PRIVATE);
    assert_eq!(interface.listen_port, 51820);
    assert_eq!(
        interface.addresses,
        [v4(10, 20, 1, 1, 24), v6([0xfd20, 1, 0, 0, 0, 0, 0, 1], 64)]
    );
    assert_eq!(interface.mtu, Some(1420));
    assert_eq!(interface.line, 7);

    assert_eq!(config.peers.len(), 1);
    let peer = &config.peers[0];
    assert_eq!(peer.public_key, PublicKey(BOB_PUBLIC));
    assert_eq!(peer.preshared_key, Some(SecretKey(BOB_PRIVATE)));
    assert_eq!(peer.endpoint, Some((IpAddress::v4(192, 0, 2, 11), 51820)));
    assert_eq!(
        peer.allowed_ips,
        [v4(10, 20, 2, 0, 24), v6([0xfd20, 2, 0, 0, 0, 0, 0, 0], 64)]
    );
    assert_eq!(peer.persistent_keepalive, Some(25));
    assert_eq!(peer.line, 13);
}

#[test]
fn default_config_text_matches_default_config() {
    assert_eq!(ok(DEFAULT_CONFIG_TEXT), Config::default_config());
    let default = Config::default_config();
    assert_eq!(default.links[0].addresses[0], v4(10, 0, 2, 15, 24));
    assert_eq!(
        default.links[0].gateway_v4,
        Some(Ipv4Address::new(10, 0, 2, 2))
    );
    assert!(default.interface.is_none());
}

#[test]
fn comments_and_case_insensitive_names_work() {
    let text = format!(
        "; leading comment\n\
         # another\n\
         \n\
         [link]   # lower-case section\n\
         \taddress=10.0.2.15/24;trailing\n\
         GATEWAY = 10.0.2.2#no space before the comment\n\
         MtU = 1500\n\
         [INTERFACE]\n\
         privatekey = {ALICE_PRIVATE_B64} # comment after a key\n\
         [pEeR]\n\
         PUBLICKEY = {BOB_PUBLIC_B64}\n\
         allowedips = 10.20.2.0/24\n\
         persistentKEEPALIVE = off\n"
    );
    let config = ok(&text);
    assert_eq!(config.links[0].addresses, [v4(10, 0, 2, 15, 24)]);
    assert_eq!(
        config.links[0].gateway_v4,
        Some(Ipv4Address::new(10, 0, 2, 2))
    );
    assert_eq!(config.links[0].mtu, Some(1500));
    assert_eq!(config.links[0].line, 4);
    assert_eq!(config.peers[0].allowed_ips, [v4(10, 20, 2, 0, 24)]);
    assert_eq!(config.peers[0].persistent_keepalive, None);
}

#[test]
fn keys_round_trip_from_wg_genkey_base64() {
    let text = format!("{}[Peer]\nPublicKey = {ALICE_PUBLIC_B64}\n", tunnel());
    let config = ok(&text);
    let interface = config.interface.expect("an [Interface]");
    assert_eq!(interface.private_key.0, ALICE_PRIVATE);
    assert_eq!(config.peers[0].public_key.0, ALICE_PUBLIC);
    assert_eq!(config.peers[0].public_key.to_string(), ALICE_PUBLIC_B64);
    assert_eq!(format!("{:?}", interface.private_key), "<redacted>");
    assert!(!format!("{interface:?}").contains(ALICE_PRIVATE_B64));

    // The fixture is a real pair: the public key is the private key's X25519 image.
    let secret = x25519_dalek::StaticSecret::from(ALICE_PRIVATE);
    assert_eq!(
        x25519_dalek::PublicKey::from(&secret).to_bytes(),
        ALICE_PUBLIC
    );
    let secret = x25519_dalek::StaticSecret::from(BOB_PRIVATE);
    assert_eq!(
        x25519_dalek::PublicKey::from(&secret).to_bytes(),
        BOB_PUBLIC
    );
}

#[test]
fn interface_without_address_is_allowed() {
    let text =
        format!("[Link]\nAddress = 10.0.2.15/24\n[Interface]\nPrivateKey = {ALICE_PRIVATE_B64}\n");
    let interface = ok(&text).interface.expect("an [Interface]");
    assert!(interface.addresses.is_empty());
    assert_eq!(interface.listen_port, DEFAULT_LISTEN_PORT);
}

#[test]
fn list_keys_may_repeat_and_mix_families() {
    let config = ok("[Link]\n\
         Address = 10.0.2.15/24\n\
         Address = fec0::15/64, 192.168.7.1/30\n\
         Gateway = fec0::2\n\
         Gateway = 192.168.7.2\n");
    let link = &config.links[0];
    assert_eq!(link.addresses.len(), 3);
    assert_eq!(link.gateway_v4, Some(Ipv4Address::new(192, 168, 7, 2)));
    assert_eq!(
        link.gateway_v6,
        Some(Ipv6Address::new(0xfec0, 0, 0, 0, 0, 0, 0, 2))
    );
}

#[test]
fn ipv6_endpoint_and_bare_allowed_ip_are_accepted() {
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\nEndpoint = [fd00::1]:51820\nAllowedIPs = 10.20.2.9, fd20:2::9\nPersistentKeepalive = 0\n",
        tunnel()
    );
    let peer = &ok(&text).peers[0];
    assert_eq!(
        peer.endpoint,
        Some((IpAddress::v6(0xfd00, 0, 0, 0, 0, 0, 0, 1), 51820))
    );
    assert_eq!(
        peer.allowed_ips,
        [v4(10, 20, 2, 9, 32), v6([0xfd20, 2, 0, 0, 0, 0, 0, 9], 128)]
    );
    assert_eq!(peer.persistent_keepalive, None);
}

#[test]
fn links_are_kept_in_file_order_with_their_macs() {
    let config = ok("[Link]\nAddress = 10.0.2.15/24\n\
         [Link]\nMACAddress = 52:54:00:00:00:02\nAddress = 10.0.3.15/24\n");
    assert_eq!(config.links.len(), 2);
    assert_eq!(config.links[0].mac, None);
    assert_eq!(
        config.links[1].mac,
        Some(EthernetAddress([0x52, 0x54, 0, 0, 0, 2]))
    );
    assert_eq!(config.links[1].line, 3);
}

#[test]
fn crlf_line_endings_are_accepted() {
    let text = DEFAULT_CONFIG_TEXT.replace('\n', "\r\n");
    assert_eq!(ok(&text), Config::default_config());
}

// --- one error each, on the right line ----------------------------------------------------

#[test]
fn key_before_any_section_is_an_error() {
    assert_error(
        "Address = 10.0.2.15/24\n[Link]\nAddress = 10.0.2.15/24\n",
        1,
        "before any section",
    );
}

#[test]
fn unknown_section_is_an_error() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\n[Route]\nDestination = 0.0.0.0/0\n",
        3,
        "unknown section [Route]",
    );
}

#[test]
fn unknown_key_is_an_error() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nDHCP = yes\n",
        3,
        "unknown key \"DHCP\"",
    );
}

#[test]
fn unsupported_wg_quick_key_is_an_error_that_says_so() {
    let text = format!("{}DNS = 1.1.1.1\n", tunnel());
    assert_error(&text, 6, "wg-quick setting");
}

#[test]
fn duplicate_single_valued_key_is_an_error() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nMTU = 1500\nmtu = 1400\n",
        4,
        "duplicate MTU; it is already set at line 3",
    );
    let text = format!("{}ListenPort = 1\nListenPort = 2\n", tunnel());
    assert_error(&text, 7, "duplicate ListenPort");
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\nEndpoint = 192.0.2.1:1\nEndpoint = 192.0.2.2:1\n",
        tunnel()
    );
    assert_error(&text, 9, "duplicate Endpoint");
}

#[test]
fn line_without_equals_is_an_error() {
    assert_error(
        "[Link]\nAddress 10.0.2.15/24\nAddress = 10.0.2.15/24\n",
        2,
        "expected `Key = value`",
    );
}

#[test]
fn key_without_value_is_an_error() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nMTU =    # nothing\n",
        3,
        "MTU has no value",
    );
}

#[test]
fn malformed_section_header_is_an_error() {
    assert_error(
        "[Link\nAddress = 10.0.2.15/24\n",
        1,
        "malformed section header",
    );
}

#[test]
fn link_without_address_is_an_error_at_its_header() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\n\n[Link]\nMTU = 1500\n",
        4,
        "[Link] has no Address",
    );
}

#[test]
fn link_address_without_prefix_length_is_an_error() {
    assert_error("[Link]\nAddress = 10.0.2.15\n", 2, "needs a prefix length");
}

#[test]
fn link_address_that_is_not_a_host_address_is_an_error() {
    assert_error("[Link]\nAddress = 10.0.2.0/24\n", 2, "network address");
    assert_error("[Link]\nAddress = 224.0.0.1/24\n", 2, "multicast");
}

#[test]
fn gateway_outside_link_subnets_is_an_error() {
    let errors = errors("[Link]\nAddress = 10.0.2.15/24\nGateway = 10.9.9.1\n");
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        "line 3: Gateway 10.9.9.1 is not inside any IPv4 subnet of this [Link]"
    );
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24, fec0::15/64\nGateway = fd00::1\n",
        3,
        "Gateway fd00::1 is not inside any IPv6 subnet",
    );
}

#[test]
fn gateway_without_address_of_its_family_is_an_error() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\n\nGateway = fec0::2\n",
        4,
        "has no IPv6 Address",
    );
}

#[test]
fn gateway_equal_to_own_address_is_an_error() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nGateway = 10.0.2.15\n",
        3,
        "own address",
    );
}

#[test]
fn second_gateway_of_one_family_is_an_error() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nGateway = 10.0.2.2, 10.0.2.3\n",
        3,
        "more than one IPv4 Gateway; the first is at line 3",
    );
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nGateway = 10.0.2.2\nGateway = 10.0.2.3\n",
        4,
        "more than one IPv4 Gateway; the first is at line 3",
    );
}

#[test]
fn mtu_out_of_range_is_an_error() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nMTU = 575\n",
        3,
        "out of range",
    );
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nMTU = 9001\n",
        3,
        "out of range",
    );
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nMTU = big\n",
        3,
        "not a decimal number",
    );
}

#[test]
fn mtu_below_1280_with_ipv6_address_is_an_error() {
    assert!(parse(b"[Link]\nAddress = 10.0.2.15/24\nMTU = 576\n").is_ok());
    assert_error(
        "[Link]\nMTU = 1000\nAddress = 10.0.2.15/24, fec0::15/64\n",
        2,
        "minimum for IPv6",
    );
    let text = format!("{}MTU = 1200\nAddress = fd20:1::1/64\n", tunnel());
    assert_error(&text, 6, "minimum for IPv6");
}

#[test]
fn duplicate_mac_address_is_an_error() {
    assert_error(
        "[Link]\nMACAddress = 52:54:00:12:34:56\nAddress = 10.0.2.15/24\n\
         [Link]\nMACAddress = 52:54:00:12:34:56\nAddress = 10.0.3.15/24\n",
        5,
        "already bound to the [Link] with MACAddress at line 2",
    );
}

#[test]
fn invalid_mac_address_is_an_error() {
    assert_error(
        "[Link]\nMACAddress = 52:54:00:12:34\nAddress = 10.0.2.15/24\n",
        2,
        "not a MAC address",
    );
}

#[test]
fn same_address_on_two_sections_is_an_error() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\n[Link]\nAddress = 10.0.2.15/16\n",
        4,
        "already assigned at line 2",
    );
}

#[test]
fn too_many_links_is_an_error() {
    let text: String = (1..=5)
        .map(|i| format!("[Link]\nAddress = 10.0.{i}.1/24\n"))
        .collect();
    assert_error(&text, 9, "more than 4 [Link] sections");
}

#[test]
fn too_many_addresses_is_an_error() {
    let max = vdcnet_appliance::config::MAX_ADDRESSES;
    let ok: Vec<String> = (1..=max).map(|i| format!("10.0.{i}.1/24")).collect();
    assert!(parse(format!("[Link]\nAddress = {}\n", ok.join(", ")).as_bytes()).is_ok());
    let list: Vec<String> = (1..=max + 1).map(|i| format!("10.0.{i}.1/24")).collect();
    let text = format!("[Link]\nAddress = {}\n", list.join(", "));
    assert_error(&text, 2, &format!("more than {max} addresses"));
}

#[test]
fn interface_without_private_key_is_an_error_at_its_header() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\n[Interface]\nListenPort = 51820\n",
        3,
        "[Interface] has no PrivateKey",
    );
}

#[test]
fn second_interface_is_an_error() {
    let text = format!("{}[Interface]\nPrivateKey = {BOB_PRIVATE_B64}\n", tunnel());
    assert_error(&text, 6, "second [Interface] section");
}

#[test]
fn listen_port_zero_is_an_error() {
    let text = format!("{}ListenPort = 0\n", tunnel());
    assert_error(&text, 6, "out of range");
}

#[test]
fn peer_without_public_key_is_an_error_at_its_header() {
    let text = format!("{}[Peer]\nAllowedIPs = 10.20.2.0/24\n", tunnel());
    assert_error(&text, 6, "[Peer] has no PublicKey");
}

#[test]
fn duplicate_peer_public_key_is_an_error() {
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\n[Peer]\nPublicKey = {BOB_PUBLIC_B64}\n",
        tunnel()
    );
    assert_error(&text, 9, "already used by the [Peer] at line 6");
}

#[test]
fn peer_without_interface_is_an_error() {
    let text = format!("[Link]\nAddress = 10.0.2.15/24\n[Peer]\nPublicKey = {BOB_PUBLIC_B64}\n");
    assert_error(&text, 3, "[Peer] without an [Interface]");
}

#[test]
fn key_that_is_not_32_bytes_of_base64_is_an_error() {
    // 31 bytes, 33 bytes, and not base64.
    for (key, bad) in [
        ("PrivateKey", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=="),
        ("PrivateKey", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
        ("PrivateKey", "!!!!"),
    ] {
        let text = format!("[Link]\nAddress = 10.0.2.15/24\n[Interface]\n{key} = {bad}\n");
        assert_error(&text, 4, "PrivateKey is not a WireGuard key");
    }
    let text = format!("{}[Peer]\nPublicKey = {}\n", tunnel(), &BOB_PUBLIC_B64[1..]);
    assert_error(&text, 7, "PublicKey is not a WireGuard key");
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\nPresharedKey = AAAA\n",
        tunnel()
    );
    assert_error(&text, 8, "PresharedKey is not a WireGuard key");
}

#[test]
fn allowed_ips_with_host_bits_set_is_an_error() {
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\nAllowedIPs = 10.20.2.1/24\n",
        tunnel()
    );
    assert_error(&text, 8, "host bits set; did you mean 10.20.2.0/24?");
}

#[test]
fn allowed_ips_claimed_by_two_peers_is_an_error() {
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\nAllowedIPs = 10.20.2.0/24\n\
         [Peer]\nPublicKey = {ALICE_PUBLIC_B64}\nAllowedIPs = 10.20.2.0/24\n",
        tunnel()
    );
    assert_error(&text, 11, "already routed to the [Peer] at line 6");
}

#[test]
fn too_many_allowed_ips_is_an_error() {
    let list: Vec<String> = (0..65).map(|i| format!("10.30.{i}.0/24")).collect();
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\nAllowedIPs = {}\n",
        tunnel(),
        list.join(",")
    );
    assert_error(&text, 8, "more than 64 AllowedIPs");
}

#[test]
fn too_many_peers_is_an_error() {
    let mut text = tunnel();
    for i in 0..65u8 {
        let mut key = [0u8; 32];
        key[0] = i + 1;
        text += &format!("[Peer]\nPublicKey = {}\n", PublicKey(key));
    }
    // Peer number 65 starts at line 6 + 64 * 2.
    assert_error(&text, 6 + 64 * 2, "more than 64 [Peer] sections");
}

#[test]
fn endpoint_with_dns_name_is_an_error_that_says_so() {
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\nEndpoint = vpn.example.com:51820\n",
        tunnel()
    );
    assert_error(&text, 8, "DNS names are not supported");
}

#[test]
fn endpoint_without_port_is_an_error() {
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\nEndpoint = 192.0.2.11\n",
        tunnel()
    );
    assert_error(&text, 8, "needs a port");
}

#[test]
fn keepalive_out_of_range_is_an_error() {
    let text = format!(
        "{}[Peer]\nPublicKey = {BOB_PUBLIC_B64}\nPersistentKeepalive = 70000\n",
        tunnel()
    );
    assert_error(&text, 8, "out of range");
}

#[test]
fn invalid_utf8_is_reported_with_its_line() {
    let mut text = b"[Link]\nAddress = 10.0.2.15/24\n# caf".to_vec();
    text.extend_from_slice(&[0xC3, 0x28]); // a broken two-byte sequence
    text.extend_from_slice(b"\nMTU = 1500\n");
    let errors = parse(&text).expect_err("invalid UTF-8");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_eq!(errors[0].line, 3);
    assert!(errors[0].message.contains("UTF-8"));
}

#[test]
fn line_longer_than_the_limit_is_an_error() {
    let text = format!(
        "[Link]\nAddress = 10.0.2.15/24\n#{}\n",
        "x".repeat(MAX_LINE_LEN)
    );
    assert_error(&text, 3, "limit is 1024");
}

#[test]
fn file_larger_than_the_limit_is_an_error() {
    let text = format!("{DEFAULT_CONFIG_TEXT}{}", "#\n".repeat(MAX_CONFIG_LEN / 2));
    let errors = errors(&text);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].line, 0);
    assert!(errors[0].message.contains("limit is 65536"));
}

#[test]
fn empty_file_is_an_error() {
    let errors = errors("# nothing here\n");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].message.contains("no [Link] section"));
}

// --- many errors at once --------------------------------------------------------------

#[test]
fn file_with_three_different_errors_reports_all_three() {
    let text = format!(
        "[Link]\n\
         Address = 10.0.2.15/24\n\
         Gateway = 10.9.9.1\n\
         [Interface]\n\
         PrivateKey = {ALICE_PRIVATE_B64}\n\
         ListenPort = eighty\n\
         [Peer]\n\
         PublicKey = {BOB_PUBLIC_B64}\n\
         Endpoint = vpn.example.com:51820\n"
    );
    let errors = errors(&text);
    let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 6, 9], "{errors:#?}");
    assert!(errors[0].message.contains("not inside any IPv4 subnet"));
    assert!(errors[1].message.contains("ListenPort"));
    assert!(errors[2].message.contains("DNS names"));
}

#[test]
fn errors_come_in_line_order() {
    // The missing-PrivateKey error is found when the section closes, after line 5's.
    let text = "[Link]\nAddress = 10.0.2.15/24\n[Interface]\nListenPort = 1\nBogus = 1\n";
    let lines: Vec<usize> = errors(text).iter().map(|e| e.line).collect();
    assert_eq!(lines, [3, 5]);
}

#[test]
fn error_flood_is_capped_with_a_count() {
    let text = "nonsense\n".repeat(MAX_ERRORS + 50);
    let errors = errors(&text);
    assert_eq!(errors.len(), MAX_ERRORS + 1);
    let last = errors.last().expect("a final summary");
    assert_eq!(last.line, 0);
    // 150 bad lines: 100 kept, 50 counted. (No "no [Link] section" on top: with
    // unreadable lines, that would only repeat them.)
    assert_eq!(last.message, "... and 50 more errors");
}

// --- hostile input ----------------------------------------------------------------------

#[test]
fn non_utf8_garbage_returns_errors_without_panic() {
    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert!(parse(&garbage).is_err());
    assert!(parse(&[0xff; 100]).is_err());
    assert!(parse(b"").is_err());
    assert!(parse(b"\n\n\n").is_err());
    assert!(parse(b"\0").is_err());
    assert!(parse(b"[").is_err());
    assert!(parse(b"=").is_err());
    assert!(parse(b"[Link]\n=").is_err());
}

#[test]
fn huge_lines_return_errors_without_panic() {
    let line = "Address = ".to_string() + &"1".repeat(60_000);
    let text = format!("[Link]\n{line}\n");
    assert_error(&text, 2, "limit is 1024");
    assert!(parse("x".repeat(MAX_CONFIG_LEN).as_bytes()).is_err());
}

#[test]
fn one_mib_input_returns_an_error_without_panic() {
    let text = vec![b'a'; 1024 * 1024];
    let errors = parse(&text).expect_err("too large");
    assert_eq!(errors.len(), 1);
    let text = DEFAULT_CONFIG_TEXT.repeat(1024 * 1024 / DEFAULT_CONFIG_TEXT.len() + 1);
    assert!(parse(text.as_bytes()).is_err());
}

/// A small deterministic fuzzer: mutate valid files and splice in config-ish tokens.
/// The property is only "returns, doesn't panic" (and an `Ok` is internally consistent).
#[test]
fn mutated_configs_never_panic() {
    let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
    let seed = example().into_bytes();
    const TOKENS: &[&[u8]] = &[
        b"[Link]",
        b"[Interface]",
        b"[Peer]",
        b"=",
        b",",
        b"/",
        b":",
        b"[",
        b"]",
        b"#",
        b";",
        b"\n",
        b"\r",
        b" ",
        b"Address",
        b"Gateway",
        b"MTU",
        b"AllowedIPs",
        b"Endpoint",
        b"PublicKey",
        b"MACAddress",
        b"::",
        b"255",
        b"65535",
        b"99999999999",
        b"/129",
        b"/33",
        b"\xff",
        b"\xc3",
        b"\0",
        b"off",
        b"fe80::1%eth0",
        b"[::]:0",
        b"1.2.3.4",
    ];
    for _ in 0..20_000 {
        let mut text = seed.clone();
        for _ in 0..=rng.below(8) {
            let at = rng.below(text.len() + 1);
            match rng.below(4) {
                0 if !text.is_empty() => {
                    let at = at.min(text.len() - 1);
                    text[at] = rng.next() as u8;
                }
                1 => {
                    let end = (at + rng.below(40)).min(text.len());
                    text.drain(at..end);
                }
                _ => {
                    let token = TOKENS[rng.below(TOKENS.len())];
                    text.splice(at..at, token.iter().copied());
                }
            }
        }
        if let Ok(config) = parse(&text) {
            assert!(!config.links.is_empty() && config.links.len() <= 4);
            assert!(config.links.iter().all(|l| !l.addresses.is_empty()));
            assert!(config.interface.is_some() || config.peers.is_empty());
        }
    }
}

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

// ----- segments: Role, DHCP, router advertisements, egress -------------------------

const SEGMENT: &str = "\
[Link]
Address = 192.168.100.1/24
Gateway = 192.168.100.254
Egress = nat

[Link]
Role = segment
Address = 10.20.1.1/24, fd20:ab:cd:1::1/64
LeaseTime = 600
StaticLease = 52:54:00:aa:bb:01, 10.20.1.10
StaticLease = 52-54-00-aa-bb-02, 10.20.1.11
";

#[test]
fn a_segment_link_gets_dhcp_and_router_advertisements_by_default() {
    use vdcnet_appliance::config::Role;
    let c = ok(SEGMENT);
    assert_eq!(c.links[0].role, Role::Underlay);
    assert!(c.links[0].egress_nat);
    assert!(c.links[0].dhcp.is_none() && !c.links[0].send_ra);
    let s = &c.links[1];
    assert_eq!(s.role, Role::Segment);
    assert!(!s.egress_nat && s.send_ra);
    let d = s.dhcp.as_ref().expect("DHCP server on by default");
    assert_eq!(d.lease_secs, 600);
    assert_eq!(
        d.static_leases,
        vec![
            (
                EthernetAddress([0x52, 0x54, 0, 0xaa, 0xbb, 1]),
                Ipv4Address::new(10, 20, 1, 10)
            ),
            (
                EthernetAddress([0x52, 0x54, 0, 0xaa, 0xbb, 2]),
                Ipv4Address::new(10, 20, 1, 11)
            ),
        ]
    );
    let off = ok("[Link]\nRole = segment\nAddress = 10.20.1.1/24\nDHCPServer = no\nSendRA = off\n");
    assert!(off.links[0].dhcp.is_none() && !off.links[0].send_ra);
    let default_lease = ok("[Link]\nRole = Segment\nAddress = 10.20.1.1/24\n");
    assert_eq!(
        default_lease.links[0].dhcp.as_ref().unwrap().lease_secs,
        3600
    );
}

#[test]
fn segment_keys_on_an_underlay_link_are_errors() {
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nDHCPServer = yes\n",
        3,
        "DHCPServer is only for a [Link] with Role = segment",
    );
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nStaticLease = 52:54:00:aa:bb:01, 10.0.2.20\n",
        3,
        "StaticLease is only for a [Link] with Role = segment",
    );
    assert_error(
        "[Link]\nRole = segment\nAddress = 10.20.1.1/24\nEgress = nat\n",
        4,
        "Egress is set on the underlay [Link]",
    );
    assert_error(
        "[Link]\nRole = router\nAddress = 10.0.2.15/24\n",
        2,
        "Role \"router\" is not one of",
    );
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\nEgress = masquerade\n",
        3,
        "Egress \"masquerade\"",
    );
    assert_error(
        "[Link]\nAddress = fd00::1/64\nEgress = nat\n",
        3,
        "Egress = nat needs an IPv4 Address",
    );
}

#[test]
fn bad_dhcp_settings_name_their_line() {
    let base = "[Link]\nRole = segment\nAddress = 10.20.1.1/24\n";
    for (line, needle) in [
        (
            "LeaseTime = 10",
            "LeaseTime \"10\" is not a number of seconds in 60..=604800",
        ),
        ("LeaseTime = 1h", "LeaseTime \"1h\""),
        (
            "DHCPServer = maybe",
            "DHCPServer \"maybe\" is not yes or no",
        ),
        (
            "StaticLease = 52:54:00:aa:bb:01",
            "StaticLease is a MAC and an IPv4 address",
        ),
        (
            "StaticLease = 52:54:00:aa:bb:01, 10.20.2.5",
            "outside this segment's subnets: a workload visiting from another segment needs [Routing]",
        ),
        (
            "StaticLease = 52:54:00:aa:bb:01, 10.20.1.1",
            "is this [Link]'s own address",
        ),
        (
            "StaticLease = 52:54:00:aa:bb:01, 10.20.1.255",
            "broadcast address",
        ),
        (
            "StaticLease = 52:54:00:aa:bb:01, fd00::5",
            "is not an IPv4 address",
        ),
        (
            "StaticLease = 01:54:00:aa:bb:01, 10.20.1.5",
            "StaticLease: MACAddress",
        ),
    ] {
        assert_error(&format!("{base}{line}\n"), 4, needle);
    }
    assert_error(
        &format!("{base}StaticLease = 52:54:00:aa:bb:01, 10.20.1.5\nStaticLease = 52:54:00:aa:bb:01, 10.20.1.6\n"),
        5,
        "already given at line 4",
    );
    assert_error(
        "[Link]\nRole = segment\nAddress = fd20::1/64\nDHCPServer = yes\n",
        4,
        "DHCPServer = yes needs an IPv4 Address",
    );
}

/// A node with a segment 10.20.3.0/24, a tunnel and `[Routing]` over 10.20.0.0/16; the
/// segment's `StaticLease` line is line 4.
fn visited(lease: &str) -> String {
    format!(
        "[Link]\nRole = segment\nAddress = 10.20.3.1/24\nStaticLease = {lease}\n\
         [Link]\nAddress = 192.168.100.3/24\n\
         [Interface]\nPrivateKey = {ALICE_PRIVATE_B64}\nAddress = 10.20.250.3/32\n\
         [Routing]\nNetworks = 10.20.0.0/16\n"
    )
}

#[test]
fn a_static_lease_of_another_segment_is_kept_for_a_visiting_workload() {
    let c = ok(&visited("52:54:00:aa:bb:01, 10.20.1.10"));
    let dhcp = c.links[0].dhcp.as_ref().expect("the segment's DHCP server");
    assert_eq!(
        dhcp.static_leases,
        vec![(
            EthernetAddress([0x52, 0x54, 0, 0xaa, 0xbb, 1]),
            Ipv4Address::new(10, 20, 1, 10)
        )]
    );
    for (lease, needle) in [
        (
            "52:54:00:aa:bb:01, 10.30.1.10",
            "outside this segment's subnets and outside the VDC's Networks",
        ),
        (
            "52:54:00:aa:bb:01, 192.168.100.3",
            "is one of this node's own addresses",
        ),
        (
            "52:54:00:aa:bb:01, 10.20.250.3",
            "is one of this node's own addresses",
        ),
        ("52:54:00:aa:bb:01, 224.0.0.5", "not a unicast host address"),
    ] {
        assert_error(&visited(lease), 4, needle);
    }
}

// --- [Routing] --------------------------------------------------------------------------

#[test]
fn routing_section_gives_the_networks_and_hello_interval() {
    let c = ok(&format!(
        "{}[Routing]\nNetworks = 10.20.0.0/16\nnetworks = fd20:ab:cd::/48\nHelloInterval = 250\n",
        tunnel()
    ));
    let r = c.routing.expect("a [Routing] config");
    assert_eq!(
        r.networks,
        vec![
            v4(10, 20, 0, 0, 16),
            v6([0xfd20, 0xab, 0xcd, 0, 0, 0, 0, 0], 48)
        ]
    );
    assert_eq!((r.hello_interval_ms, r.line), (Some(250), 6));
    assert_eq!(ok(&tunnel()).routing, None);
}

#[test]
fn routing_section_errors_name_their_lines() {
    let t = tunnel();
    assert_error(&format!("{t}[Routing]\n"), 6, "has no Networks");
    assert_error(
        &format!("{t}[Routing]\nNetworks = 10.20.1.0/16\n"),
        7,
        "host bits set; did you mean 10.20.0.0/16",
    );
    assert_error(
        &format!("{t}[Routing]\nNetworks = 0.0.0.0/0\n"),
        7,
        "is everything",
    );
    assert_error(
        &format!("{t}[Routing]\nNetworks = 10.20.0.0/16, 10.20.0.0/16\n"),
        7,
        "listed twice",
    );
    assert_error(
        &format!("{t}[Routing]\nNetworks = 10.20.0.0/16\nHelloInterval = 10\n"),
        8,
        "HelloInterval",
    );
    assert_error(
        &format!("{t}[Routing]\nNetworks = 10.20.0.0/16\nMetric = 5\n"),
        8,
        "Metric",
    );
    assert_error(
        &format!("{t}[Routing]\nNetworks = 10.20.0.0/16\n[Routing]\nNetworks = 10.30.0.0/16\n"),
        8,
        "second [Routing]",
    );
    assert_error(
        "[Link]\nAddress = 10.0.2.15/24\n[Routing]\nNetworks = 10.20.0.0/16\n",
        3,
        "needs an [Interface]",
    );
}
