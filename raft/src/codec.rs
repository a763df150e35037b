//! bincode (2.x, serde API) for wire messages and persisted records.
//!
//! Persisted records carry a one-byte format version in front so a later `DataVersion` can
//! read old records and upgrade them.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Format of every persisted record written by this version.
pub(crate) const RECORD_V1: u8 = 1;

/// Upper bound for one decoded message, so a corrupt length cannot make us allocate wildly.
const DECODE_LIMIT: usize = 1 << 30;

#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("encode: {0}")]
    Encode(#[from] bincode::error::EncodeError),
    #[error("decode: {0}")]
    Decode(#[from] bincode::error::DecodeError),
    #[error("{0} trailing bytes after message")]
    Trailing(usize),
    #[error("empty record")]
    Empty,
    #[error("unsupported record format version {0}")]
    Version(u8),
}

impl From<CodecError> for std::io::Error {
    fn from(e: CodecError) -> Self {
        std::io::Error::new(std::io::ErrorKind::InvalidData, e)
    }
}

pub(crate) fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, CodecError> {
    Ok(bincode::serde::encode_to_vec(
        v,
        bincode::config::standard(),
    )?)
}

pub(crate) fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let cfg = bincode::config::standard().with_limit::<DECODE_LIMIT>();
    let (v, used) = bincode::serde::decode_from_slice(bytes, cfg)?;
    if used != bytes.len() {
        return Err(CodecError::Trailing(bytes.len() - used));
    }
    Ok(v)
}

/// `[RECORD_V1] ++ bincode(v)`.
pub(crate) fn encode_record<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, CodecError> {
    let body = encode(v)?;
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(RECORD_V1);
    out.extend_from_slice(&body);
    Ok(out)
}

pub(crate) fn decode_record<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    match bytes.split_first() {
        None => Err(CodecError::Empty),
        Some((&RECORD_V1, body)) => decode(body),
        Some((&v, _)) => Err(CodecError::Version(v)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_roundtrip_and_version_check() {
        let rec = encode_record(&(7u64, "x".to_string())).unwrap();
        assert_eq!(rec[0], RECORD_V1);
        let back: (u64, String) = decode_record(&rec).unwrap();
        assert_eq!(back, (7, "x".to_string()));

        let mut future = rec.clone();
        future[0] = 9;
        assert!(matches!(
            decode_record::<(u64, String)>(&future),
            Err(CodecError::Version(9))
        ));
        assert!(matches!(decode_record::<u64>(&[]), Err(CodecError::Empty)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<(u64, Vec<u8>)>(&[0xff, 0xff, 0xff]).is_err());
        let mut ok = encode(&1u64).unwrap();
        ok.push(0);
        assert!(matches!(decode::<u64>(&ok), Err(CodecError::Trailing(1))));
    }
}
