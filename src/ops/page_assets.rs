//! The status page's files, carried gzipped (build.rs compresses them: 35 kB of text in
//! about 10 kB) and sent as they are: every browser takes gzip, and a client that sends no
//! `Accept-Encoding` takes any coding (RFC 9110 §12.5.3). One that refuses gzip gets 406;
//! inflating here would cost the binary more code than the compression saves.

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
    /// The file for a request with `headers`: gzipped, or 406 if the client refuses gzip.
    pub fn respond(&self, headers: &HeaderMap) -> Response {
        if !accepts_gzip(headers) {
            return (
                StatusCode::NOT_ACCEPTABLE,
                "the status page is sent gzip-encoded: ask with Accept-Encoding: gzip (curl --compressed)\n",
            )
                .into_response();
        }
        let headers = [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(self.content_type),
            ),
            (header::CONTENT_ENCODING, HeaderValue::from_static("gzip")),
        ];
        (headers, self.gzipped).into_response()
    }
}

/// Whether `Accept-Encoding` allows gzip (RFC 9110 §12.5.3): absent, or `gzip` or `*`
/// listed without `q=0`.
fn accepts_gzip(headers: &HeaderMap) -> bool {
    let mut values = headers.get_all(header::ACCEPT_ENCODING).iter().peekable();
    if values.peek().is_none() {
        return true;
    }
    values
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
        assert!(accepts_gzip(&HeaderMap::new()), "no header: any coding");
    }

    #[test]
    fn each_file_inflates_to_its_source() {
        use std::io::Read;
        for (asset, source) in [
            (INDEX_HTML, include_str!("page/index.html")),
            (STATUS_JS, include_str!("page/status.js")),
            (I18N_JS, include_str!("page/i18n.js")),
        ] {
            let mut text = String::new();
            let inflated = flate2::read::GzDecoder::new(asset.gzipped).read_to_string(&mut text);
            assert!(inflated.is_ok(), "{inflated:?}");
            assert_eq!(text, source);
            assert!(asset.gzipped.len() * 2 < source.len(), "compressed");
        }
    }
}
