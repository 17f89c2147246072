//! `hf:` references → Hugging Face Hub URLs (revision `main`):
//! `hf:org/repo/path/file.gguf` → `<hub>/org/repo/resolve/main/path/file.gguf`, and
//! `hf:org/repo` → the repository's only `.gguf` file, found through
//! `<hub>/api/models/org/repo` (several or none is an error that lists them). Also which hosts
//! are the hub's, the only ones the token is sent to.

use reqwest::Url;

use super::FetchError;

/// The public hub.
pub const HUB: &str = "https://huggingface.co";

/// The hub's own domains; the token goes to these (and their subdomains) only.
pub const HUB_DOMAINS: [&str; 2] = ["huggingface.co", "hf.co"];

/// True when `host` is one of the hub's.
pub fn is_hub_host(host: &str) -> bool {
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    HUB_DOMAINS
        .iter()
        .any(|d| host == *d || host.strip_suffix(d).is_some_and(|p| p.ends_with('.')))
}

fn join(hub: &str, segments: &[&str]) -> Result<Url, FetchError> {
    let mut url = Url::parse(hub).map_err(|e| FetchError::BadUrl {
        url: hub.to_string(),
        why: e.to_string(),
    })?;
    {
        let mut path = url.path_segments_mut().map_err(|()| FetchError::BadUrl {
            url: hub.to_string(),
            why: "cannot be a base URL".into(),
        })?;
        path.pop_if_empty();
        for s in segments {
            for part in s.split('/') {
                path.push(part);
            }
        }
    }
    Ok(url)
}

/// The download URL of `file` in `repo` (`org/repo`).
pub fn file_url(hub: &str, repo: &str, file: &str) -> Result<Url, FetchError> {
    join(hub, &[repo, "resolve", "main", file])
}

/// The API URL that lists `repo`'s files.
pub fn api_url(hub: &str, repo: &str) -> Result<Url, FetchError> {
    join(hub, &["api", "models", repo])
}

/// The one `.gguf` file in the hub's answer for `repo` (`{"siblings":[{"rfilename":…}]}`).
pub fn only_gguf(repo: &str, body: &serde_json::Value) -> Result<String, FetchError> {
    let Some(siblings) = body.get("siblings").and_then(|s| s.as_array()) else {
        return Err(FetchError::HubRepo(format!(
            "the hub's answer for hf:{repo} lists no files (no `siblings`); name the file: `hf:{repo}/<file>.gguf`"
        )));
    };
    let ggufs: Vec<String> = siblings
        .iter()
        .filter_map(|s| s.get("rfilename").and_then(|f| f.as_str()))
        .filter(|f| f.to_ascii_lowercase().ends_with(".gguf"))
        .map(str::to_string)
        .collect();
    match ggufs.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(FetchError::HubRepo(format!(
            "hf:{repo} has no .gguf file; name the file to use: `hf:{repo}/<file>.gguf`"
        ))),
        many => Err(FetchError::HubRepo(format!(
            "hf:{repo} has {} .gguf files ({}); name one: `hf:{repo}/{}`",
            many.len(),
            many.join(", "),
            many[0]
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn hf_references_resolve_to_the_hubs_resolve_and_api_urls() {
        assert_eq!(
            file_url(HUB, "TheOrg/Some-Model-GGUF", "sub dir/m.Q4_K_M.gguf")
                .unwrap()
                .as_str(),
            "https://huggingface.co/TheOrg/Some-Model-GGUF/resolve/main/sub%20dir/m.Q4_K_M.gguf"
        );
        assert_eq!(
            api_url(HUB, "org/repo").unwrap().as_str(),
            "https://huggingface.co/api/models/org/repo"
        );
        assert_eq!(
            file_url("http://127.0.0.1:9/", "o/r", "x.gguf").unwrap().as_str(),
            "http://127.0.0.1:9/o/r/resolve/main/x.gguf"
        );
    }

    #[test]
    fn a_repository_must_hold_exactly_one_gguf_file() {
        let one = serde_json::json!({"siblings": [{"rfilename": "README.md"}, {"rfilename": "m.GGUF"}]});
        assert_eq!(only_gguf("o/r", &one).unwrap(), "m.GGUF");
        let two = serde_json::json!({"siblings": [{"rfilename": "a.gguf"}, {"rfilename": "b.gguf"}]});
        let e = only_gguf("o/r", &two).unwrap_err().to_string();
        assert!(
            e.contains("2 .gguf files (a.gguf, b.gguf)") && e.contains("hf:o/r/a.gguf"),
            "{e}"
        );
        let none = serde_json::json!({"siblings": []});
        assert!(only_gguf("o/r", &none).unwrap_err().to_string().contains("no .gguf"));
    }

    #[test]
    fn only_the_hubs_own_domains_get_the_token() {
        assert!(is_hub_host("huggingface.co"));
        assert!(is_hub_host("cdn-lfs.hf.co"));
        assert!(!is_hub_host("nothuggingface.co"));
        assert!(!is_hub_host("127.0.0.1"));
    }
}
