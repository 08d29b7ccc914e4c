//! TLS client configuration for broker links (MQTT transport and event handlers): rustls with
//! the ring provider, the only crypto provider in the binary. Roots are the system bundle plus an
//! optional CA file; a client certificate is optional.

use std::sync::Arc;

use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

/// The system's CA bundle on Debian.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// A client configuration trusting the system roots and `cacert`, presenting `cert`/`key` when
/// both are given. `verify = false` is not supported (logged): the broker is always verified.
pub fn client_config(
    cacert: Option<&str>,
    cert: Option<&str>,
    key: Option<&str>,
    verify: bool,
) -> Result<Arc<ClientConfig>, String> {
    if !verify {
        tracing::warn!("TLS peer verification cannot be turned off; the broker's certificate is verified");
    }
    let mut roots = RootCertStore::empty();
    for path in [Some(SYSTEM_ROOTS), cacert].into_iter().flatten() {
        let Ok(certs) = CertificateDer::pem_file_iter(path) else {
            if Some(path) == cacert {
                return Err(format!("cannot read CA file {path}"));
            }
            continue;
        };
        for c in certs.flatten() {
            // A bundle may hold certificates rustls refuses; the others still count.
            let _ = roots.add(c);
        }
    }
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots);
    let config = match (cert, key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|e| format!("client certificate {cert}: {e}"))?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("client key {key}: {e}"))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}
