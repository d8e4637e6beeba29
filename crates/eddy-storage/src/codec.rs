//! The one encoding of stored values: bincode 2 over serde, standard configuration.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{StorageResult, corrupt};

/// Encodes a value for storage.
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    bincode::serde::encode_to_vec(value, bincode::config::standard())
        .expect("encoding to a Vec cannot fail for serde-derived types")
}

/// Decodes a value from the front of `bytes`, borrowing from them where the value's type does
/// (`&[u8]`, `&str`), and returns it with the number of bytes it took: for reading a stored
/// value piece by piece without decoding all of it.
pub fn decode_prefix<'de, T: serde::Deserialize<'de>>(bytes: &'de [u8], what: &str) -> StorageResult<(T, usize)> {
    bincode::serde::borrow_decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| corrupt(format!("{what}: {e}")))
}

/// Decodes a stored value, reporting corruption (including trailing bytes) as an error.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> StorageResult<T> {
    let (value, read) = bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .map_err(|e| corrupt(format!("{what}: {e}")))?;
    if read != bytes.len() {
        return Err(corrupt(format!("{what}: {} trailing bytes", bytes.len() - read)));
    }
    Ok(value)
}
