//! The one encoding of stored values: bincode 2 over serde, standard configuration.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{StorageResult, corrupt};

/// Encodes a value for storage.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("encoding to a Vec cannot fail for serde-derived types")
}

/// The most bytes one decoding may claim for the strings and byte buffers it reads. bincode
/// allocates a buffer of the length a prefix claims before reading into it, so nine corrupt
/// bytes could ask for exabytes and abort the process; past this bound the claim is an error
/// (corruption) instead. No real value comes near it: the Raft transport refuses messages
/// above [`eddy_limits::RAFT_MESSAGE_MAX_BYTES`], and no stored value is larger than a message
/// that carries it (a log entry, a snapshot).
pub const DECODE_CLAIM_MAX_BYTES: usize = 256 << 20;
const _: () = assert!(eddy_limits::RAFT_MESSAGE_MAX_BYTES < DECODE_CLAIM_MAX_BYTES);

/// bincode's standard configuration with the claims of a decoding bounded.
fn decoding() -> impl bincode::config::Config {
    bincode::config::standard().with_limit::<DECODE_CLAIM_MAX_BYTES>()
}

/// Decodes a value from the front of `bytes`, borrowing from them where the value's type does
/// (`&[u8]`, `&str`), and returns it with the number of bytes it took: for reading a stored
/// value piece by piece without decoding all of it.
pub fn decode_prefix<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8], what: &str) -> StorageResult<(T, usize)> {
    bincode::serde::borrow_decode_from_slice(bytes, decoding()).map_err(|e| corrupt(format!("{what}: {e}")))
}

/// Decodes a stored value, reporting corruption (including trailing bytes) as an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> StorageResult<T> {
    let (value, read) =
        bincode::serde::decode_from_slice(bytes, decoding()).map_err(|e| corrupt(format!("{what}: {e}")))?;
    if read != bytes.len() {
        return Err(corrupt(format!("{what}: {} trailing bytes", bytes.len() - read)));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_corrupt_length_is_an_error_not_an_allocation() {
        // A string whose length prefix claims 2^60 bytes (0xfd: a u64 follows, little-endian):
        // decoding used to allocate that much before reading, and the process aborted.
        let claim = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0x10, b'x'];
        assert!(decode::<String>(&claim, "test").is_err());
        assert!(decode::<bytes::Bytes>(&claim, "test").is_err());
        assert!(decode_prefix::<(String, u8)>(&claim, "test").is_err());
        // Within the bound, a claim past the end is still an error.
        assert!(decode::<Vec<u8>>(&[0xfd, 0, 0, 0, 1, 0, 0, 0, 0], "test").is_err());
    }

    #[test]
    fn values_up_to_the_largest_message_decode() {
        let payload = bytes::Bytes::from(vec![7u8; eddy_limits::RAFT_MESSAGE_MAX_BYTES]);
        let back: bytes::Bytes = decode(&encode(&payload), "test").unwrap();
        assert_eq!(back, payload);
    }
}
