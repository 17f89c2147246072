//! Who may reach the API from a browser: the `Host` and `Origin` checks that run before
//! anything else (auth included), so that a web page the user happens to open cannot drive
//! the daemon.
//!
//! - **`Host`** (DNS rebinding: a hostile name resolved to 127.0.0.1 makes the browser treat
//!   the API as that site's own): an IP address, `localhost` or `*.localhost` (browsers resolve
//!   those to loopback themselves), or a name listed in `allowedHosts`. A request without
//!   `Host` (HTTP/1.0) is not from a browser and passes.
//! - **`Origin`** (cross-site requests): none (not a browser, or a top-level navigation), the
//!   API's own origin (`http://` + its `Host`), or one listed in `cors.allowedOrigins`.
//! - **`Sec-Fetch-Site: cross-site|same-site`** without an allowed `Origin`: a browser's
//!   no-cors request (an `<img>` or `<script>` pointing at the API) is refused too.

use std::net::IpAddr;

/// Why a request was refused at the door. Messages name the value and the setting that
/// would allow it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The `Host` header is a name this daemon does not answer to.
    #[error(
        "host `{0}` is not one this API answers to (a defence against DNS rebinding); use an IP address or \
         localhost, or add the name to `allowedHosts` in config.yaml"
    )]
    Host(String),
    /// A page on another origin sent the request.
    #[error(
        "requests from pages on origin `{0}` are refused (cross-site); to let a web app call the API, add its \
         origin to `cors.allowedOrigins` in config.yaml"
    )]
    Origin(String),
    /// A browser's cross-site request without an `Origin`.
    #[error(
        "a cross-site browser request (`Sec-Fetch-Site: {0}`) is refused; call the API from the page with fetch() and an allowed origin"
    )]
    CrossSite(String),
}

/// A setting the door cannot work with.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScreenConfigError {
    /// An origin that is not `scheme://host[:port]`.
    #[error(
        "field `cors.allowedOrigins`: `{0}` is not an origin; write it as the browser sends it, `scheme://host[:port]` \
         (e.g. `http://localhost:3000`), without a path; `*` is not accepted"
    )]
    Origin(String),
    /// A host name that cannot be one.
    #[error(
        "field `allowedHosts`: `{0}` is not a host name (write the name alone, e.g. `gpu-box.lan`, without a port)"
    )]
    Host(String),
}

/// The `Host` and `Origin` policy.
#[derive(Clone, Debug, Default)]
pub struct Screen {
    /// Lower-case names.
    hosts: Vec<String>,
    /// Lower-case origins, as browsers send them.
    origins: Vec<String>,
}

impl Screen {
    /// The policy for `allowedHosts` and `cors.allowedOrigins`.
    pub fn new(hosts: &[String], origins: &[String]) -> Result<Self, ScreenConfigError> {
        let hosts = hosts
            .iter()
            .map(|h| {
                let h = h.to_ascii_lowercase();
                let valid = !h.is_empty()
                    && h.len() <= 253
                    && h.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
                if valid { Ok(h) } else { Err(ScreenConfigError::Host(h)) }
            })
            .collect::<Result<_, _>>()?;
        let origins = origins
            .iter()
            .map(|o| {
                let o = o.trim_end_matches('/').to_ascii_lowercase();
                if is_origin(&o) {
                    Ok(o)
                } else {
                    Err(ScreenConfigError::Origin(o))
                }
            })
            .collect::<Result<_, _>>()?;
        Ok(Self { hosts, origins })
    }

    /// The configured origins, for the CORS layer.
    pub fn allowed_origins(&self) -> &[String] {
        &self.origins
    }

    /// Whether `origin` is one of the configured ones.
    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.origins.iter().any(|o| o.eq_ignore_ascii_case(origin))
    }

    /// Checks a request's `Host`, `Origin` and `Sec-Fetch-Site` values.
    pub fn check(&self, host: Option<&str>, origin: Option<&str>, fetch_site: Option<&str>) -> Result<(), Refusal> {
        if let Some(host) = host
            && !self.host_allowed(host)
        {
            return Err(Refusal::Host(shown(host)));
        }
        match origin {
            Some(origin) if self.origin_allowed(origin) || same_origin(origin, host) => Ok(()),
            Some(origin) => Err(Refusal::Origin(shown(origin))),
            None => match fetch_site {
                Some(site @ ("cross-site" | "same-site")) => Err(Refusal::CrossSite(site.to_string())),
                _ => Ok(()),
            },
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        let name = host_name(host).to_ascii_lowercase();
        let ip = name.trim_start_matches('[').trim_end_matches(']');
        ip.parse::<IpAddr>().is_ok()
            || name == "localhost"
            || name.ends_with(".localhost")
            || self.hosts.contains(&name)
    }
}

/// `Host` without its port.
fn host_name(host: &str) -> &str {
    if host.starts_with('[') {
        // [v6]:port
        return host.split_once(']').map_or(host, |(v6, _)| &host[..v6.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

/// The page's origin is the API's own: `http(s)://` + the `Host` it was sent to.
fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host else { return false };
    ["http://", "https://"].iter().any(|scheme| {
        origin.len() == scheme.len() + host.len()
            && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
            && origin[scheme.len()..].eq_ignore_ascii_case(host)
    })
}

/// `scheme://host[:port]`, nothing more.
fn is_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', '*', ' '])
}

/// A header value as it may appear in a message: bounded, printable.
fn shown(value: &str) -> String {
    value
        .chars()
        .take(100)
        .map(|c| if c.is_ascii_graphic() { c } else { '?' })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn screen() -> Screen {
        Screen::new(&["gpu-box.lan".into()], &["http://localhost:3000".into()]).unwrap()
    }

    #[test]
    fn hosts_ip_addresses_localhost_and_listed_names_pass() {
        let s = screen();
        for host in [
            "127.0.0.1:8080",
            "127.0.0.1",
            "[::1]:8080",
            "192.168.1.20:8080",
            "localhost:8080",
            "LOCALHOST",
            "app.localhost:8080",
            "gpu-box.lan:8080",
            "GPU-BOX.lan",
        ] {
            assert_eq!(s.check(Some(host), None, None), Ok(()), "{host}");
        }
        assert_eq!(s.check(None, None, None), Ok(()), "HTTP/1.0 without Host");
    }

    #[test]
    fn a_rebinding_host_is_refused_by_name() {
        let s = screen();
        for host in [
            "evil.example:8080",
            "evil.example",
            "localhost.evil.example",
            "gpu-box.lan.evil.example",
        ] {
            let e = s.check(Some(host), None, None).unwrap_err();
            assert!(matches!(e, Refusal::Host(_)), "{host}: {e:?}");
            assert!(e.to_string().contains("allowedHosts"), "{e}");
        }
    }

    #[test]
    fn origins_own_and_allowed_pass_others_are_refused() {
        let s = screen();
        let host = Some("127.0.0.1:8080");
        assert_eq!(
            s.check(host, Some("http://127.0.0.1:8080"), Some("same-origin")),
            Ok(())
        );
        assert_eq!(s.check(host, Some("http://localhost:3000"), Some("same-site")), Ok(()));
        for origin in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:9999",
            "http://localhost:3001",
        ] {
            let e = s.check(host, Some(origin), Some("cross-site")).unwrap_err();
            assert_eq!(e, Refusal::Origin(origin.into()));
        }
    }

    #[test]
    fn cross_site_no_cors_requests_are_refused() {
        let s = screen();
        let host = Some("127.0.0.1:8080");
        assert!(matches!(
            s.check(host, None, Some("cross-site")),
            Err(Refusal::CrossSite(_))
        ));
        assert!(matches!(
            s.check(host, None, Some("same-site")),
            Err(Refusal::CrossSite(_))
        ));
        assert_eq!(s.check(host, None, Some("none")), Ok(()), "typed into the address bar");
        assert_eq!(s.check(host, None, Some("same-origin")), Ok(()));
    }

    #[test]
    fn bad_settings_are_named() {
        for origin in ["*", "localhost:3000", "http://localhost:3000/app", "http://"] {
            let e = Screen::new(&[], &[origin.into()]).unwrap_err();
            assert!(e.to_string().contains("cors.allowedOrigins"), "{origin}: {e}");
        }
        assert!(
            Screen::new(&[], &["http://localhost:3000/".into()]).is_ok(),
            "a trailing slash is dropped"
        );
        assert!(Screen::new(&["gpu-box.lan:8080".into()], &[]).is_err());
    }

    #[test]
    fn hostile_values_are_bounded_in_messages() {
        let long = format!("{}\u{7}", "a".repeat(500));
        let e = screen().check(Some(&long), None, None).unwrap_err().to_string();
        assert!(e.len() < 400 && !e.contains('\u{7}'), "{e}");
    }
}
