//! The enrollment link a station prints (and shows as a QR code) for a new
//! device, and the station's CA pin it can carry (ADR 0009):
//!
//! ```text
//! https://station.example.cn:8443/enroll?code=ABCD2345&ca=<SHA-256 of the CA certificate, hex>
//! ```
//!
//! The station's address is everything before `/enroll`, so a station behind a
//! reverse proxy under a path prefix works too. Parsing is pure; fetching and
//! checking the pinned certificate is the client's work.

use crate::error::{Error, Result};
use crate::hex;

/// Where the station serves its CA certificate (DER) for a pinned enrollment.
pub const CA_PATH: &str = "/v1/tls/ca";

/// A one-time enrollment code: 8 characters of this alphabet (no 0/O, 1/I).
pub const CODE_ALPHABET: &[u8] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
pub const CODE_LEN: usize = 8;

/// A parsed enrollment: the station, the code, and the CA pin if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollmentLink {
    /// The station's base URL, without a trailing slash.
    pub server_url: String,
    pub code: String,
    /// SHA-256 of the station CA's certificate (DER): the only CA the device
    /// will trust for this station.
    pub ca_sha256: Option<[u8; 32]>,
}

impl EnrollmentLink {
    /// A link from its parts (the station prints it; an app builds one from
    /// what the user typed). The code is upper-cased and checked.
    pub fn new(server_url: &str, code: &str, ca_sha256: Option<[u8; 32]>) -> Result<Self> {
        let url = url::Url::parse(server_url.trim())
            .map_err(|e| Error::invalid("server_url", e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
            return Err(Error::invalid(
                "server_url",
                "must be an http:// or https:// address",
            ));
        }
        if ca_sha256.is_some() && url.scheme() != "https" {
            return Err(Error::invalid(
                "ca",
                "a pinned station certificate needs an https:// address",
            ));
        }
        let code = check_code(code)?;
        let mut base = url;
        base.set_query(None);
        base.set_fragment(None);
        Ok(EnrollmentLink {
            server_url: base.as_str().trim_end_matches('/').to_string(),
            code,
            ca_sha256,
        })
    }

    /// Parses a scanned or pasted link (`…/enroll?code=…[&ca=…]`).
    pub fn parse(text: &str) -> Result<Self> {
        let url =
            url::Url::parse(text.trim()).map_err(|e| Error::invalid("link", e.to_string()))?;
        let path = url.path().trim_end_matches('/');
        let Some(prefix) = path.strip_suffix("/enroll") else {
            return Err(Error::invalid(
                "link",
                "not an enrollment link (…/enroll?code=…)",
            ));
        };
        let mut code = None;
        let mut ca = None;
        for (key, value) in url.query_pairs() {
            match key.as_ref() {
                "code" => code = Some(value.into_owned()),
                "ca" => ca = Some(parse_fingerprint(&value)?),
                _ => {}
            }
        }
        let code = code.ok_or_else(|| Error::invalid("link", "the link carries no code"))?;
        let mut base = url.clone();
        base.set_path(prefix);
        base.set_query(None);
        base.set_fragment(None);
        Self::new(base.as_str(), &code, ca)
    }

    /// The link as the station prints it and its QR code encodes.
    pub fn to_link(&self) -> String {
        let mut link = format!("{}/enroll?code={}", self.server_url, self.code);
        if let Some(pin) = &self.ca_sha256 {
            link.push_str("&ca=");
            link.push_str(&hex::encode(pin));
        }
        link
    }
}

/// A SHA-256 fingerprint in hex, with or without `:` separators (as
/// `openssl x509 -fingerprint -sha256` prints it), in either case.
pub fn parse_fingerprint(text: &str) -> Result<[u8; 32]> {
    let digits: String = text.chars().filter(|c| *c != ':').collect();
    hex::decode(&digits)
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| Error::invalid("ca", "not a SHA-256 fingerprint (64 hex digits)"))
}

fn check_code(code: &str) -> Result<String> {
    let code = code.trim().to_ascii_uppercase();
    if code.len() != CODE_LEN || !code.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return Err(Error::invalid(
            "code",
            format!("an enrollment code is {CODE_LEN} letters and digits"),
        ));
    }
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PIN: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    #[test]
    fn a_link_round_trips_with_and_without_its_pin() {
        let l = EnrollmentLink::parse(&format!(
            "https://mq.example.cn:8443/station/enroll?code=abcd2345&ca={PIN}"
        ))
        .unwrap();
        assert_eq!(l.server_url, "https://mq.example.cn:8443/station");
        assert_eq!(l.code, "ABCD2345");
        assert_eq!(hex::encode(&l.ca_sha256.unwrap()), PIN);
        assert_eq!(EnrollmentLink::parse(&l.to_link()).unwrap(), l);

        let plain = EnrollmentLink::parse("http://127.0.0.1:8080/enroll?code=ABCD2345").unwrap();
        assert_eq!(plain.server_url, "http://127.0.0.1:8080");
        assert_eq!(plain.ca_sha256, None);
        assert_eq!(
            plain.to_link(),
            "http://127.0.0.1:8080/enroll?code=ABCD2345"
        );
    }

    #[test]
    fn openssl_style_fingerprints_are_accepted() {
        let colons = PIN
            .as_bytes()
            .chunks(2)
            .map(|c| std::str::from_utf8(c).unwrap().to_ascii_uppercase())
            .collect::<Vec<_>>()
            .join(":");
        assert_eq!(hex::encode(&parse_fingerprint(&colons).unwrap()), PIN);
    }

    #[test]
    fn bad_links_name_what_is_wrong() {
        let field = |text: &str| match EnrollmentLink::parse(text) {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(field("not a link"), "link");
        assert_eq!(field("https://mq.example.cn/s/abc?code=ABCD2345"), "link");
        assert_eq!(field("https://mq.example.cn/enroll"), "link");
        assert_eq!(field("https://mq.example.cn/enroll?code=ABC"), "code");
        assert_eq!(field("https://mq.example.cn/enroll?code=ABCD234O"), "code");
        assert_eq!(
            field("https://mq.example.cn/enroll?code=ABCD2345&ca=12"),
            "ca"
        );
        assert_eq!(
            field(&format!(
                "http://mq.example.cn/enroll?code=ABCD2345&ca={PIN}"
            )),
            "ca"
        );
        assert_eq!(
            field("ftp://mq.example.cn/enroll?code=ABCD2345"),
            "server_url"
        );
    }
}
