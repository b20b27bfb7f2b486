//! The SSRF guard (ARCHITECTURE.md, `integrations/`): workflow authors choose the URLs `http.request` calls, so without
//! it any workflow could reach the cloud metadata endpoint, the database or an admin port next
//! to the worker. Every target is checked three times: the URL before sending (IP literals and
//! `localhost`), every address DNS returns (so a rebinding hostname cannot sneak through), and
//! every redirect hop.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::{Ipv4Net, Ipv6Net};
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::redirect;

/// The most redirect hops a request follows.
pub(crate) const MAX_REDIRECTS: usize = 10;

/// A target refused because it is not on the public internet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "refusing to connect to {target}: {reason}; set STEPWISE_ALLOW_PRIVATE_NETWORKS=1 to allow \
     private networks"
)]
pub struct Blocked {
    /// The host as written, with the resolved address when it came from DNS.
    pub target: String,
    pub reason: &'static str,
}

/// Why a URL cannot be requested at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlRejected {
    #[error("unsupported URL scheme `{0}`: only http and https are allowed")]
    Scheme(String),
    #[error("the URL has no host")]
    NoHost,
    #[error(transparent)]
    Blocked(#[from] Blocked),
}

/// IPv4 ranges that are not the public internet, most specific first where they overlap.
const V4_BLOCKED: &[(Ipv4Net, &str)] = &[
    (v4(0, 0, 0, 0, 8), "unspecified (\"this network\") address"),
    (v4(10, 0, 0, 0, 8), "private address"),
    (v4(100, 64, 0, 0, 10), "shared (CGNAT) address"),
    (v4(127, 0, 0, 0, 8), "loopback address"),
    (v4(169, 254, 0, 0, 16), "link-local address"),
    (v4(172, 16, 0, 0, 12), "private address"),
    (v4(192, 0, 0, 0, 24), "IETF protocol assignment address"),
    (v4(192, 0, 2, 0, 24), "documentation address"),
    (v4(192, 88, 99, 0, 24), "6to4 relay anycast address"),
    (v4(192, 168, 0, 0, 16), "private address"),
    (v4(198, 18, 0, 0, 15), "benchmarking address"),
    (v4(198, 51, 100, 0, 24), "documentation address"),
    (v4(203, 0, 113, 0, 24), "documentation address"),
    (v4(224, 0, 0, 0, 4), "multicast address"),
    (v4(255, 255, 255, 255, 32), "broadcast address"),
    (v4(240, 0, 0, 0, 4), "reserved address"),
];

/// IPv6 ranges that are not the public internet. Ranges that embed an IPv4 address are handled
/// by [`embedded_v4`] instead.
const V6_BLOCKED: &[(Ipv6Net, &str)] = &[
    (v6([0, 0, 0, 0, 0, 0, 0, 0], 128), "unspecified address"),
    (v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback address"),
    (v6([0x100, 0, 0, 0, 0, 0, 0, 0], 64), "discard-only address"),
    (
        v6([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0], 32),
        "documentation address",
    ),
    (
        v6([0x3fff, 0, 0, 0, 0, 0, 0, 0], 20),
        "documentation address",
    ),
    (
        v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "private (unique local) address",
    ),
    (v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10), "link-local address"),
    (v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10), "site-local address"),
    (v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8), "multicast address"),
];

const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Ipv4Net {
    Ipv4Net::new_assert(Ipv4Addr::new(a, b, c, d), prefix)
}

const fn v6(segments: [u16; 8], prefix: u8) -> Ipv6Net {
    let [a, b, c, d, e, f, g, h] = segments;
    Ipv6Net::new_assert(Ipv6Addr::new(a, b, c, d, e, f, g, h), prefix)
}

/// Why `ip` is not a public internet address, or `None` when it is.
pub fn blocked_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => V4_BLOCKED
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, reason)| *reason),
        IpAddr::V6(ip) => match embedded_v4(ip) {
            Some(v4) => blocked_reason(IpAddr::V4(v4)),
            None => V6_BLOCKED
                .iter()
                .find(|(net, _)| net.contains(&ip))
                .map(|(_, reason)| *reason),
        },
    }
}

/// The IPv4 address an IPv6 address stands for, so `::ffff:127.0.0.1` is judged as 127.0.0.1:
/// IPv4-mapped (`::ffff:0:0/96`), the deprecated IPv4-compatible form (`::/96`, but not `::` and
/// `::1`), NAT64 (`64:ff9b::/96`) and 6to4 (`2002::/16`).
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    let s = ip.segments();
    let low = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    match s {
        [0, 0, 0, 0, 0, 0, hi, lo] if (hi, lo) > (0, 1) => Some(low(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(low(hi, lo)),
        [0x2002, hi, lo, ..] => Some(low(hi, lo)),
        _ => None,
    }
}

/// Checks one resolved or literal address.
fn check_ip(target: impl Into<String>, ip: IpAddr) -> Result<(), Blocked> {
    match blocked_reason(ip) {
        Some(reason) => Err(Blocked {
            target: target.into(),
            reason,
        }),
        None => Ok(()),
    }
}

/// Whether outbound requests may reach non-public addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Guard {
    pub(crate) allow_private_networks: bool,
}

impl Guard {
    /// Checks the scheme always, and the host unless private networks are allowed. Hostnames
    /// other than `localhost` are checked when they resolve, by [`GuardedResolver`].
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), UrlRejected> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(UrlRejected::Scheme(url.scheme().to_owned()));
        }
        let host = url.host_str().ok_or(UrlRejected::NoHost)?;
        if self.allow_private_networks {
            return Ok(());
        }
        // The URL parser already normalised IPv4 forms such as `2130706433` or `0x7f.1` to
        // dotted decimal, and writes IPv6 literals in brackets.
        if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            if let Ok(ip) = v6.parse::<Ipv6Addr>() {
                check_ip(ip.to_string(), IpAddr::V6(ip))?;
            }
        } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
            check_ip(host, IpAddr::V4(ip))?;
        } else {
            // RFC 6761: `localhost` and `*.localhost` always resolve to loopback.
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            if name == "localhost" || name.ends_with(".localhost") {
                return Err(Blocked {
                    target: name,
                    reason: "loopback address",
                }
                .into());
            }
        }
        Ok(())
    }

    /// Follows at most [`MAX_REDIRECTS`] hops, each re-checked like the first URL.
    pub(crate) fn redirect_policy(self) -> redirect::Policy {
        redirect::Policy::custom(move |attempt| {
            if attempt.previous().len() > MAX_REDIRECTS {
                return attempt.error(format!("stopped after {MAX_REDIRECTS} redirects"));
            }
            match self.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(rejected) => attempt.error(rejected),
            }
        })
    }
}

/// Resolves names with the system resolver (through tokio) and drops every non-public
/// address, failing with [`Blocked`] when none is left. Filtering here rather than before the
/// request is what defeats DNS rebinding: the addresses checked are the ones connected to.
#[derive(Debug, Default)]
pub(crate) struct GuardedResolver;

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = resolved
                .iter()
                .copied()
                .filter(|addr| blocked_reason(addr.ip()).is_none())
                .collect();
            if let (true, Some(first)) = (public.is_empty(), resolved.first()) {
                check_ip(format!("{host} ({})", first.ip()), first.ip())?;
            }
            let addrs: Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(ip: &str) -> Option<&'static str> {
        blocked_reason(ip.parse().expect("test literal"))
    }

    #[test]
    fn non_public_addresses_are_blocked() {
        for (ip, expected) in [
            ("127.0.0.1", "loopback address"),
            ("10.1.2.3", "private address"),
            ("172.31.255.255", "private address"),
            ("192.168.0.1", "private address"),
            ("169.254.169.254", "link-local address"),
            ("100.64.0.1", "shared (CGNAT) address"),
            ("0.0.0.0", "unspecified (\"this network\") address"),
            ("224.0.0.1", "multicast address"),
            ("255.255.255.255", "broadcast address"),
            ("192.0.2.10", "documentation address"),
            ("::1", "loopback address"),
            ("::", "unspecified address"),
            ("fd00::1", "private (unique local) address"),
            ("fe80::1", "link-local address"),
            ("ff02::1", "multicast address"),
            ("2001:db8::1", "documentation address"),
            ("::ffff:127.0.0.1", "loopback address"),
            ("::ffff:169.254.169.254", "link-local address"),
            ("::127.0.0.1", "loopback address"),
            ("64:ff9b::a00:1", "private address"),
            ("2002:7f00:1::", "loopback address"),
        ] {
            assert_eq!(reason(ip), Some(expected), "{ip}");
        }
    }

    #[test]
    fn public_addresses_pass() {
        for ip in [
            "1.1.1.1",
            "93.184.216.34",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "2002:808:808::",
        ] {
            assert_eq!(reason(ip), None, "{ip}");
        }
    }

    #[test]
    fn urls_are_checked_before_sending() {
        let guard = Guard {
            allow_private_networks: false,
        };
        let check = |url: &str| guard.check_url(&Url::parse(url).expect("test literal"));
        assert!(check("https://example.com/x").is_ok());
        assert!(matches!(
            check("ftp://example.com/"),
            Err(UrlRejected::Scheme(_))
        ));
        assert!(matches!(
            check("file:///etc/passwd"),
            Err(UrlRejected::Scheme(_))
        ));
        for url in [
            "http://127.0.0.1/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://LOCALHOST./",
            "http://api.localhost/",
            "http://[::ffff:7f00:1]/",
        ] {
            assert!(matches!(check(url), Err(UrlRejected::Blocked(_))), "{url}");
        }
        let open = Guard {
            allow_private_networks: true,
        };
        assert!(
            open.check_url(&Url::parse("http://127.0.0.1/").expect("literal"))
                .is_ok()
        );
    }

    #[tokio::test]
    async fn the_resolver_drops_private_addresses() {
        use std::str::FromStr;

        let name = Name::from_str("localhost").expect("valid name");
        let error = GuardedResolver
            .resolve(name)
            .await
            .err()
            .expect("localhost resolves to loopback only");
        let blocked = error.downcast_ref::<Blocked>().expect("a Blocked error");
        assert_eq!(blocked.reason, "loopback address");
        assert!(
            blocked.target.starts_with("localhost ("),
            "{}",
            blocked.target
        );
    }
}
