//! `POST /v1/certificates`: a client's PKCS#10 request signed by one of the cluster's CAs, with
//! the extensions filtered as upstream's `x509/validator.py` does (reference §9): only keyUsage,
//! extendedKeyUsage, subjectAltName, basicConstraints and subjectKeyIdentifier survive (another
//! critical one → 400, non-critical dropped); key usage bits beyond digitalSignature,
//! nonRepudiation and keyEncipherment are cleared (400 if the extension is critical); CA:true
//! becomes CA:false (400 if critical). Kept extensions keep their criticality.
use crate::pki::certs::stamp;
use crate::pki::sealing::CertKey;
use magnum_proto::{CaKind, ClusterCerts};
use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, DnValue, KeyPair};
use sha2::{Digest, Sha256};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::der_parser::asn1_rs::Tag;
use x509_parser::extensions::{ParsedExtension, X509Extension};
use x509_parser::oid_registry as oids;
use x509_parser::prelude::FromDer;
use x509_parser::x509::X509Name;

#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The CSR is unusable; the message is for the user (400).
    #[error("{0}")]
    BadCsr(String),
    /// The stored CA could not be loaded (a bug, corrupt data, or the wrong sealing key).
    #[error("cluster CA unusable: {0}")]
    Ca(String),
}

/// `[x509]allowed_key_usage`, as bits of the KeyUsage BIT STRING (x509-parser's order).
const ALLOWED_KEY_USAGE: u16 = 0b111; // digitalSignature, nonRepudiation, keyEncipherment
const KEY_USAGE_NAMES: [&str; 9] = [
    "Digital Signature",
    "Non Repudiation",
    "Key Encipherment",
    "Data Encipherment",
    "Key Agreement",
    "Certificate Sign",
    "CRL Sign",
    "Encipher Only",
    "Decipher Only",
];

fn oid_parts(oid: &x509_parser::der_parser::oid::Oid) -> Vec<u64> {
    oid.iter().map(|i| i.collect()).unwrap_or_default()
}

fn not_allowed(name: &str) -> SignError {
    SignError::BadCsr(format!("Extension '{name}' not allowed"))
}

/// The extensions of the signed certificate, or why the CSR is refused.
fn filter(exts: &[X509Extension]) -> Result<Vec<CustomExtension>, SignError> {
    let mut out = Vec::new();
    for e in exts {
        let oid = oid_parts(&e.oid);
        let keep = |content: Vec<u8>, critical: bool| {
            let mut c = CustomExtension::from_oid_content(&oid, content);
            c.set_criticality(critical);
            c
        };
        match e.parsed_extension() {
            ParsedExtension::KeyUsage(ku) => {
                let disallowed = ku.flags & !ALLOWED_KEY_USAGE;
                if disallowed != 0 && e.critical {
                    let bit = disallowed.trailing_zeros() as usize;
                    let name = KEY_USAGE_NAMES.get(bit).copied().unwrap_or("unknown");
                    return Err(SignError::BadCsr(format!("Key usage '{name}' not allowed")));
                }
                out.push(keep(
                    key_usage_der(ku.flags & ALLOWED_KEY_USAGE),
                    e.critical,
                ));
            }
            ParsedExtension::BasicConstraints(bc) => {
                if bc.ca {
                    if e.critical {
                        return Err(not_allowed("basicConstraints"));
                    }
                    // CA:false is the DEFAULT: an empty SEQUENCE.
                    out.push(keep(vec![0x30, 0x00], false));
                } else {
                    out.push(keep(e.value.to_vec(), e.critical));
                }
            }
            ParsedExtension::ExtendedKeyUsage(_) | ParsedExtension::SubjectAlternativeName(_) => {
                out.push(keep(e.value.to_vec(), e.critical))
            }
            // Replaced by the one computed from the public key below.
            ParsedExtension::SubjectKeyIdentifier(_) => {}
            _ if e.critical => {
                let name = oids::OidRegistry::default()
                    .with_x509()
                    .get(&e.oid)
                    .map_or_else(|| e.oid.to_id_string(), |entry| entry.sn().to_string());
                return Err(not_allowed(&name));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// DER of a KeyUsage BIT STRING with `flags` (bit 0 = digitalSignature), trailing zeros dropped.
fn key_usage_der(flags: u16) -> Vec<u8> {
    let bits = 16 - flags.leading_zeros() as usize;
    let bytes = bits.div_ceil(8);
    let mut body = vec![0u8; bytes];
    for i in 0..bits {
        if flags & (1 << i) != 0 {
            body[i / 8] |= 0x80 >> (i % 8);
        }
    }
    let unused = (bytes * 8 - bits) as u8;
    let mut der = vec![0x03, (bytes + 1) as u8, unused];
    der.extend(body);
    der
}

/// Whether rcgen can write `oid` back: x509-parser accepts attribute types whose arcs have no
/// DER encoding (first arc above 2, second arc 40 or more under 0 and 1, fewer than two arcs, or
/// an arc beyond 64 bits, which `oid_parts` turns into no arcs), and yasna panics writing them.
fn der_encodable(oid: &[u64]) -> bool {
    match oid {
        [first, second, ..] => {
            *first <= 2 && (*first == 2 || *second < 40) && *second < u64::MAX - 80
        }
        _ => false,
    }
}

/// The CSR's subject as rcgen needs it.
fn subject(name: &X509Name) -> Result<DistinguishedName, SignError> {
    let bad = || SignError::BadCsr("Received invalid csr: unsupported subject.".into());
    let mut dn = DistinguishedName::new();
    for attr in name.iter_attributes() {
        let oid = oid_parts(attr.attr_type());
        if !der_encodable(&oid) {
            return Err(bad());
        }
        let t = DnType::from_oid(&oid);
        let data = attr.attr_value().data;
        let text = || std::str::from_utf8(data).map_err(|_| bad());
        let v = match attr.attr_value().header.tag() {
            Tag::PrintableString => {
                let p: rcgen::PrintableString = text()?.try_into().map_err(|_| bad())?;
                // yasna, rcgen's DER writer, panics on '?', which PrintableString allows: such a
                // value is issued as a UTF8String (the same text).
                match p.as_str().contains('?') {
                    true => DnValue::Utf8String(p.as_str().to_string()),
                    false => DnValue::PrintableString(p),
                }
            }
            Tag::Ia5String => DnValue::Ia5String(text()?.try_into().map_err(|_| bad())?),
            Tag::Utf8String | Tag::T61String => DnValue::Utf8String(text()?.to_string()),
            _ => return Err(bad()),
        };
        dn.push(t, v);
    }
    Ok(dn)
}

/// Signs `csr_pem` with the cluster's `ca`: the CSR's subject and public key, the CA's subject
/// as issuer, five years, a random serial. The answer is the PEM without its final newline.
pub fn sign_csr(
    certs: &ClusterCerts,
    seal: &CertKey,
    ca: CaKind,
    csr_pem: &str,
) -> Result<String, SignError> {
    let invalid = |why: &str| SignError::BadCsr(format!("Received invalid csr {why}."));
    let pem = match x509_parser::pem::parse_x509_pem(csr_pem.trim().as_bytes()) {
        Ok((_, p)) if p.label == "CERTIFICATE REQUEST" || p.label == "NEW CERTIFICATE REQUEST" => p,
        _ => return Err(invalid(csr_pem)),
    };
    let (_, csr) = X509CertificationRequest::from_der(&pem.contents)
        .map_err(|_| invalid("(not a PKCS#10 request)"))?;
    csr.verify_signature()
        .map_err(|_| invalid("(bad signature)"))?;
    let info = &csr.certification_request_info;
    let mut exts = Vec::new();
    for attr in info.iter_attributes() {
        if let ParsedCriAttribute::ExtensionRequest(r) = attr.parsed_attribute() {
            exts.extend(filter(&r.extensions)?);
        }
    }
    let spki = rcgen::SubjectPublicKeyInfo::from_der(info.subject_pki.raw)
        .map_err(|_| invalid("(unsupported public key)"))?;
    let ski: Vec<u8> = Sha256::digest(&*info.subject_pki.subject_public_key.data)[..20].to_vec();
    let mut ski_der = vec![0x04, ski.len() as u8];
    ski_der.extend(ski);
    exts.push(CustomExtension::from_oid_content(&[2, 5, 29, 14], ski_der));

    let mut p = CertificateParams::default();
    p.distinguished_name = subject(&info.subject)?;
    p.custom_extensions = exts;
    stamp(&mut p);

    let (ca_pem, ca_key) = certs.ca(ca);
    let ca_key = seal
        .open(ca_key)
        .map_err(|e| SignError::Ca(e.to_string()))?;
    let ca_key = KeyPair::from_pem(&ca_key).map_err(|e| SignError::Ca(e.to_string()))?;
    let issuer = CertificateParams::from_ca_cert_pem(ca_pem)
        .and_then(|p| p.self_signed(&ca_key))
        .map_err(|e| SignError::Ca(e.to_string()))?;
    let cert = p
        .signed_by(&spki, &issuer, &ca_key)
        .map_err(|e| invalid(&format!("({e})")))?;
    Ok(cert.pem().trim_end().to_string())
}

#[cfg(test)]
#[path = "csr_tests.rs"]
mod tests;
