//! ICE/network settings from the Janus-named configuration (`nat`, `media`, `general`).

use std::net::IpAddr;

use super::engine::IceSettings;
use crate::settings::CoreSettings;

/// The address `iface` names: an IP address as written, or the first address (IPv4 first) of
/// the network interface of that name (Janus's `janus_network_lookup_interface`).
pub fn interface_address(iface: &str) -> Option<IpAddr> {
    if let Ok(ip) = iface.parse::<IpAddr>() {
        return Some(ip);
    }
    let mut ips: Vec<IpAddr> =
        if_addrs::get_if_addrs().ok()?.into_iter().filter(|i| i.name == iface).map(|i| i.ip()).collect();
    ips.sort_by_key(IpAddr::is_ipv6);
    ips.into_iter().next()
}

/// Builds the engine's ICE settings. Host candidates come from `nat.ice_enforce_list` (IPs or
/// interface names) when set, else `general.interface`, else every interface not matched by
/// `nat.ice_ignore_list` — loopback included, so peers on the same host work.
pub fn ice_settings(s: &CoreSettings) -> IceSettings {
    let list = |v: &Option<String>| -> Vec<String> {
        v.as_deref().unwrap_or("").split(',').map(|x| x.trim().to_owned()).filter(|x| !x.is_empty()).collect()
    };
    let enforce = list(&s.nat.ice_enforce_list);
    let ignore = list(&s.nat.ice_ignore_list);
    let ipv6 = s.media.ipv6;
    let interfaces = if_addrs::get_if_addrs().unwrap_or_default();
    let matches = |rule: &str, name: &str, ip: &IpAddr| name.starts_with(rule) || ip.to_string().starts_with(rule);
    let mut ips: Vec<IpAddr> = Vec::new();
    if !enforce.is_empty() {
        for rule in &enforce {
            if let Ok(ip) = rule.parse::<IpAddr>() {
                ips.push(ip);
            }
        }
        for itf in &interfaces {
            if enforce.iter().any(|r| r.parse::<IpAddr>().is_err() && matches(r, &itf.name, &itf.ip())) {
                ips.push(itf.ip());
            }
        }
    } else if let Some(ip) = s.general.interface.as_deref().and_then(|i| i.parse::<IpAddr>().ok()) {
        ips.push(ip);
    } else {
        for itf in &interfaces {
            if !ignore.iter().any(|r| matches(r, &itf.name, &itf.ip())) {
                ips.push(itf.ip());
            }
        }
    }
    ips.retain(|ip| ipv6 || ip.is_ipv4());
    ips.retain(|ip| !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80));
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        ips.push(IpAddr::from([127, 0, 0, 1]));
    }
    let port_range = s.media.rtp_port_range.as_deref().and_then(|r| {
        let (a, b) = r.split_once('-')?;
        let (a, b) = (a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?);
        (a > 0 && a <= b).then_some((a, b))
    });
    let mut ice_servers = Vec::new();
    if let Some(stun) = &s.nat.stun_server {
        ice_servers.push((format!("stun:{stun}:{}", s.nat.stun_port.unwrap_or(3478)), None, None));
    }
    if let Some(turn) = &s.nat.turn_server {
        let transport = s.nat.turn_type.as_deref().unwrap_or("udp");
        ice_servers.push((
            format!("turn:{turn}:{}?transport={transport}", s.nat.turn_port.unwrap_or(3478)),
            s.nat.turn_user.clone(),
            s.nat.turn_pwd.clone(),
        ));
    }
    IceSettings {
        ips,
        port_range,
        nat_1_1: list(&s.nat.nat_1_1_mapping),
        ice_lite: s.nat.ice_lite,
        ice_servers,
        no_media_timer: s.media.no_media_timer,
        full_trickle: s.nat.full_trickle,
        nack_queue_ms: s.media.min_nack_queue.min(1000),
        twcc_period_ms: s.media.twcc_period,
        threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2).clamp(1, 8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforce_list_and_port_range() {
        let mut s = CoreSettings::default();
        s.nat.ice_enforce_list = Some("127.0.0.1".into());
        s.media.rtp_port_range = Some("20000-20100".into());
        let ice = ice_settings(&s);
        assert_eq!(ice.ips, vec![IpAddr::from([127, 0, 0, 1])]);
        assert_eq!(ice.port_range, Some((20000, 20100)));
        s.media.rtp_port_range = Some("bad".into());
        assert_eq!(ice_settings(&s).port_range, None);
    }

    #[test]
    fn interfaces_by_address_or_name() {
        let lo = IpAddr::from([127, 0, 0, 1]);
        assert_eq!(interface_address("127.0.0.1"), Some(lo));
        assert_eq!(interface_address("::1"), Some(IpAddr::from([0, 0, 0, 0, 0, 0, 0, 1u16])));
        assert_eq!(interface_address("lo"), Some(lo), "the loopback interface's IPv4 address comes first");
        assert_eq!(interface_address("no-such-if0"), None);
    }
}
