//! rustls verifiers and resolvers that read the node's current material at every handshake.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ParsedCertificate, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, Error, SignatureScheme};

use crate::certs::identity_of;
use crate::material::{current, Current};
use crate::Role;

/// Serves this node's current certificate, as a server and as a client.
pub(crate) struct CurrentKey(pub(crate) Current);

impl fmt::Debug for CurrentKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentKey")
    }
}

impl ResolvesServerCert for CurrentKey {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(current(&self.0).key.clone())
    }
}

impl ResolvesClientCert for CurrentKey {
    fn resolve(&self, _hints: &[&[u8]], _schemes: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(current(&self.0).key.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Client certificates must chain to the current bundle and carry a magnum identity; which
/// roles may do what is the handlers' business.
pub(crate) struct CurrentClientVerifier {
    current: Current,
}

impl CurrentClientVerifier {
    pub(crate) fn new(current: Current) -> Self {
        Self { current }
    }
}

impl fmt::Debug for CurrentClientVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CurrentClientVerifier")
    }
}

impl ClientCertVerifier for CurrentClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    // No hints: with one CA (two during a rotation) the client has one certificate to send.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        let inner = current(&self.current).client_verifier.clone();
        inner.verify_client_cert(end_entity, intermediates, now)?;
        match identity_of(end_entity) {
            Some(_) => Ok(ClientCertVerified::assertion()),
            None => Err(Error::General(
                "client certificate carries no magnum identity".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        current(&self.current)
            .client_verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        current(&self.current)
            .client_verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        current(&self.current)
            .client_verifier
            .supported_verify_schemes()
    }
}

/// Servers of the internal plane are conductors: the chain must reach the bundle and the
/// certificate must say `conductor`. The address dialled is not checked (identities, not
/// addresses; see the crate docs).
pub(crate) struct ConductorVerifier {
    current: Current,
    provider: Arc<CryptoProvider>,
}

impl ConductorVerifier {
    pub(crate) fn new(current: Current, provider: Arc<CryptoProvider>) -> Self {
        Self { current, provider }
    }
}

impl fmt::Debug for ConductorVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ConductorVerifier")
    }
}

impl ServerCertVerifier for ConductorVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let roots = current(&self.current).roots.clone();
        rustls::client::verify_server_cert_signed_by_trust_anchor(
            &parsed,
            &roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        match identity_of(end_entity) {
            Some(id) if id.role == Role::Conductor => Ok(ServerCertVerified::assertion()),
            Some(id) => Err(Error::General(format!(
                "the server is {id}, not a conductor"
            ))),
            None => Err(Error::General(
                "server certificate carries no magnum identity".into(),
            )),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
