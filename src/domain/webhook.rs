//! Webhooks: what a valid target URL and description are, which network addresses a webhook may
//! reach, and which events a webhook's filter selects.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::DomainError;
use super::account::parse_display_text;
use super::change::{ChangeKind, EventKind};
use super::ids::AccountId;

pub const MAX_URL_CHARS: usize = 2048;
pub const MAX_DESCRIPTION_CHARS: usize = 200;

/// Whether plain http and private addresses are allowed (tests, internal deployments).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TargetPolicy {
    pub allow_insecure: bool,
}

/// A checked target: scheme, host and port of an absolute http(s) URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookUrl {
    pub url: url::Url,
    pub host: String,
    pub port: u16,
    pub https: bool,
}

impl WebhookUrl {
    /// The path and query to request.
    pub fn path_and_query(&self) -> String {
        match self.url.query() {
            Some(query) => format!("{}?{query}", self.url.path()),
            None => self.url.path().to_owned(),
        }
    }
}

/// An absolute `https://` URL (or `http://` where the policy allows it) with a host, no
/// credentials and no fragment. A host that is an IP address must be public unless allowed.
pub fn parse_webhook_url(
    field: &str,
    raw: &str,
    policy: TargetPolicy,
) -> Result<WebhookUrl, DomainError> {
    if raw.is_empty() {
        return Err(DomainError::invalid(field, "is required"));
    }
    if raw.chars().count() > MAX_URL_CHARS {
        return Err(DomainError::invalid(
            field,
            format!("must be at most {MAX_URL_CHARS} characters"),
        ));
    }
    let url = url::Url::parse(raw)
        .map_err(|e| DomainError::invalid(field, format!("is not an absolute URL ({e})")))?;
    let https = match url.scheme() {
        "https" => true,
        "http" if policy.allow_insecure => false,
        "http" => {
            return Err(DomainError::invalid(
                field,
                "must use https:// (plain http is not allowed by this server)",
            ));
        }
        _ => return Err(DomainError::invalid(field, "must be an https:// URL")),
    };
    if !url.username().is_empty() || url.password().is_some() {
        return Err(DomainError::invalid(
            field,
            "must not contain credentials; the signature authenticates the sender",
        ));
    }
    if url.fragment().is_some() {
        return Err(DomainError::invalid(field, "must not contain a fragment"));
    }
    let host = match url.host() {
        Some(url::Host::Domain(name)) => name.to_owned(),
        Some(url::Host::Ipv4(ip)) => ip.to_string(),
        Some(url::Host::Ipv6(ip)) => ip.to_string(),
        None => return Err(DomainError::invalid(field, "must name a host")),
    };
    if let Ok(ip) = host.parse::<IpAddr>() {
        check_address(field, ip, policy)?;
    }
    let port = url
        .port_or_known_default()
        .ok_or_else(|| DomainError::invalid(field, "must name a port"))?;
    Ok(WebhookUrl {
        url,
        host,
        port,
        https,
    })
}

/// Refuses an address a webhook must not reach: loopback, link-local, private, shared,
/// multicast, documentation and other non-public ranges, unless the policy allows them.
pub fn check_address(field: &str, ip: IpAddr, policy: TargetPolicy) -> Result<(), DomainError> {
    if policy.allow_insecure || is_public(ip) {
        Ok(())
    } else {
        Err(DomainError::invalid(
            field,
            format!("reaches the non-public address {ip}; webhooks may only call public addresses"),
        ))
    }
}

/// Whether `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        // Shared address space (carrier-grade NAT).
        || (a == 100 && (64..128).contains(&b))
        // IETF protocol assignments.
        || (a == 192 && b == 0 && c == 0)
        // Benchmarking.
        || (a == 198 && (b == 18 || b == 19))
        // Reserved, class E.
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7.
        || (first & 0xfe00) == 0xfc00
        // Link-local fe80::/10.
        || (first & 0xffc0) == 0xfe80
        // Documentation 2001:db8::/32.
        || (first == 0x2001 && ip.segments()[1] == 0x0db8)
        // NAT64 and IPv4-compatible forms could reach private IPv4 space.
        || first == 0x0064
        || (first == 0 && ip.segments()[1..6].iter().all(|s| *s == 0)))
}

/// A trimmed description of at most 200 characters; empty is allowed.
pub fn parse_description(field: &str, raw: &str) -> Result<String, DomainError> {
    if raw.trim().is_empty() {
        return Ok(String::new());
    }
    parse_display_text(field, raw, MAX_DESCRIPTION_CHARS)
}

/// Which events a webhook receives: `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilter {
    pub account_id: Option<AccountId>,
    /// Empty: every kind.
    pub kinds: Vec<ChangeKind>,
}

impl EventFilter {
    /// A kind unknown to this version (a newer one wrote it) matches only a filter without
    /// kinds.
    pub fn matches(&self, account_id: &AccountId, kind: &EventKind) -> bool {
        self.account_id.as_ref().is_none_or(|a| a == account_id)
            && (self.kinds.is_empty() || kind.known().is_some_and(|k| self.kinds.contains(&k)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: TargetPolicy = TargetPolicy {
        allow_insecure: false,
    };
    const LAX: TargetPolicy = TargetPolicy {
        allow_insecure: true,
    };

    #[test]
    fn only_https_public_urls_pass_by_default() {
        let ok = parse_webhook_url("url", "https://hooks.example.com/in?x=1", STRICT).unwrap();
        assert_eq!(ok.host, "hooks.example.com");
        assert_eq!(ok.port, 443);
        assert_eq!(ok.path_and_query(), "/in?x=1");
        for bad in [
            "",
            "hooks.example.com/in",
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "https://hooks.example.com/#frag",
            "https://127.0.0.1/",
            "https://10.1.2.3/",
            "https://192.168.0.1:8443/",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[::ffff:127.0.0.1]/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
        ] {
            assert!(parse_webhook_url("url", bad, STRICT).is_err(), "{bad}");
        }
        assert!(
            parse_webhook_url(
                "url",
                &format!("https://a.example/{}", "x".repeat(2048)),
                STRICT
            )
            .is_err()
        );
    }

    #[test]
    fn the_insecure_policy_allows_http_and_private_targets() {
        let local = parse_webhook_url("url", "http://127.0.0.1:8080/hook", LAX).unwrap();
        assert!(!local.https);
        assert_eq!(local.port, 8080);
        assert!(parse_webhook_url("url", "ftp://127.0.0.1/", LAX).is_err());
    }

    #[test]
    fn public_addresses_are_recognised() {
        assert!(is_public("93.184.216.34".parse().unwrap()));
        assert!(is_public("2606:4700::1111".parse().unwrap()));
        assert!(!is_public("172.16.5.4".parse().unwrap()));
        assert!(!is_public("::".parse().unwrap()));
    }

    #[test]
    fn filters_match_account_and_kinds() {
        let (a, b) = (
            AccountId::from_stored("a".into()),
            AccountId::from_stored("b".into()),
        );
        let all = EventFilter::default();
        assert!(all.matches(&a, &ChangeKind::UserDeleted.into()));
        let some = EventFilter {
            account_id: Some(a.clone()),
            kinds: vec![ChangeKind::PhoneNumberAssigned],
        };
        assert!(some.matches(&a, &ChangeKind::PhoneNumberAssigned.into()));
        assert!(!some.matches(&b, &ChangeKind::PhoneNumberAssigned.into()));
        assert!(!some.matches(&a, &ChangeKind::UserDeleted.into()));
        // A kind of a newer version: only a filter without kinds takes it.
        let newer = EventKind::Unknown {
            code: 99,
            name: "SOMETHING_NEWER".into(),
        };
        assert!(all.matches(&a, &newer));
        assert!(!some.matches(&a, &newer));
    }
}
