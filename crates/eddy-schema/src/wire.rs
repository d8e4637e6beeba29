//! The wire format of a value that names its schema, shared by the Confluent serializers of
//! every language: a magic byte 0, the schema id as 4 bytes big-endian, then the value in the
//! schema's format (a Protobuf value first lists the indexes of its message in the schema).

/// The first byte of a framed value.
pub const MAGIC_BYTE: u8 = 0;
/// Bytes before the encoded value: the magic byte and the id.
pub const HEADER_BYTES: usize = 5;

/// Why a value does not carry a schema id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("the value is {0} bytes, shorter than the 5-byte schema header")]
    TooShort(usize),
    #[error("the value starts with byte {0}, not the magic byte 0 of a schema id")]
    NoMagicByte(u8),
}

/// Splits a framed value into its schema id and the encoded value.
pub fn split(value: &[u8]) -> Result<(u32, &[u8]), WireError> {
    if value.len() < HEADER_BYTES {
        return Err(WireError::TooShort(value.len()));
    }
    if value[0] != MAGIC_BYTE {
        return Err(WireError::NoMagicByte(value[0]));
    }
    let id = u32::from_be_bytes([value[1], value[2], value[3], value[4]]);
    Ok((id, &value[HEADER_BYTES..]))
}

/// Frames `payload` (already in the schema's format) with the schema `id`.
pub fn frame(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.push(MAGIC_BYTE);
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// The message indexes of a Protobuf value naming the schema's first message (a lone 0).
pub const PROTOBUF_FIRST_MESSAGE: &[u8] = &[0];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_bad_headers_are_named() {
        let framed = frame(0x0102_0304, b"abc");
        assert_eq!(framed[..5], [0, 1, 2, 3, 4]);
        assert_eq!(split(&framed), Ok((0x0102_0304, &b"abc"[..])));
        assert_eq!(split(b"{\"a\":1}"), Err(WireError::NoMagicByte(b'{')));
        assert_eq!(split(&[0, 1]), Err(WireError::TooShort(2)));
    }
}
