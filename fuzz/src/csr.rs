//! `csr`: `magnum_conductor::pki::csr::sign_csr`, the conductor's whole handling of a client's
//! CSR (`POST /v1/certificates`): PEM, PKCS#10, signature, extension filter, subject, then the
//! signing by the cluster's CA.
//!
//! Input: one mode byte, then
//! * mode even: the PEM text as `SignCsr.csr` carries it (UTF-8);
//! * mode odd: the DER of a `CertificationRequestInfo`, which the harness signs with a fixed
//!   Ed25519 key (deterministic) and wraps in a PEM request. A CRI holding that key's public key
//!   then passes the signature check, so the fuzzer reaches the extension and subject handling
//!   that a mutated signed request never would.
//!
//! `mode / 2 % 3` picks the CA kind. The CAs are one fixed Ed25519 CA made once per process (no
//! RSA key generation in the loop); what is checked in a request does not depend on the CA's
//! key type.

use std::sync::OnceLock;

use magnum_conductor::pki::csr::sign_csr;
use magnum_conductor::pki::sealing::CertKey;
use magnum_proto::{CaKind, ClusterCerts};
use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use ring::signature::Ed25519KeyPair;

use crate::Seed;

/// The seed of the fixed Ed25519 key that signs CRIs (and is the CA's key).
const SEED: [u8; 32] = *b"magnum-fuzz-fixed-ed25519-key-01";

/// PKCS#8 v1 of an Ed25519 private key: this prefix, then the 32-byte seed.
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// AlgorithmIdentifier of Ed25519 (`1.3.101.112`, no parameters).
const ED25519_ALG: [u8; 7] = [0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

struct Fixed {
    signer: Ed25519KeyPair,
    key_pem: String,
    certs: ClusterCerts,
    seal: CertKey,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let signer = Ed25519KeyPair::from_seed_unchecked(&SEED)
            .unwrap_or_else(|e| panic!("ed25519 seed: {e}"));
        let mut der = PKCS8_PREFIX.to_vec();
        der.extend_from_slice(&SEED);
        let key_pem = pem("PRIVATE KEY", &der);
        let key = KeyPair::from_pem(&key_pem).unwrap_or_else(|e| panic!("ca key: {e}"));
        let mut p = CertificateParams::new(Vec::new()).unwrap_or_else(|e| panic!("{e}"));
        p.distinguished_name.push(DnType::CommonName, "k8s");
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = p
            .self_signed(&key)
            .unwrap_or_else(|e| panic!("ca: {e}"))
            .pem();
        let seal = CertKey::from_bytes(&[3; 32]);
        let sealed = seal.seal(&key_pem);
        let certs = ClusterCerts {
            ca_cert: ca.clone(),
            ca_key: sealed.clone(),
            client_cert: String::new(),
            client_key: String::new(),
            etcd_ca_cert: Some(ca.clone()),
            etcd_ca_key: Some(sealed.clone()),
            front_proxy_ca_cert: Some(ca),
            front_proxy_ca_key: Some(sealed),
            service_account_key: None,
            service_account_private_key: None,
        };
        Fixed {
            signer,
            key_pem,
            certs,
            seal,
        }
    })
}

fn pem(label: &str, der: &[u8]) -> String {
    use std::fmt::Write;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(B64[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", String::from_utf8_lossy(line));
    }
    let _ = write!(out, "-----END {label}-----");
    out
}

/// DER TLV with a definite length.
fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let n = body.len();
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let len = n.to_be_bytes();
        let skip = len.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (len.len() - skip) as u8);
        out.extend_from_slice(&len[skip..]);
    }
    out.extend_from_slice(body);
    out
}

/// A PEM request of `cri` signed by the fixed key.
pub fn wrap_cri(cri: &[u8]) -> String {
    let sig = fixed().signer.sign(cri);
    let mut bits = vec![0u8];
    bits.extend_from_slice(sig.as_ref());
    let mut body = cri.to_vec();
    body.extend_from_slice(&ED25519_ALG);
    body.extend(tlv(0x03, &bits));
    pem("CERTIFICATE REQUEST", &tlv(0x30, &body))
}

pub fn run(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let ca = [CaKind::Kubernetes, CaKind::Etcd, CaKind::FrontProxy][usize::from(mode / 2) % 3];
    let f = fixed();
    let csr = if mode % 2 == 0 {
        match std::str::from_utf8(rest) {
            Ok(s) => s.to_string(),
            Err(_) => return,
        }
    } else {
        wrap_cri(rest)
    };
    let _ = sign_csr(&f.certs, &f.seal, ca, &csr);
}

/// Requests as clients make them (rcgen, as the conductor's tests do): P-256 PEMs, and the CRIs
/// of requests of the fixed key with the extensions the filter handles.
pub fn seeds() -> Vec<Seed> {
    let f = fixed();
    let fixed_key = KeyPair::from_pem(&f.key_pem).unwrap_or_else(|e| panic!("{e}"));
    let p256 = KeyPair::generate().unwrap_or_else(|e| panic!("{e}"));
    let params = |variant: usize| {
        let mut p = CertificateParams::new(vec!["node-1".to_string(), "10.0.0.5".to_string()])
            .unwrap_or_else(|e| panic!("{e}"));
        p.distinguished_name.push(DnType::CommonName, "kubelet");
        p.distinguished_name
            .push(DnType::OrganizationName, "system:nodes");
        match variant {
            0 => {
                p.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
            }
            1 => {
                // CA:true, not critical: signed as CA:false.
                p.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                p.custom_extensions = vec![CustomExtension::from_oid_content(
                    &[2, 5, 29, 19],
                    vec![0x30, 0x03, 0x01, 0x01, 0xff],
                )];
            }
            2 => {
                p.distinguished_name.push(
                    DnType::CountryName,
                    rcgen::DnValue::PrintableString(
                        "US".try_into().unwrap_or_else(|e| panic!("{e:?}")),
                    ),
                );
            }
            3 => {
                // An unknown critical extension: refused.
                let mut e = CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![0x05, 0x00]);
                e.set_criticality(true);
                p.custom_extensions = vec![e];
            }
            _ => {
                // keyCertSign in a critical keyUsage: refused.
                p.key_usages = vec![KeyUsagePurpose::KeyCertSign];
            }
        }
        p
    };
    let mut out = Vec::new();
    for v in 0..5usize {
        let pem_csr = params(v)
            .serialize_request(&p256)
            .and_then(|r| r.pem())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut s = vec![(2 * (v % 3)) as u8];
        s.extend_from_slice(pem_csr.as_bytes());
        out.push((format!("pem-{v}"), s));

        let der = params(v)
            .serialize_request(&fixed_key)
            .unwrap_or_else(|e| panic!("{e}"))
            .der()
            .to_vec();
        let cri = first_element_of_sequence(&der);
        assert!(
            sign_csr(&f.certs, &f.seal, CaKind::Kubernetes, &wrap_cri(&cri)).is_ok() == (v < 3),
            "re-signed seed {v}: accepted unless it is one of the refused ones"
        );
        let mut s = vec![(2 * (v % 3) + 1) as u8];
        s.extend_from_slice(&cri);
        out.push((format!("cri-{v}"), s));
    }
    out
}

/// The first element of a DER SEQUENCE (a request's CRI), bytes as they are.
fn first_element_of_sequence(der: &[u8]) -> Vec<u8> {
    fn header(b: &[u8]) -> (usize, usize) {
        let l = b[1];
        if l < 0x80 {
            (2, usize::from(l))
        } else {
            let n = usize::from(l & 0x7f);
            let len = b[2..2 + n]
                .iter()
                .fold(0usize, |acc, x| acc << 8 | usize::from(*x));
            (2 + n, len)
        }
    }
    let (h, _) = header(der);
    let inner = &der[h..];
    let (h2, len2) = header(inner);
    inner[..h2 + len2].to_vec()
}
