//! Which certificates a device accepts from its station (ADR 0009).
//!
//! - A station enrolled through a link with a CA pin is trusted through that
//!   CA alone: the device downloads the certificate once, checks it against
//!   the pin, and keeps it in its store.
//! - Any other station must present a certificate from Mozilla's root
//!   programme, bundled with the app.
//!
//! The platform's verifier is never used: on Android it has to be set up from
//! Java through JNI before the first connection, and a district's private CA
//! is pinned instead of installed on every phone.

use std::sync::OnceLock;
use std::time::Duration;

use reqwest::Certificate;
use reqwest::blocking::Client;

use menqian_core::enrollment::CA_PATH;
use menqian_core::error::{Error, Result};
use menqian_core::hex;
use menqian_core::store::Store;

/// A CA certificate larger than this is not one.
const MAX_CA_BYTES: usize = 64 * 1024;
/// Where the pinned CA is kept in the store's `meta` table (hex DER).
const META_KEY: &str = "station_ca";

/// What a device trusts when it speaks TLS to its station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StationTrust {
    /// Certificates chaining to Mozilla's bundled roots.
    PublicRoots,
    /// Only this CA certificate (DER), pinned at enrollment.
    PinnedCa(Vec<u8>),
}

impl StationTrust {
    pub(super) fn roots(&self) -> Result<Vec<Certificate>> {
        match self {
            StationTrust::PublicRoots => Ok(public_roots().clone()),
            StationTrust::PinnedCa(der) => {
                Certificate::from_der(der)
                    .map(|c| vec![c])
                    .map_err(|e| Error::Untrusted {
                        reason: format!("the pinned CA certificate is unusable: {e}"),
                    })
            }
        }
    }
}

fn public_roots() -> &'static Vec<Certificate> {
    static ROOTS: OnceLock<Vec<Certificate>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        webpki_root_certs::TLS_SERVER_ROOT_CERTS
            .iter()
            .filter_map(|c| Certificate::from_der(c.as_ref()).ok())
            .collect()
    })
}

/// Downloads the station's CA certificate and checks it against `pin`. The
/// download is not authenticated by TLS (the device cannot know the CA yet):
/// the pin authenticates it, as nobody can make another certificate with the
/// same SHA-256.
pub(super) fn fetch_pinned_ca(base_url: &str, pin: &[u8; 32]) -> Result<Vec<u8>> {
    let http = Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| Error::Offline {
            reason: e.to_string(),
        })?;
    let offline = |e: reqwest::Error| Error::Offline {
        reason: format!("station CA certificate: {e}"),
    };
    let response = http
        .get(format!("{base_url}{CA_PATH}"))
        .send()
        .map_err(offline)?;
    if !response.status().is_success() {
        return Err(Error::Untrusted {
            reason: format!(
                "the station serves no CA certificate ({}); it must run with --tls-ca",
                response.status()
            ),
        });
    }
    // Whatever answers is not trusted yet: read at most one byte past the
    // limit, whatever Content-Length it claims.
    let mut der = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(response, MAX_CA_BYTES as u64 + 1),
        &mut der,
    )
    .map_err(|e| Error::Offline {
        reason: format!("station CA certificate: {e}"),
    })?;
    if der.len() > MAX_CA_BYTES {
        return Err(Error::Untrusted {
            reason: "the station's CA certificate is too large".into(),
        });
    }
    let got = menqian_core::evidence::sha256_hex(&der);
    if got != hex::encode(pin) {
        return Err(Error::Untrusted {
            reason: format!(
                "the station's CA certificate does not match the enrollment link (SHA-256 {got})"
            ),
        });
    }
    Ok(der)
}

/// The certificate error inside a failed request, if that is why it failed:
/// a refused certificate is final (retrying gives the same answer).
pub(super) fn refused_certificate(e: &reqwest::Error) -> Option<String> {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if let Some(tls @ rustls::Error::InvalidCertificate(_)) =
            err.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        // hyper wraps the handshake's io::Error in another; an io::Error's
        // `source()` skips the error it wraps, so step into it.
        next = match err.downcast_ref::<std::io::Error>() {
            Some(io) => io
                .get_ref()
                .map(|inner| inner as &(dyn std::error::Error + 'static)),
            None => err.source(),
        };
    }
    None
}

/// What this device trusts for its station: the CA pinned at enrollment,
/// or the public roots.
pub(crate) fn kept(store: &Store) -> Result<StationTrust> {
    match store.setting(META_KEY)? {
        None => Ok(StationTrust::PublicRoots),
        Some(text) => hex::decode(&text)
            .map(StationTrust::PinnedCa)
            .ok_or_else(|| Error::corrupt(META_KEY, "the pinned station certificate is damaged")),
    }
}

/// Keeps what this device trusts for its station.
pub(crate) fn keep(store: &mut Store, trust: &StationTrust) -> Result<()> {
    match trust {
        StationTrust::PublicRoots => store.set_setting(META_KEY, None),
        StationTrust::PinnedCa(der) => store.set_setting(META_KEY, Some(&hex::encode(der))),
    }
}
