//! The benchmark key pool (`certs::reuse_keys_for_benchmarks`). Its own test binary: the pool
//! is process-wide and set once, so setting it next to the crate's unit tests would make their
//! certificates share keys. Only one test here sets it; the others only see it refuse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use magnum_conductor::pki::certs::{
    self, read_bench_key_file, reuse_keys_for_benchmarks, split_pems, write_bench_key_file,
    CertError,
};
use magnum_conductor::pki::sealing::CertKey;
use magnum_proto::CaKind;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePublicKey, LineEnding};
use x509_parser::prelude::*;

/// The SPKI DER of each PEM private key.
fn public_ders(pems: &[String]) -> Vec<Vec<u8>> {
    pems.iter()
        .map(|p| {
            rsa::RsaPrivateKey::from_pkcs8_pem(p)
                .unwrap()
                .to_public_key()
                .to_public_key_der()
                .unwrap()
                .as_bytes()
                .to_vec()
        })
        .collect()
}

fn spki_of_cert(pem: &str) -> Vec<u8> {
    let der = x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents;
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    cert.public_key().raw.to_vec()
}

#[test]
fn generated_certificates_take_their_keys_from_the_pool_in_turn() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.pem");
    write_bench_key_file(&file, 2).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let pems = read_bench_key_file(&file).unwrap();
    assert_eq!(pems.len(), 2);
    let pool = public_ders(&pems);
    assert_ne!(pool[0], pool[1]);

    reuse_keys_for_benchmarks(pems.clone()).unwrap();
    assert_eq!(certs::bench_key_pool_size(), Some(2));
    // The same keys again are accepted; others are not, nor is going back to none.
    reuse_keys_for_benchmarks(pems.clone()).unwrap();
    assert!(matches!(
        reuse_keys_for_benchmarks(vec![pems[1].clone(), pems[0].clone()]),
        Err(CertError::KeyPoolAlreadySet)
    ));
    assert!(matches!(
        reuse_keys_for_benchmarks(vec![]),
        Err(CertError::KeyPoolEmpty)
    ));

    // Round-robin: pool key i, then i+1, ... whatever the starting point.
    let at = |public_pem: &str| {
        let der = rsa::RsaPublicKey::from_public_key_pem(public_pem)
            .unwrap()
            .to_public_key_der()
            .unwrap()
            .as_bytes()
            .to_vec();
        pool.iter().position(|p| *p == der).expect("a pool key")
    };
    let first = at(&certs::rsa_key_pair().unwrap().1);
    for k in 1..5 {
        let (private, public) = certs::rsa_key_pair().unwrap();
        assert_eq!(at(&public), (first + k) % 2);
        assert_eq!(
            private.trim(),
            pems[(first + k) % 2].trim(),
            "the private key is the pool's"
        );
    }

    // A cluster's certificates: four keys in turn (three CAs, then the admin client).
    let seal = CertKey::from_bytes(&[7; 32]);
    let c = certs::generate("bench", &seal).unwrap();
    let keys: Vec<Vec<u8>> = [CaKind::Kubernetes, CaKind::Etcd, CaKind::FrontProxy]
        .iter()
        .map(|k| spki_of_cert(c.ca(*k).0))
        .chain([spki_of_cert(&c.client_cert)])
        .collect();
    for k in &keys {
        assert!(pool.contains(k), "a certificate's key is not from the pool");
    }
    assert_eq!(keys[0], keys[2]);
    assert_eq!(keys[1], keys[3]);
    assert_ne!(keys[0], keys[1]);
    // The sealed private keys are the pool's too.
    let ca_key = seal.open(&c.ca_key).unwrap();
    assert!(pems.iter().any(|p| p.trim() == ca_key.trim()));
    // Still signed as before: the client certificate by the kubernetes CA.
    let der = |pem: &str| {
        x509_parser::pem::parse_x509_pem(pem.as_bytes())
            .unwrap()
            .1
            .contents
    };
    let (ca_der, cl_der) = (der(&c.ca_cert), der(&c.client_cert));
    let (_, ca) = X509Certificate::from_der(&ca_der).unwrap();
    let (_, cl) = X509Certificate::from_der(&cl_der).unwrap();
    assert!(ca.verify_signature(None).is_ok());
    assert!(cl.verify_signature(Some(ca.public_key())).is_ok());
}

#[test]
fn the_reader_splits_concatenated_pems() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("keys.pem");
    write_bench_key_file(&file, 3).unwrap();
    let pems = read_bench_key_file(&file).unwrap();
    assert_eq!(pems.len(), 3);
    for p in &pems {
        assert!(p.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(p.ends_with("-----END PRIVATE KEY-----\n"));
        rsa::RsaPrivateKey::from_pkcs8_pem(p).unwrap();
    }
    assert_eq!(public_ders(&pems).len(), 3);
    // Text between blocks and CRLF line ends do not matter; a cut-off block does.
    let text = format!("comment\r\n{}\r\n\r\n{}", pems[0], pems[1]).replace('\n', "\r\n");
    assert_eq!(split_pems(&text).unwrap().len(), 2);
    let cut = &pems[0][..pems[0].len() / 2];
    assert!(split_pems(cut).is_err());
    assert!(matches!(
        write_bench_key_file(&file, 0),
        Err(CertError::KeyPoolEmpty)
    ));
}

#[test]
fn bad_keys_and_files_are_refused() {
    let e = reuse_keys_for_benchmarks(vec![
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".into(),
    ])
    .unwrap_err();
    assert!(matches!(e, CertError::KeyPoolKey { index: 0, .. }), "{e}");
    assert!(matches!(
        reuse_keys_for_benchmarks(vec![]),
        Err(CertError::KeyPoolEmpty)
    ));
    // An RSA key of the wrong size.
    let small = rsa::pkcs8::EncodePrivateKey::to_pkcs8_pem(
        &rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap(),
        LineEnding::LF,
    )
    .unwrap()
    .to_string();
    let e = reuse_keys_for_benchmarks(vec![small]).unwrap_err();
    assert!(e.to_string().contains("1024-bit"), "{e}");
    let e = read_bench_key_file(std::path::Path::new("/nonexistent/keys.pem")).unwrap_err();
    assert!(matches!(e, CertError::KeyFile { .. }), "{e}");
    assert!(e.to_string().contains("/nonexistent/keys.pem"), "{e}");
}
