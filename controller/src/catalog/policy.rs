//! The download policy from the config's `models` section: a global switch and an allowlist
//! of hosts, where a name also allows its subdomains (`hf.co` allows `cdn-lfs.hf.co`, not
//! `evilhf.co`). Every URL a fetch touches — the first and each redirect — passes
//! [`Policy::check_url`]. Plain `http://` is only for loopback hosts (tests).

use llorch_manifests::config::ModelsConfig;
use llorch_manifests::model::LOOPBACK_HOSTS;
use reqwest::Url;

use super::FetchError;

/// What may be downloaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    downloads: bool,
    allow_hosts: Vec<String>,
    max_bytes: u64,
}

impl Policy {
    /// The policy a config declares.
    pub fn from_config(config: &ModelsConfig) -> Policy {
        Policy {
            downloads: config.downloads,
            allow_hosts: config.allow_hosts.iter().map(|h| normalize(h)).collect(),
            max_bytes: config.max_download_bytes,
        }
    }

    /// The largest download allowed (`models.maxDownloadBytes`).
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// True when downloads are on.
    pub fn downloads(&self) -> bool {
        self.downloads
    }

    /// True when `host` is allowlisted itself or is a subdomain of an allowlisted name.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = normalize(host);
        self.allow_hosts.iter().any(|allowed| {
            !allowed.is_empty()
                && (host == *allowed
                    || host
                        .strip_suffix(allowed.as_str())
                        .is_some_and(|prefix| prefix.ends_with('.')))
        })
    }

    /// Refuses `url` unless downloads are on, it is https (or http on a loopback host) and its
    /// host is allowlisted. `first` is the URL the reference named (for the messages).
    pub fn check_url(&self, url: &Url, first: &str) -> Result<(), FetchError> {
        if !self.downloads {
            return Err(FetchError::DownloadsDisabled {
                url: first.to_string(),
                file: suggested_file(first),
            });
        }
        let host = url.host_str().unwrap_or_default();
        let shown = display_url(url);
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(host) => {}
            "http" => {
                return Err(FetchError::BadUrl {
                    url: shown,
                    why: "plain http:// is only allowed for loopback hosts; the server (or a redirect) must use https"
                        .into(),
                });
            }
            other => {
                return Err(FetchError::BadUrl {
                    url: shown,
                    why: format!("scheme `{other}` cannot be fetched; use https"),
                });
            }
        }
        if host.is_empty() {
            return Err(FetchError::BadUrl {
                url: shown,
                why: "no host".into(),
            });
        }
        if !self.host_allowed(host) {
            return Err(FetchError::HostNotAllowed {
                host: normalize(host),
                allowed: if self.allow_hosts.is_empty() {
                    "empty".into()
                } else {
                    self.allow_hosts.join(", ")
                },
                url: display_url_str(first),
            });
        }
        Ok(())
    }
}

fn normalize(host: &str) -> String {
    host.trim().trim_end_matches('.').to_ascii_lowercase()
}

/// True for the loopback host names and addresses plain http is allowed to.
pub fn is_loopback(host: &str) -> bool {
    LOOPBACK_HOSTS.iter().any(|h| h.eq_ignore_ascii_case(host))
        || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `url` without user info, query or fragment: safe for logs, events and status.
pub fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// [`display_url`] of a string, or the string up to its first `?` when it does not parse.
/// Model references that are not URLs (`hf:org/repo`, `file:/m.gguf`) come back unchanged.
pub fn display_url_str(url: &str) -> String {
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return url.to_string();
    }
    match Url::parse(url) {
        Ok(u) => display_url(&u),
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

/// The last path segment of `url`, for the "fetch it yourself" advice.
fn suggested_file(url: &str) -> String {
    Url::parse(url)
        .ok()
        .and_then(|u| u.path_segments().and_then(|mut s| s.next_back().map(str::to_string)))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "model.gguf".into())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use llorch_manifests::Reason;

    use super::*;

    fn policy(downloads: bool, hosts: &[&str]) -> Policy {
        Policy::from_config(&ModelsConfig {
            cache_dir: None,
            downloads,
            allow_hosts: hosts.iter().map(|h| h.to_string()).collect(),
            ..ModelsConfig::default()
        })
    }

    fn check(p: &Policy, url: &str) -> Result<(), FetchError> {
        p.check_url(&Url::parse(url).unwrap(), url)
    }

    #[test]
    fn a_name_allows_itself_and_its_subdomains_only() {
        let p = policy(true, &["hf.co", "HuggingFace.co."]);
        assert!(p.host_allowed("hf.co"));
        assert!(p.host_allowed("cdn-lfs.hf.co"));
        assert!(p.host_allowed("cas-bridge.xethub.hf.co"));
        assert!(p.host_allowed("huggingface.co"));
        assert!(p.host_allowed("CDN-LFS.huggingface.co"));
        assert!(!p.host_allowed("evilhf.co"));
        assert!(!p.host_allowed("hf.co.evil.com"));
        assert!(!p.host_allowed("co"));
        assert!(!policy(true, &[""]).host_allowed("example.com"));
    }

    #[test]
    fn refusals_name_the_setting_and_what_to_do() {
        let off = policy(false, &["example.com"]);
        let e = check(&off, "https://example.com/m/tiny.gguf").unwrap_err();
        assert_eq!(e.reason(), Reason::DownloadsDisabled);
        let text = e.to_string();
        assert!(text.contains("models.downloads: false"), "{text}");
        assert!(
            text.contains("curl -L -o tiny.gguf https://example.com/m/tiny.gguf"),
            "{text}"
        );
        assert!(text.contains("ref: file:tiny.gguf"), "{text}");

        let p = policy(true, &["hf.co"]);
        let e = check(&p, "https://example.com/x.gguf").unwrap_err();
        assert_eq!(e.reason(), Reason::HostNotAllowed);
        let text = e.to_string();
        assert!(
            text.contains("host `example.com` is not in `models.allowHosts` (hf.co); add it"),
            "{text}"
        );
    }

    #[test]
    fn plain_http_only_reaches_loopback_and_other_schemes_never() {
        let p = policy(true, &["127.0.0.1", "localhost", "example.com"]);
        assert!(check(&p, "http://127.0.0.1:9/x").is_ok());
        assert!(check(&p, "http://localhost:9/x").is_ok());
        assert_eq!(
            check(&p, "http://example.com/x").unwrap_err().reason(),
            Reason::InvalidReference
        );
        assert_eq!(
            check(&p, "ftp://example.com/x").unwrap_err().reason(),
            Reason::InvalidReference
        );
        assert!(check(&p, "https://example.com/x").is_ok());
    }

    #[test]
    fn shown_urls_carry_no_credentials_or_query() {
        assert_eq!(
            display_url_str("https://user:pw@example.com/a.gguf?token=abc#f"),
            "https://example.com/a.gguf"
        );
    }
}
