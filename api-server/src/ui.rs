//! The status page's static files (`GET /ui`, `/ui/{file}`): HTML, CSS and JavaScript modules
//! from `api-server/ui/`, compiled into the binary (no Node, no files read at run time).
//!
//! The files hold no data: the page fetches everything from the authenticated `/v2` routes
//! with the token the user types in. So the front door serves them without a token (like
//! `/healthz`), but only after its `Host`/`Origin` screen. Every answer carries a strict
//! Content-Security-Policy (only this origin's own scripts, styles and connections; no inline
//! code; no framing), `nosniff`, and an ETag so that a reload costs a 304.

use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// The policy every file is served with: scripts, styles and connections from this origin
/// only, nothing inline, no plugins, no `<base>`, no form posts, never inside a frame.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

/// Whether `path` is one of the page's static files (served without a token).
pub fn is_static(path: &str) -> bool {
    path == "/ui" || path.starts_with("/ui/")
}

/// One file of the page.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static [u8],
    etag: u64,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            body: include_bytes!(concat!("../ui/", $name)),
            etag: fnv1a(include_bytes!(concat!("../ui/", $name))),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("api.js", JS),
    asset!("dom.js", JS),
    asset!("views.js", JS),
    asset!("jobs.js", JS),
    asset!("playground.js", JS),
];

/// FNV-1a over the file, at compile time: an ETag that changes with the file.
const fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < bytes.len() {
        hash ^= bytes[i] as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
        i += 1;
    }
    hash
}

/// `GET /ui` and `/ui/`: the page.
pub(crate) async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

/// `GET /ui/{file}`.
pub(crate) async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    serve(&file, &headers)
}

fn serve(name: &str, request: &HeaderMap) -> Response {
    let Some(asset) = ASSETS.iter().find(|a| a.name == name) else {
        let known: Vec<&str> = ASSETS.iter().map(|a| a.name).collect();
        return ApiError::not_found(format!(
            "the status page has no file `{}` (it has {}); open /ui",
            name.chars().take(100).collect::<String>(),
            known.join(", ")
        ))
        .into_response();
    };
    let etag = format!("\"{:016x}\"", asset.etag);
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, asset.content_type)], asset.body).into_response()
    };
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    // Revalidate every time (the ETag makes it a 304): a new binary serves new files at once.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(
        header::HeaderName::from_static("cross-origin-resource-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_is_named_once_and_no_file_is_empty() {
        for (i, a) in ASSETS.iter().enumerate() {
            assert!(!a.body.is_empty(), "{}", a.name);
            assert!(ASSETS[i + 1..].iter().all(|b| b.name != a.name), "{}", a.name);
        }
    }

    #[test]
    fn the_page_holds_no_inline_script_or_style() {
        let html = std::str::from_utf8(ASSETS[0].body).unwrap_or_default();
        assert!(!html.contains("<style"), "inline styles break the CSP");
        assert!(!html.contains(" style="), "inline style attributes break the CSP");
        for script in html.split("<script").skip(1) {
            assert!(script.contains("src=\"/ui/"), "only external scripts: {script}");
        }
        assert!(!html.contains("onclick") && !html.contains("javascript:"));
    }

    #[test]
    fn only_the_ui_paths_are_static() {
        assert!(is_static("/ui") && is_static("/ui/") && is_static("/ui/app.js"));
        assert!(!is_static("/uix") && !is_static("/v2/ui") && !is_static("/"));
    }
}
