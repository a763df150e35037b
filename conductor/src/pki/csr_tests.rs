use super::*;
use crate::pki::certs::generate;
use rcgen::{ExtendedKeyUsagePurpose as Eku, IsCa, KeyUsagePurpose as Ku};
use std::process::Command;
use x509_parser::prelude::*;

fn key() -> CertKey {
    CertKey::from_bytes(&[3; 32])
}

fn csr_with(f: impl FnOnce(&mut CertificateParams)) -> (String, KeyPair) {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(vec!["node-1".to_string()]).unwrap();
    p.distinguished_name.push(DnType::CommonName, "kubelet");
    p.distinguished_name
        .push(DnType::OrganizationName, "system:nodes");
    f(&mut p);
    let csr = p.serialize_request(&key).unwrap().pem().unwrap();
    (csr, key)
}

fn custom(oid: &[u64], der: Vec<u8>, critical: bool) -> CustomExtension {
    let mut e = CustomExtension::from_oid_content(oid, der);
    e.set_criticality(critical);
    e
}

fn der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

/// `openssl verify -CAfile ca cert`: true when the chain verifies.
fn openssl_verifies(ca: &str, cert: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("ca.pem"), dir.path().join("c.pem"));
    std::fs::write(&a, ca).unwrap();
    std::fs::write(&b, format!("{cert}\n")).unwrap();
    let out = Command::new("openssl")
        .arg("verify")
        .arg("-CAfile")
        .arg(&a)
        .arg(&b)
        .output()
        .expect("openssl CLI (deploy/test.sh installs it)");
    out.status.success()
}

#[test]
fn a_csr_is_signed_by_the_chosen_ca_and_verifies_with_openssl() {
    let k = key();
    let c = generate("k8s", &k).unwrap();
    let (csr, subject_key) = csr_with(|p| {
        p.key_usages = vec![Ku::DigitalSignature, Ku::KeyEncipherment];
        p.extended_key_usages = vec![Eku::ClientAuth];
    });
    for kind in [CaKind::Kubernetes, CaKind::Etcd, CaKind::FrontProxy] {
        let pem = sign_csr(&c, &k, kind, &csr).unwrap();
        assert!(!pem.ends_with('\n'));
        let (ca_pem, _) = c.ca(kind);
        assert!(openssl_verifies(ca_pem, &pem), "{kind:?}");
        for other in [CaKind::Kubernetes, CaKind::Etcd, CaKind::FrontProxy] {
            if other != kind {
                assert!(
                    !openssl_verifies(c.ca(other).0, &pem),
                    "{kind:?} vs {other:?}"
                );
            }
        }
        let d = der(&pem);
        let (_, cert) = X509Certificate::from_der(&d).unwrap();
        assert_eq!(cert.subject().to_string(), "CN=kubelet, O=system:nodes");
        assert_eq!(cert.issuer().to_string(), "CN=k8s");
        assert_eq!(
            cert.public_key().raw,
            subject_key.public_key_der().as_slice()
        );
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert_eq!(san.value.general_names.len(), 1);
        assert!(
            cert.extended_key_usage()
                .unwrap()
                .unwrap()
                .value
                .client_auth
        );
        assert!(cert
            .extensions()
            .iter()
            .any(|e| e.oid == oids::OID_X509_EXT_SUBJECT_KEY_IDENTIFIER));
        let v = cert.validity();
        assert_eq!(
            (v.not_after.timestamp() - v.not_before.timestamp()) / 86_400,
            1826
        );
    }
}

#[test]
fn critical_key_usage_with_a_disallowed_bit_is_refused() {
    let k = key();
    let c = generate("k8s", &k).unwrap();
    // rcgen writes keyUsage critical.
    let (csr, _) = csr_with(|p| p.key_usages = vec![Ku::DigitalSignature, Ku::KeyCertSign]);
    match sign_csr(&c, &k, CaKind::Kubernetes, &csr) {
        Err(SignError::BadCsr(m)) => assert_eq!(m, "Key usage 'Certificate Sign' not allowed"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn non_critical_key_usage_loses_its_disallowed_bits() {
    let k = key();
    let c = generate("k8s", &k).unwrap();
    // digitalSignature + keyCertSign, non-critical.
    let ku = key_usage_der(0b10_0001);
    let (csr, _) = csr_with(|p| p.custom_extensions = vec![custom(&[2, 5, 29, 15], ku, false)]);
    let pem = sign_csr(&c, &k, CaKind::Kubernetes, &csr).unwrap();
    let d = der(&pem);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let ku = cert.key_usage().unwrap().unwrap();
    assert!(!ku.critical);
    assert!(ku.value.digital_signature() && !ku.value.key_cert_sign());
    assert_eq!(key_usage_der(0b101), vec![0x03, 0x02, 0x05, 0xa0]);
    assert_eq!(key_usage_der(0), vec![0x03, 0x01, 0x00]);
}

#[test]
fn ca_true_becomes_ca_false_unless_critical() {
    let k = key();
    let c = generate("k8s", &k).unwrap();
    // BasicConstraints CA:true, non-critical: SEQUENCE { BOOLEAN TRUE }.
    let bc = vec![0x30, 0x03, 0x01, 0x01, 0xff];
    let (csr, _) =
        csr_with(|p| p.custom_extensions = vec![custom(&[2, 5, 29, 19], bc.clone(), false)]);
    let pem = sign_csr(&c, &k, CaKind::Kubernetes, &csr).unwrap();
    let d = der(&pem);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    let got = cert.basic_constraints().unwrap().unwrap();
    assert!(!got.value.ca && !got.critical && !cert.is_ca());
    let (csr, _) = csr_with(|p| p.custom_extensions = vec![custom(&[2, 5, 29, 19], bc, true)]);
    match sign_csr(&c, &k, CaKind::Kubernetes, &csr) {
        Err(SignError::BadCsr(m)) => assert_eq!(m, "Extension 'basicConstraints' not allowed"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn other_extensions_are_dropped_or_refused_when_critical() {
    let k = key();
    let c = generate("k8s", &k).unwrap();
    // nameConstraints-like private OID, non-critical: dropped.
    let (csr, _) =
        csr_with(|p| p.custom_extensions = vec![custom(&[1, 2, 3, 4], vec![0x05, 0x00], false)]);
    let pem = sign_csr(&c, &k, CaKind::Kubernetes, &csr).unwrap();
    let d = der(&pem);
    let (_, cert) = X509Certificate::from_der(&d).unwrap();
    assert!(cert
        .extensions()
        .iter()
        .all(|e| e.oid.to_id_string() != "1.2.3.4"));
    // Critical: refused.
    let (csr, _) =
        csr_with(|p| p.custom_extensions = vec![custom(&[1, 2, 3, 4], vec![0x05, 0x00], true)]);
    match sign_csr(&c, &k, CaKind::Kubernetes, &csr) {
        Err(SignError::BadCsr(m)) => assert_eq!(m, "Extension '1.2.3.4' not allowed"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn invalid_pem_and_wrong_key_are_reported() {
    let k = key();
    let c = generate("k8s", &k).unwrap();
    match sign_csr(&c, &k, CaKind::Kubernetes, "not a csr") {
        Err(SignError::BadCsr(m)) => assert_eq!(m, "Received invalid csr not a csr."),
        other => panic!("{other:?}"),
    }
    let (csr, _) = csr_with(|_| {});
    let wrong = CertKey::from_bytes(&[4; 32]);
    assert!(matches!(
        sign_csr(&c, &wrong, CaKind::Kubernetes, &csr),
        Err(SignError::Ca(_))
    ));
}

#[test]
fn rows_from_before_rsa_and_sealing_still_sign() {
    // The old layout: one ECDSA CA, clear PEM keys, no etcd / front-proxy CA.
    let ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, "old");
    p.is_ca = IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
    let ca = p.self_signed(&ca_key).unwrap();
    let old = ClusterCerts {
        ca_cert: ca.pem(),
        ca_key: ca_key.serialize_pem(),
        client_cert: String::new(),
        client_key: String::new(),
        etcd_ca_cert: None,
        etcd_ca_key: None,
        front_proxy_ca_cert: None,
        front_proxy_ca_key: None,
        service_account_key: None,
        service_account_private_key: None,
    };
    let (csr, _) = csr_with(|_| {});
    let pem = sign_csr(&old, &key(), CaKind::Etcd, &csr).unwrap();
    assert!(openssl_verifies(&old.ca_cert, &pem));
}

/// fuzz/regressions/csr: x509-parser reads a subject attribute type whose arcs have no DER
/// encoding (here first arc 5), and rcgen panicked writing it into the certificate. Such a
/// subject is refused as unsupported.
#[test]
fn a_subject_attribute_type_rcgen_cannot_write_is_refused() {
    // SEQUENCE { SET { SEQUENCE { OID e4 04 03 (arcs 5.28...), UTF8String "x" } } }
    let name = [
        0x30, 0x0c, 0x31, 0x0a, 0x30, 0x08, 0x06, 0x03, 0xe4, 0x04, 0x03, 0x0c, 0x01, b'x',
    ];
    let (_, name) = X509Name::from_der(&name).unwrap();
    let err = subject(&name).unwrap_err();
    assert!(err.to_string().contains("unsupported subject"), "{err}");
    assert!(der_encodable(&[2, 5, 4, 3]) && der_encodable(&[2, 999]));
    assert!(!der_encodable(&[5, 28]) && !der_encodable(&[1, 40]) && !der_encodable(&[2]));
    assert!(!der_encodable(&[]) && !der_encodable(&[2, u64::MAX]));
}

/// fuzz/regressions/csr: a subject PrintableString with '?' (which PrintableString allows) made
/// rcgen's DER writer panic; it is issued as a UTF8String of the same text.
#[test]
fn a_printable_string_with_a_question_mark_is_issued() {
    // SEQUENCE { SET { SEQUENCE { OID 2.5.4.3 (CN), PrintableString "a?" } } }
    let name = [
        0x30, 0x0d, 0x31, 0x0b, 0x30, 0x09, 0x06, 0x03, 0x55, 0x04, 0x03, 0x13, 0x02, b'a', b'?',
    ];
    let (_, name) = X509Name::from_der(&name).unwrap();
    let dn = subject(&name).unwrap();
    assert_eq!(
        dn.get(&DnType::CommonName),
        Some(&DnValue::Utf8String("a?".into()))
    );
    let mut p = CertificateParams::default();
    p.distinguished_name = dn;
    let cert = p.self_signed(&KeyPair::generate().unwrap()).unwrap();
    let (_, parsed) = X509Certificate::from_der(cert.der()).unwrap();
    assert_eq!(parsed.subject().to_string(), "CN=a?");
}
