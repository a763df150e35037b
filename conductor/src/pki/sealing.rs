//! Private keys at rest: every PEM private key the shard state holds is sealed with
//! ChaCha20-Poly1305 under a key from the conductor's configuration (`--cert-key-file`), so the
//! Raft log, snapshots and the sled data dir carry only ciphertext. Sealing is done by the
//! reconciler before it proposes (random nonce), never in `apply()`.
//!
//! Rotation: a conductor may also hold previous keys (`--previous-cert-key-file`), which open
//! but never seal; the shard leader re-seals what only they open (`leader/reseal.rs`). The
//! value carries no key id: AEAD authentication tells which key sealed it.
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use rand::RngCore;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Prefix of a sealed value: version, then base64 of nonce ‖ ciphertext ‖ tag.
const SEALED_V1: &str = "sealed:v1:";
const NONCE_LEN: usize = 12;
/// 32 random bytes have fewer than 16 distinct values with probability below 10^-9.
const MIN_DISTINCT_BYTES: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("certificate key file {path}: {reason}")]
    KeyFile { path: String, reason: String },
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open with this conductor's certificate key")]
    WrongKey,
}

/// The 256-bit key that seals, and the previous ones that only open; `Debug` never shows them.
#[derive(Clone)]
pub struct CertKey {
    primary: Arc<ChaCha20Poly1305>,
    previous: Vec<Arc<ChaCha20Poly1305>>,
}

impl fmt::Debug for CertKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertKey(<redacted>, {} previous)", self.previous.len())
    }
}

/// How a sealed value stands against this conductor's keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sealing {
    /// Sealed under the primary key (or clear PEM from before sealing: left as it is).
    Current,
    /// Opens only with a previous key: to be re-sealed.
    Previous,
    /// Opens with no key this conductor holds (or is not a sealed value).
    Unopenable,
}

impl CertKey {
    pub fn from_bytes(key: &[u8; 32]) -> Self {
        Self {
            primary: Arc::new(ChaCha20Poly1305::new(Key::from_slice(key))),
            previous: Vec::new(),
        }
    }

    /// Adds keys that open values sealed before a rotation; they never seal.
    pub fn with_previous(mut self, previous: impl IntoIterator<Item = CertKey>) -> Self {
        self.previous
            .extend(previous.into_iter().map(|k| k.primary));
        self
    }

    /// Whether any previous key is configured (a rotation is in progress on this conductor).
    pub fn has_previous(&self) -> bool {
        !self.previous.is_empty()
    }

    /// A key file holds 32 bytes as 64 hex digits (whitespace around them ignored). Refused:
    /// a file others may read or write (anyone who reads it opens every cluster's private
    /// keys), and a key with few distinct bytes (typed by hand, not drawn at random).
    pub fn from_file(path: &Path) -> Result<Self, SealError> {
        let err = |reason: String| SealError::KeyFile {
            path: path.display().to_string(),
            reason,
        };
        let meta = std::fs::metadata(path).map_err(|e| err(e.to_string()))?;
        if let Some(why) = magnum_net::key_mode::too_open(&meta) {
            return Err(err(why));
        }
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        let bytes = decode_hex(text.trim()).ok_or_else(|| err("expected 64 hex digits".into()))?;
        let distinct = bytes
            .iter()
            .collect::<std::collections::BTreeSet<_>>()
            .len();
        if distinct < MIN_DISTINCT_BYTES {
            return Err(err(format!(
                "only {distinct} distinct byte values: not a random key; make one with \
                 `(umask 077; openssl rand -hex 32 > FILE)`"
            )));
        }
        Ok(Self::from_bytes(&bytes))
    }

    /// Writes a fresh random key file (mode 0600) unless one exists; returns the key.
    pub fn create_file(path: &Path) -> Result<Self, SealError> {
        if path.exists() {
            return Self::from_file(path);
        }
        let mut key = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
        let err = |e: std::io::Error| SealError::KeyFile {
            path: path.display().to_string(),
            reason: e.to_string(),
        };
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(path).map_err(err)?;
        std::io::Write::write_all(&mut f, format!("{hex}\n").as_bytes()).map_err(err)?;
        Ok(Self::from_bytes(&key))
    }

    /// One random key per process: the default of in-process deployments (tests), whose
    /// conductors all share it. A real conductor is given its key file.
    pub fn process_ephemeral() -> Self {
        static KEY: OnceLock<CertKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let mut key = [0u8; 32];
            rand::rngs::OsRng.fill_bytes(&mut key);
            Self::from_bytes(&key)
        })
        .clone()
    }

    /// Seals under the primary key.
    pub fn seal(&self, plaintext: &str) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        // Encrypting into a Vec only fails for inputs beyond 256 GiB.
        let ct = self
            .primary
            .encrypt(Nonce::from_slice(&nonce), plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ct);
        format!("{SEALED_V1}{}", B64.encode(out))
    }

    /// Opens a sealed value with the primary key, else a previous one; a clear PEM key (rows
    /// written before sealing) passes through.
    pub fn open(&self, value: &str) -> Result<String, SealError> {
        self.open_with_which(value).map(|(pt, _)| pt)
    }

    /// What re-sealing `value` needs (see [`Sealing`]).
    pub fn sealing(&self, value: &str) -> Sealing {
        match self.open_with_which(value) {
            Ok((_, Sealing::Previous)) => Sealing::Previous,
            Ok(_) => Sealing::Current,
            Err(_) => Sealing::Unopenable,
        }
    }

    /// `value` sealed under the primary key, if only a previous key opens it now.
    pub fn reseal(&self, value: &str) -> Option<String> {
        match self.open_with_which(value) {
            Ok((pt, Sealing::Previous)) => Some(self.seal(&pt)),
            _ => None,
        }
    }

    fn open_with_which(&self, value: &str) -> Result<(String, Sealing), SealError> {
        let Some(b64) = value.strip_prefix(SEALED_V1) else {
            if value.starts_with("-----BEGIN") {
                return Ok((value.to_string(), Sealing::Current));
            }
            return Err(SealError::Malformed);
        };
        let raw = B64.decode(b64).map_err(|_| SealError::Malformed)?;
        if raw.len() < NONCE_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, ct) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::from_slice(nonce);
        let (pt, which) = match self.primary.decrypt(nonce, ct) {
            Ok(pt) => (pt, Sealing::Current),
            Err(_) => self
                .previous
                .iter()
                .find_map(|k| k.decrypt(nonce, ct).ok())
                .map(|pt| (pt, Sealing::Previous))
                .ok_or(SealError::WrongKey)?,
        };
        String::from_utf8(pt)
            .map(|s| (s, which))
            .map_err(|_| SealError::Malformed)
    }
}

pub fn is_sealed(value: &str) -> bool {
    value.starts_with(SEALED_V1)
}

fn decode_hex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_wrong_key() {
        let k = CertKey::from_bytes(&[7u8; 32]);
        let pem = "-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
        let s = k.seal(pem);
        assert!(is_sealed(&s) && !s.contains("PRIVATE KEY"));
        assert_ne!(s, k.seal(pem), "a fresh nonce every time");
        assert_eq!(k.open(&s).unwrap(), pem);
        let other = CertKey::from_bytes(&[8u8; 32]);
        assert!(matches!(other.open(&s), Err(SealError::WrongKey)));
        // Rows written before sealing hold clear PEM.
        assert_eq!(other.open(pem).unwrap(), pem);
        assert!(matches!(k.open("garbage"), Err(SealError::Malformed)));
        assert!(matches!(k.open("sealed:v1:!!"), Err(SealError::Malformed)));
    }

    #[test]
    fn previous_keys_open_and_never_seal() {
        let old = CertKey::from_bytes(&[7u8; 32]);
        let new = CertKey::from_bytes(&[9u8; 32]);
        let ring = new.clone().with_previous([old.clone()]);
        assert!(ring.has_previous() && !new.has_previous());
        let under_old = old.seal("-----BEGIN a");
        assert_eq!(ring.open(&under_old).unwrap(), "-----BEGIN a");
        assert_eq!(ring.sealing(&under_old), Sealing::Previous);
        let resealed = ring.reseal(&under_old).unwrap();
        assert_eq!(
            new.open(&resealed).unwrap(),
            "-----BEGIN a",
            "sealed under the primary"
        );
        assert!(old.open(&resealed).is_err());
        assert_eq!(ring.sealing(&resealed), Sealing::Current);
        assert_eq!(ring.reseal(&resealed), None, "nothing to do");
        assert_eq!(
            ring.reseal("-----BEGIN clear"),
            None,
            "clear PEM is left alone"
        );
        let stranger = CertKey::from_bytes(&[5u8; 32]).seal("x");
        assert_eq!(ring.sealing(&stranger), Sealing::Unopenable);
        assert_eq!(ring.reseal(&stranger), None);
        // What a new seal uses: only the primary.
        assert!(old.open(&ring.seal("y")).is_err());
    }

    #[test]
    fn key_file_is_created_once_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cert.key");
        let a = CertKey::create_file(&p).unwrap();
        let b = CertKey::create_file(&p).unwrap();
        let s = a.seal("-----BEGIN x");
        assert_eq!(b.open(&s).unwrap(), "-----BEGIN x");
        std::fs::write(&p, "short").unwrap();
        assert!(CertKey::from_file(&p).is_err());
    }

    /// A key others may read, or one typed by hand, is refused with the reason.
    #[cfg(unix)]
    #[test]
    fn exposed_or_weak_key_files_are_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cert.key");
        CertKey::create_file(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = CertKey::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("mode 644") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(CertKey::from_file(&p).is_ok());
        std::fs::write(&p, "00".repeat(32)).unwrap();
        let e = CertKey::from_file(&p).unwrap_err().to_string();
        assert!(e.contains("1 distinct byte values"), "{e}");
        std::fs::write(&p, "0123456789abcdef".repeat(4)).unwrap();
        assert!(CertKey::from_file(&p).is_err(), "8 distinct bytes");
    }
}
