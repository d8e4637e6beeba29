//! How [`GroupRecord`]s are stored in the offsets topic: one partition record each, keyed by
//! the group id, its value a format byte and the bincode of the record.

use bytes::Bytes;

use crate::GroupRecord;

/// The format of record values written by this version.
const FORMAT: u8 = 1;

/// A record's key and value.
pub fn encode(record: &GroupRecord) -> (Bytes, Bytes) {
    let mut value = vec![FORMAT];
    value.extend_from_slice(&eddy_storage::codec::encode(record));
    (Bytes::copy_from_slice(record.group().as_bytes()), Bytes::from(value))
}

/// Why a stored value could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("a group record in the offsets topic is unreadable: {0}")]
pub struct DecodeError(String);

/// Reads a record's value back.
pub fn decode(value: &[u8]) -> Result<GroupRecord, DecodeError> {
    match value.split_first() {
        Some((&FORMAT, rest)) => {
            eddy_storage::codec::decode(rest, "group record").map_err(|e| DecodeError(e.to_string()))
        }
        Some((format, _)) => Err(DecodeError(format!("format {format} is unknown to this version"))),
        None => Err(DecodeError("the value is empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CommittedOffset, TopicPartition};

    #[test]
    fn round_trip() {
        let record = GroupRecord::OffsetCommitted {
            group: "g".into(),
            partition: TopicPartition::new("t", 3),
            committed: CommittedOffset { offset: 42, metadata: "m".into(), commit_timestamp_ms: 7 },
        };
        let (key, value) = encode(&record);
        assert_eq!(&key[..], b"g");
        assert_eq!(decode(&value).unwrap(), record);
        assert!(decode(&[9, 1, 2]).is_err());
        assert!(decode(&[]).is_err());
    }
}
