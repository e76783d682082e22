//! The default IPv4 gateway, read from Linux's `/proc/net/route` (used only
//! when the configuration names no gateway; tests always name one).

use std::net::{IpAddr, Ipv4Addr};

/// The gateway of the default IPv4 route, if the system has one.
pub(crate) fn default_gateway() -> Option<IpAddr> {
    let table = std::fs::read_to_string("/proc/net/route").ok()?;
    parse_route_table(&table).map(IpAddr::V4)
}

/// The gateway of the first default route (destination and mask 0) of a
/// `/proc/net/route` table: hexadecimal columns after a header line, each the
/// address's bytes in network order read as a native integer.
fn parse_route_table(table: &str) -> Option<Ipv4Addr> {
    table.lines().skip(1).find_map(|line| {
        let cols: Vec<&str> = line.split_whitespace().collect();
        let hex = |i: usize| cols.get(i).and_then(|c| u32::from_str_radix(c, 16).ok());
        let (destination, gateway, mask) = (hex(1)?, hex(2)?, hex(7)?);
        (destination == 0 && mask == 0 && gateway != 0)
            .then(|| Ipv4Addr::from(gateway.to_ne_bytes()))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &str = "\
Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT
eth0\t0010A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0
eth0\t00000000\t0100A8C0\t0003\t0\t0\t100\t00000000\t0\t0\t0
";

    #[test]
    fn finds_the_default_route() {
        assert_eq!(
            parse_route_table(TABLE),
            Some(Ipv4Addr::new(192, 168, 0, 1))
        );
    }

    #[test]
    fn no_default_route_or_garbage_is_none() {
        assert_eq!(parse_route_table(""), None);
        assert_eq!(parse_route_table("Iface\n"), None);
        assert_eq!(parse_route_table("h\neth0\tzz\t0100A8C0\n"), None);
        let only_lan = TABLE.lines().take(2).collect::<Vec<_>>().join("\n");
        assert_eq!(parse_route_table(&only_lan), None);
    }
}
