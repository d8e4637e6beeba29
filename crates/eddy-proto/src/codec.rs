//! The gRPC codec of every Eddy service, client and server: prost's, with one check made on the
//! raw bytes of a produce request before it is decoded.
//!
//! Decoding is where a request's memory is spent: an empty record is two bytes on the wire and
//! about a hundred once decoded, so a produce request within the message size limit could still
//! decode into millions of records (a 16 MiB request took a broker from 50 MiB to 1.8 GiB before
//! the record count was checked). Counting the records field in the encoded message costs one
//! pass over its top-level fields and allocates nothing.

use std::any::TypeId;
use std::marker::PhantomData;

use eddy_limits::BATCH_RECORDS_MAX_LIMIT;
use prost::Message;
use tonic::Status;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

use crate::{Reason, v1};

/// Field number of `ProduceRequest.records`.
const PRODUCE_RECORDS_FIELD: u64 = 3;

/// Prost's codec with the produce request's record count checked before decoding.
#[derive(Debug, Clone)]
pub struct EddyCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for EddyCodec<T, U> {
    fn default() -> Self {
        Self { inner: ProstCodec::default() }
    }
}

impl<T, U> tonic::codec::Codec for EddyCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = EddyDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        EddyDecoder { inner: self.inner.decoder(), _message: PhantomData }
    }
}

/// Prost's decoder, refusing a produce request of too many records before decoding it.
#[derive(Debug)]
pub struct EddyDecoder<U> {
    inner: ProstDecoder<U>,
    _message: PhantomData<U>,
}

impl<U: Message + Default + 'static> Decoder for EddyDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        if TypeId::of::<U>() == TypeId::of::<v1::ProduceRequest>() {
            use bytes::Buf;
            check_produce_record_count(buf.chunk())?;
        }
        self.inner.decode(buf)
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.inner.buffer_settings()
    }
}

/// Refuses an encoded produce request of more records than a broker decodes, before decoding
/// it: the decoder's check, public so the fuzz targets run the same one on their inputs.
pub fn check_produce_record_count(bytes: &[u8]) -> Result<(), Status> {
    let count = produce_record_count(bytes);
    if count > BATCH_RECORDS_MAX_LIMIT {
        return Err(crate::reason::status(
            Reason::BatchTooLarge,
            format!(
                "the batch holds {count} records, above the limit of {BATCH_RECORDS_MAX_LIMIT} records a broker \
                 decodes; split it"
            ),
            [("limit".to_string(), BATCH_RECORDS_MAX_LIMIT.to_string())].into(),
        ));
    }
    Ok(())
}

/// How many records the encoded produce request `bytes` holds, counted without decoding it.
pub fn produce_record_count(bytes: &[u8]) -> usize {
    count_field(bytes, PRODUCE_RECORDS_FIELD)
}

/// How many times top-level field `field` occurs in the encoded message `bytes`. A malformed
/// message is counted as far as it can be read: decoding it reports the error.
fn count_field(mut bytes: &[u8], field: u64) -> usize {
    let mut count = 0;
    // How many groups the reader is inside. Eddy's messages have none, but prost skips an
    // unknown group whole, fields inside it included; stopping at one instead would let a
    // request hide any number of records behind it.
    let mut depth = 0usize;
    while !bytes.is_empty() {
        let Some(key) = varint(&mut bytes) else { break };
        let skip = match key & 7 {
            0 => match varint(&mut bytes) {
                Some(_) => 0,
                None => break,
            },
            1 => 8,
            2 => match varint(&mut bytes).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => n,
                None => break,
            },
            3 => {
                depth += 1;
                continue;
            }
            4 => match depth.checked_sub(1) {
                Some(outer) => {
                    depth = outer;
                    continue;
                }
                None => break,
            },
            5 => 4,
            // Anything else is malformed.
            _ => break,
        };
        if skip > bytes.len() {
            break;
        }
        bytes = &bytes[skip..];
        if depth == 0 && key >> 3 == field {
            count += 1;
        }
    }
    count
}

/// Reads a base-128 varint from the front of `bytes`.
fn varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in bytes.iter().take(10).enumerate() {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *bytes = &bytes[i + 1..];
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn produce(records: usize) -> v1::ProduceRequest {
        v1::ProduceRequest {
            topic: "t".into(),
            partition: 3,
            records: (0..records)
                .map(|i| v1::Record {
                    key: (i % 2 == 0).then(|| vec![1, 2].into()),
                    value: vec![0; i % 300].into(),
                    headers: vec![v1::Header { key: "h".into(), value: vec![9].into() }],
                    timestamp_ms: i as i64,
                })
                .collect(),
            acks: v1::Acks::All as i32,
            producer: Some(v1::ProducerIdentity { producer_id: 7, epoch: 1, first_sequence: 99 }),
            timeout_ms: 1_000,
        }
    }

    #[test]
    fn counts_the_records_of_an_encoded_request() {
        for n in [0, 1, 2, 127, 128, 1_000] {
            assert_eq!(count_field(&produce(n).encode_to_vec(), PRODUCE_RECORDS_FIELD), n);
        }
    }

    #[test]
    fn malformed_input_is_counted_without_panicking() {
        let bytes = produce(50).encode_to_vec();
        for cut in [1, 2, 5, 17, bytes.len() / 2, bytes.len() - 1] {
            assert!(count_field(&bytes[..cut], PRODUCE_RECORDS_FIELD) <= 50);
        }
        assert_eq!(count_field(&[0xff; 11], PRODUCE_RECORDS_FIELD), 0);
        assert_eq!(count_field(&[0x1a, 0xff, 0xff, 0xff, 0xff, 0x0f], PRODUCE_RECORDS_FIELD), 0);
    }

    #[test]
    fn records_after_an_unknown_group_are_counted() {
        // An unknown field of the deprecated group wire type (field 15: start 0x7b, end 0x7c)
        // holding a varint field, before three records: prost skips the group and decodes all
        // three, so the count before decoding must see them too, or a request could carry any
        // number of records past the limit behind one group.
        let mut bytes = vec![0x7b, 0x08, 0x01, 0x7c];
        bytes.extend(produce(3).encode_to_vec());
        let decoded = v1::ProduceRequest::decode(bytes.as_slice()).expect("prost skips unknown groups");
        assert_eq!(decoded.records.len(), 3);
        assert_eq!(produce_record_count(&bytes), 3);
        // A record inside a group is the group's field, not the request's.
        let nested = [0x7b, 0x1a, 0x00, 0x7c];
        assert_eq!(v1::ProduceRequest::decode(nested.as_slice()).expect("a well-formed group").records.len(), 0);
        assert_eq!(produce_record_count(&nested), 0);
    }
}
