//! The status page's files, carried gzipped (build.rs compresses them: 35 kB of text in
//! about 10 kB) and sent as they are to a client that takes gzip, as every browser does;
//! any other client gets them inflated.

use std::io::Read;

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub struct PageAsset {
    gzipped: &'static [u8],
    content_type: &'static str,
}

pub const INDEX_HTML: PageAsset = PageAsset {
    gzipped: include_bytes!(concat!(env!("OUT_DIR"), "/index.html.gz")),
    content_type: "text/html; charset=utf-8",
};
pub const STATUS_JS: PageAsset = PageAsset {
    gzipped: include_bytes!(concat!(env!("OUT_DIR"), "/status.js.gz")),
    content_type: "text/javascript; charset=utf-8",
};
pub const I18N_JS: PageAsset = PageAsset {
    gzipped: include_bytes!(concat!(env!("OUT_DIR"), "/i18n.js.gz")),
    content_type: "text/javascript; charset=utf-8",
};

impl PageAsset {
    /// The file for a request with `headers`: gzipped if it accepts gzip, else inflated.
    pub fn respond(&self, headers: &HeaderMap) -> Response {
        let content_type = (
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type),
        );
        // caches keep the two encodings apart
        let vary = (header::VARY, HeaderValue::from_static("accept-encoding"));
        if accepts_gzip(headers) {
            let encoding = (header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
            return ([content_type, encoding, vary], self.gzipped).into_response();
        }
        match self.inflated() {
            Ok(text) => ([content_type, vary], text).into_response(),
            Err(e) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the page file built into cemsd cannot be inflated: {e}"),
            )
                .into_response(),
        }
    }

    fn inflated(&self) -> std::io::Result<Vec<u8>> {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(self.gzipped).read_to_end(&mut text)?;
        Ok(text)
    }
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3): `gzip` or `*` listed without
/// `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|coding| {
            let mut parts = coding.split(';').map(str::trim);
            let name = parts.next().unwrap_or_default();
            let refused = parts.any(|p| {
                p.strip_prefix("q=")
                    .and_then(|q| q.parse::<f64>().ok())
                    .is_some_and(|q| q == 0.0)
            });
            (name.eq_ignore_ascii_case("gzip") || name == "*") && !refused
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn asking(accept: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Ok(value) = HeaderValue::from_str(accept) {
            headers.insert(header::ACCEPT_ENCODING, value);
        }
        headers
    }

    #[test]
    fn gzip_is_sent_only_where_it_is_accepted() {
        assert!(accepts_gzip(&asking("gzip, deflate, br, zstd")));
        assert!(accepts_gzip(&asking("br;q=1.0, GZIP;q=0.5")));
        assert!(accepts_gzip(&asking("*")));
        assert!(!accepts_gzip(&asking("gzip;q=0, br")));
        assert!(!accepts_gzip(&asking("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }

    #[test]
    fn each_file_inflates_to_its_source() {
        for (asset, source) in [
            (INDEX_HTML, include_str!("page/index.html")),
            (STATUS_JS, include_str!("page/status.js")),
            (I18N_JS, include_str!("page/i18n.js")),
        ] {
            let text = asset.inflated().unwrap_or_default();
            assert_eq!(String::from_utf8_lossy(&text), source);
            assert!(asset.gzipped.len() * 2 < source.len(), "compressed");
        }
    }
}
