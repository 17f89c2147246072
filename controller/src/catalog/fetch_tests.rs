//! The fetcher against a real loopback HTTP server: resume after a cut, a server that ignores
//! `Range`, digest mismatch cleanup, redirects through the policy, hub resolution and the token
//! going only where it may.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use llorch_manifests::Reason;
use llorch_manifests::config::ModelsConfig;
use tokio::sync::Notify;

use super::*;
use crate::catalog::http::HttpClient;
use crate::catalog::testserver::{Route, Server};

fn body() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 251) as u8).collect()
}

fn hex_of(b: &[u8]) -> String {
    cache::hex(&Sha256::digest(b))
}

fn fetcher(dir: &Path, hosts: &[&str], token: Option<&str>, hub: &str) -> Fetcher {
    let policy = Policy::from_config(&ModelsConfig {
        cache_dir: None,
        downloads: true,
        allow_hosts: hosts.iter().map(|h| h.to_string()).collect(),
        ..ModelsConfig::default()
    });
    Fetcher::new(Cache::new(dir), policy, token.and_then(Secret::new), hub).unwrap()
}

fn capped_fetcher(dir: &Path, max_download_bytes: u64) -> Fetcher {
    let policy = Policy::from_config(&ModelsConfig {
        allow_hosts: vec!["127.0.0.1".into()],
        max_download_bytes,
        ..ModelsConfig::default()
    });
    Fetcher::new(Cache::new(dir), policy, None, hf::HUB).unwrap()
}

#[tokio::test]
async fn downloads_over_the_limit_are_refused_with_or_without_a_content_length() {
    let server = Server::start().await;
    let b = body();
    server.route("/sized.gguf", Route::Body(b.clone()));
    server.route("/unsized.gguf", Route::BodyNoLength(b.clone()));
    let dir = tempfile::tempdir().unwrap();
    let f = capped_fetcher(dir.path(), 1000);
    for (path, says) in [("sized", "(Content-Length)"), ("unsized", "more than")] {
        let url = Url::parse(&format!("{}/{path}.gguf", server.base)).unwrap();
        let e = f.download(&url, None, &progress()).await.unwrap_err();
        assert!(matches!(e, FetchError::TooLarge { limit: 1000, .. }), "{path}: {e:?}");
        let text = e.to_string();
        assert!(
            text.contains(says) && text.contains("models.maxDownloadBytes"),
            "{text}"
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path().join("partial")).unwrap().count(),
        0,
        "no partial file kept"
    );
    // Under the limit, the body without a length arrives whole.
    let f = capped_fetcher(dir.path(), 1 << 30);
    let url = Url::parse(&format!("{}/unsized.gguf", server.base)).unwrap();
    let got = f.download(&url, None, &progress()).await.unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), b);
}

fn progress() -> Progress {
    Progress::new(Arc::new(Notify::new()))
}

#[tokio::test]
async fn a_cut_download_resumes_with_a_range_request_and_lands_verified() {
    let server = Server::start().await;
    let b = body();
    server.route("/m.gguf", Route::Body(b.clone()));
    server.cut_next();
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), &["127.0.0.1"], None, hf::HUB);
    let url = Url::parse(&format!("{}/m.gguf", server.base)).unwrap();
    let p = progress();
    let got = f.download(&url, Some(&hex_of(&b)), &p).await.unwrap();
    assert_eq!(got.hex, hex_of(&b));
    assert_eq!(std::fs::read(&got.path).unwrap(), b);
    assert_eq!(got.path, f.cache().blob(&got.hex));
    assert_eq!(p.get(), (b.len() as u64, Some(b.len() as u64)));
    let seen = server.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(!seen[0].headers.contains_key("range"));
    assert_eq!(seen[1].headers["range"], format!("bytes={}-", b.len() / 2));
    assert_eq!(std::fs::read_dir(dir.path().join("partial")).unwrap().count(), 0);
}

#[tokio::test]
async fn a_server_that_ignores_range_restarts_the_file_cleanly() {
    let server = Server::start().await;
    let b = body();
    server.route("/m.gguf", Route::BodyNoRange(b.clone()));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), &["127.0.0.1"], None, hf::HUB);
    f.cache().ensure_dirs().unwrap();
    // A stale partial whose bytes are not the file's prefix.
    std::fs::write(f.cache().partial(&hex_of(&b)), vec![0xAAu8; 5000]).unwrap();
    let url = Url::parse(&format!("{}/m.gguf", server.base)).unwrap();
    let got = f.download(&url, Some(&hex_of(&b)), &progress()).await.unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), b);
    assert_eq!(server.seen()[0].headers["range"], "bytes=5000-");
}

#[tokio::test]
async fn a_wrong_digest_names_both_and_leaves_no_partial_file() {
    let server = Server::start().await;
    server.route("/m.gguf", Route::Body(body()));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), &["127.0.0.1"], None, hf::HUB);
    let url = Url::parse(&format!("{}/m.gguf", server.base)).unwrap();
    let wrong = "0".repeat(64);
    let e = f.download(&url, Some(&wrong), &progress()).await.unwrap_err();
    assert_eq!(e.reason(), Reason::DigestMismatch);
    let text = e.to_string();
    assert!(text.contains(&format!("sha256:{wrong}")), "{text}");
    assert!(text.contains(&format!("sha256:{}", hex_of(&body()))), "{text}");
    assert_eq!(std::fs::read_dir(dir.path().join("partial")).unwrap().count(), 0);
    assert_eq!(std::fs::read_dir(dir.path().join("blobs/sha256")).unwrap().count(), 0);
}

#[tokio::test]
async fn redirects_are_followed_only_to_allowed_hosts() {
    let server = Server::start().await;
    let port = server.base.rsplit(':').next().unwrap().to_string();
    server.route("/m.gguf", Route::Body(b"abc".to_vec()));
    server.route("/same", Route::Redirect("/m.gguf".into()));
    server.route("/other", Route::Redirect(format!("http://localhost:{port}/m.gguf")));
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), &["127.0.0.1"], None, hf::HUB);
    let same = Url::parse(&format!("{}/same", server.base)).unwrap();
    let got = f.download(&same, None, &progress()).await.unwrap();
    assert_eq!(std::fs::read(got.path).unwrap(), b"abc");
    let paths: Vec<String> = server.seen().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/same", "/m.gguf"]);

    let other = Url::parse(&format!("{}/other", server.base)).unwrap();
    let e = f.download(&other, None, &progress()).await.unwrap_err();
    assert_eq!(e.reason(), Reason::HostNotAllowed, "{e}");
    assert!(e.to_string().contains("host `localhost`"), "{e}");
    assert!(
        !server
            .seen()
            .iter()
            .any(|s| s.headers.get("host").is_some_and(|h| h.starts_with("localhost"))),
        "the refused host was never asked"
    );
}

#[tokio::test]
async fn hf_repo_resolution_lists_the_files_and_picks_the_only_gguf() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let f = fetcher(dir.path(), &["127.0.0.1"], None, &server.base);
    let json = br#"{"siblings":[{"rfilename":"README.md"},{"rfilename":"q4.gguf"}]}"#.to_vec();
    server.route("/api/models/org/repo", Route::Body(json));
    let url = f.resolve_hf("org/repo", None).await.unwrap();
    assert_eq!(url.as_str(), format!("{}/org/repo/resolve/main/q4.gguf", server.base));
    server.route("/api/models/org/none", Route::Status(404));
    let e = f.resolve_hf("org/none", None).await.unwrap_err();
    assert!(e.to_string().contains("HTTP 404"), "{e}");
}

#[tokio::test]
async fn the_token_goes_to_hub_hosts_only_and_never_appears_in_errors() {
    let server = Server::start().await;
    server.route("/private", Route::Status(403));
    let dir = tempfile::tempdir().unwrap();
    let token = "hf_SECRETSECRET";
    // A loopback host is not the hub's: no Authorization header, and the error names the
    // problem without the token.
    let f = fetcher(dir.path(), &["127.0.0.1"], Some(token), &server.base);
    let url = Url::parse(&format!("{}/private", server.base)).unwrap();
    let e = f.download(&url, None, &progress()).await.unwrap_err();
    assert!(!server.seen()[0].headers.contains_key("authorization"));
    let text = format!("{e} {e:?} {f:?}");
    assert!(!text.contains(token), "{text}");
    assert!(text.contains("HTTP 403"), "{text}");
}

#[tokio::test]
async fn https_downloads_verify_the_servers_certificate_with_the_ring_provider() {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let server = Server::start_tls().await;
    server.route("/m.gguf", Route::Body(body()));
    let url = Url::parse(&format!("{}/m.gguf", server.base)).unwrap();
    let dir = tempfile::tempdir().unwrap();

    // Trusting the server's certificate: the download goes through TLS and lands verified.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(crate::catalog::testserver::CERT_PEM).unwrap())
        .unwrap();
    let trusting = fetcher(dir.path(), &["localhost"], None, hf::HUB).with_http(HttpClient::with_tls(
        crate::catalog::tls::client_config_with(roots).unwrap(),
    ));
    let got = trusting
        .download(&url, Some(&hex_of(&body())), &progress())
        .await
        .unwrap();
    assert_eq!(std::fs::read(&got.path).unwrap(), body());

    // The system's roots do not know it: refused, with the reason, and nothing was served.
    let asked = server.seen().len();
    let other = tempfile::tempdir().unwrap();
    let e = fetcher(other.path(), &["localhost"], None, hf::HUB)
        .download(&url, None, &progress())
        .await
        .unwrap_err();
    assert_eq!(e.reason(), Reason::FetchFailed);
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    assert_eq!(server.seen().len(), asked, "no request crossed an untrusted connection");
}
