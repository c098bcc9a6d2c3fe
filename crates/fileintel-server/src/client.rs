//! Who the client is, by address: the TCP peer, or the client a trusted proxy forwarded for, as
//! the budgets of rate limits and of failed sign-ins are kept by it. Authentication and rate
//! limiting both read it; it reads neither.

use std::net::SocketAddr;

use axum::extract::ConnectInfo;
use axum::http::HeaderMap;

/// The client's address, handed to the token endpoint for its failed-login budget.
#[derive(Clone)]
pub(crate) struct ClientAddress(pub String);

/// The address a request's budgets are kept under: the TCP peer, or, when the peer is a trusted
/// proxy, the right-most `X-Forwarded-For` entry that is not itself a trusted proxy (entries
/// further left are whatever the client chose to send, and prove nothing); see
/// [`budget_address`] for how much of it counts.
pub(crate) fn client_address(
    extensions: &axum::http::Extensions,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> String {
    let Some(peer) = extensions.get::<ConnectInfo<SocketAddr>>().map(|info| info.0.ip()) else {
        return "unknown".to_owned();
    };
    if !trusted.contains(&peer) {
        if forwarded_by_an_untrusted_peer(peer, headers, trusted) {
            warn_untrusted_forwarding(peer);
        }
        return budget_address(peer);
    }
    let forwarded = headers.get_all("x-forwarded-for").iter().filter_map(|value| value.to_str().ok());
    let hops: Vec<std::net::IpAddr> =
        forwarded.flat_map(|value| value.split(',')).filter_map(|hop| hop.trim().parse().ok()).collect();
    budget_address(hops.into_iter().rev().find(|hop| !trusted.contains(hop)).unwrap_or(peer))
}

/// How much of an address a budget is kept per: an IPv4 address whole, an IPv6 address by its
/// /64, the smallest block a site is given (one host can take any of its 2^64 addresses, so
/// per address it would have unlimited budgets).
pub(crate) fn budget_address(address: std::net::IpAddr) -> String {
    match address {
        std::net::IpAddr::V4(address) => address.to_string(),
        std::net::IpAddr::V6(address) => match address.to_ipv4_mapped() {
            Some(mapped) => mapped.to_string(),
            None => {
                let [a, b, c, d, ..] = address.segments();
                format!("{}/64", std::net::Ipv6Addr::new(a, b, c, d, 0, 0, 0, 0))
            }
        },
    }
}

/// Whether a request carries `X-Forwarded-For` from a peer that is not a trusted proxy: the
/// header is then ignored, and if the peer is a load balancer every client behind it shares
/// its budgets, failed sign-ins included.
pub(crate) fn forwarded_by_an_untrusted_peer(
    peer: std::net::IpAddr,
    headers: &HeaderMap,
    trusted: &[std::net::IpAddr],
) -> bool {
    !trusted.contains(&peer) && headers.contains_key("x-forwarded-for")
}

/// Says so once per process, loudly: per request it would flood the log.
fn warn_untrusted_forwarding(peer: std::net::IpAddr) {
    static WARNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if !WARNED.swap(true, std::sync::atomic::Ordering::Relaxed) {
        tracing::warn!(
            %peer,
            "a request came with X-Forwarded-For from a peer that is not a trusted proxy: the header is ignored, \
             so every client behind that peer shares one address's rate limits and failed-sign-in budget; \
             if it is your load balancer, pass --trusted-proxy {peer} (logged once)"
        );
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(forwarded: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(forwarded) = forwarded {
            headers.insert("x-forwarded-for", HeaderValue::from_str(forwarded).unwrap());
        }
        headers
    }

    #[test]
    fn ipv6_budgets_are_kept_per_64_and_ipv4_per_address() {
        let one: std::net::IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let same_64: std::net::IpAddr = "2001:db8:1:2:ffff:1234:5678:9abc".parse().unwrap();
        let next_64: std::net::IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(budget_address(one), "2001:db8:1:2::/64");
        assert_eq!(budget_address(one), budget_address(same_64));
        assert_ne!(budget_address(one), budget_address(next_64));
        assert_eq!(budget_address("192.0.2.7".parse().unwrap()), "192.0.2.7");
        assert_ne!(budget_address("192.0.2.7".parse().unwrap()), budget_address("192.0.2.8".parse().unwrap()));
        assert_eq!(budget_address("::ffff:192.0.2.7".parse().unwrap()), "192.0.2.7");
    }

    #[test]
    fn forwarded_ipv6_clients_of_a_trusted_proxy_are_kept_per_64() {
        let mut extensions = axum::http::Extensions::new();
        extensions.insert(ConnectInfo("10.0.0.1:443".parse::<SocketAddr>().unwrap()));
        let trusted = ["10.0.0.1".parse().unwrap()];
        let address = client_address(&extensions, &headers(Some("2001:db8:7:8::42")), &trusted);
        assert_eq!(address, "2001:db8:7:8::/64");
    }

    #[test]
    fn only_forwarding_by_an_untrusted_peer_is_warned_about() {
        let proxy: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let other: std::net::IpAddr = "198.51.100.9".parse().unwrap();
        let trusted = [proxy];
        assert!(forwarded_by_an_untrusted_peer(other, &headers(Some("192.0.2.7")), &trusted));
        assert!(forwarded_by_an_untrusted_peer(other, &headers(Some("192.0.2.7")), &[]));
        assert!(!forwarded_by_an_untrusted_peer(proxy, &headers(Some("192.0.2.7")), &trusted));
        assert!(!forwarded_by_an_untrusted_peer(other, &headers(None), &trusted));
    }
}
