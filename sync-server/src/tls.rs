//! HTTPS for a station that terminates TLS itself, its CA certificate for
//! pinned enrollment, and a private CA for a district that has none (ADR 0009).

use std::path::{Path, PathBuf};

use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use sha2::{Digest, Sha256};

/// The certificate files a station serves HTTPS with.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// The station's certificate chain (PEM), leaf first.
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// The CA certificate devices pin at enrollment, as DER.
#[derive(Debug, Clone)]
pub struct StationCa {
    pub der: Vec<u8>,
}

impl StationCa {
    /// Reads the first certificate of a PEM file.
    pub fn read(path: &Path) -> Result<StationCa, String> {
        let cert = CertificateDer::from_pem_file(path)
            .map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
        Ok(StationCa {
            der: cert.as_ref().to_vec(),
        })
    }

    /// SHA-256 of the DER: the pin an enrollment link carries (what
    /// `openssl x509 -noout -fingerprint -sha256` prints).
    pub fn sha256(&self) -> [u8; 32] {
        Sha256::digest(&self.der).into()
    }
}

/// Checks that the station's certificate chain is one a phone pinning `ca`
/// accepts when it reaches the station at `host`, so that a wrong file stops
/// the station at start instead of failing every phone's enrollment. A
/// certificate that is only out of date is not refused (the station still
/// serves what it can, and a certificate can expire while it runs): it comes
/// back as a warning to log.
pub fn check_chain(files: &TlsFiles, ca: &StationCa, host: &str) -> Result<Option<String>, String> {
    use rustls::CertificateError::{Expired, ExpiredContext, NotValidYet, NotValidYetContext};
    use rustls::client::danger::ServerCertVerifier as _;
    let at = |e: &dyn std::fmt::Display| format!("{}: {e}", files.cert.display());
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| at(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| at(&e))?;
    let (leaf, intermediates) = chain.split_first().ok_or_else(|| at(&"no certificate"))?;
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from(ca.der.clone()))
        .map_err(|e| format!("--tls-ca: {e}"))?;
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
            .build()
            .map_err(|e| format!("--tls-ca: {e}"))?;
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| format!("{host}: {e}"))?;
    let now = rustls_pki_types::UnixTime::now();
    match verifier.verify_server_cert(leaf, intermediates, &name, &[], now) {
        Ok(_) => Ok(None),
        Err(
            e @ rustls::Error::InvalidCertificate(
                Expired | ExpiredContext { .. } | NotValidYet | NotValidYetContext { .. },
            ),
        ) => Ok(Some(at(&format!(
            "phones will refuse it until it is renewed: {e}"
        )))),
        Err(e) => Err(at(&format!(
            "phones pinning --tls-ca would refuse it at {host}: {e}"
        ))),
    }
}

/// What `tls init` wrote.
#[derive(Debug)]
pub struct MadeCa {
    pub ca: StationCa,
    pub ca_cert: PathBuf,
    pub station: TlsFiles,
}

/// Makes a private CA (ECDSA P-256, valid 10 years) and a station certificate
/// it signs for `hosts` (DNS names or IP addresses, valid 825 days) in `dir`:
/// `ca.pem`, `ca-key.pem` (keep it offline once the station certificate is
/// made), `station.pem` and `station-key.pem`. Refuses to overwrite a CA.
pub fn make_private_ca(dir: &Path, hosts: &[String], district: &str) -> Result<MadeCa, String> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    if hosts.is_empty() {
        return Err("name at least one --host (the address phones use)".into());
    }
    let ca_cert = dir.join("ca.pem");
    if ca_cert.exists() {
        return Err(format!(
            "{} exists: a new CA would cut off every enrolled phone",
            ca_cert.display()
        ));
    }
    // Check every file first, so a refusal writes nothing.
    for name in ["ca-key.pem", "station.pem", "station-key.pem"] {
        if dir.join(name).exists() {
            return Err(format!(
                "{} exists; move it away first",
                dir.join(name).display()
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let err = |e: rcgen::Error| e.to_string();
    let now = time::OffsetDateTime::now_utc();

    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.distinguished_name.push(
        DnType::CommonName,
        format!("{district} 门前三包 station CA"),
    );
    ca_params.not_before = now - time::Duration::days(1);
    ca_params.not_after = now + time::Duration::days(3650);
    let ca_key = KeyPair::generate().map_err(err)?;
    let ca = ca_params.self_signed(&ca_key).map_err(err)?;

    let mut params = CertificateParams::new(hosts.to_vec()).map_err(err)?;
    params
        .distinguished_name
        .push(DnType::CommonName, hosts[0].clone());
    params.not_before = now - time::Duration::days(1);
    params.not_after = now + time::Duration::days(825);
    let key = KeyPair::generate().map_err(err)?;
    let issuer = rcgen::Issuer::from_params(&ca_params, &ca_key);
    let station = params.signed_by(&key, &issuer).map_err(err)?;

    let station_files = TlsFiles {
        cert: dir.join("station.pem"),
        key: dir.join("station-key.pem"),
    };
    write_private(&dir.join("ca-key.pem"), &ca_key.serialize_pem())?;
    write_private(&station_files.key, &key.serialize_pem())?;
    std::fs::write(&station_files.cert, station.pem())
        .map_err(|e| format!("{}: {e}", station_files.cert.display()))?;
    std::fs::write(&ca_cert, ca.pem()).map_err(|e| format!("{}: {e}", ca_cert.display()))?;
    Ok(MadeCa {
        ca: StationCa {
            der: ca.der().to_vec(),
        },
        ca_cert,
        station: station_files,
    })
}

fn write_private(path: &Path, text: &str) -> Result<(), String> {
    use std::io::Write as _;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}
