//! Client gRPC requests as a broker decodes them: the first byte picks the message, the rest is
//! its protobuf encoding. A produce request goes through the codec's record count before prost
//! decodes it (as `EddyCodec` does), then through the conversions its handler makes; ACLs and
//! ACL filters through theirs.

#![no_main]

use eddy_broker::convert;
use eddy_proto::v1;
use libfuzzer_sys::fuzz_target;
use prost::Message;

/// The append time the conversions stamp on records produced without one.
const NOW_MS: i64 = 1_700_000_000_000;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    match selector % 12 {
        0 => produce(bytes),
        1 => decode_checked::<v1::FetchRequest>(bytes),
        2 => decode_checked::<v1::SubscribeRequest>(bytes),
        3 => decode_checked::<v1::ListOffsetsRequest>(bytes),
        4 => decode_checked::<v1::CreateTopicRequest>(bytes),
        5 => decode_checked::<v1::AlterTopicRequest>(bytes),
        6 => create_acls(bytes),
        7 => acl_filter(bytes),
        8 => decode_checked::<v1::GroupHeartbeatRequest>(bytes),
        9 => decode_checked::<v1::CommitOffsetsRequest>(bytes),
        10 => fetch_offsets(bytes),
        _ => decode_checked::<v1::InitProducerRequest>(bytes),
    }
});

/// Decodes `bytes` as `M` and, when it decodes, holds its encoding to a second decode.
fn decode_checked<M: Message + Default + PartialEq + std::fmt::Debug>(bytes: &[u8]) {
    let Ok(message) = M::decode(bytes) else { return };
    let again = M::decode(message.encode_to_vec().as_slice()).expect("a decoded message re-encodes decodably");
    assert_eq!(message, again, "a decoded message survives its own encoding");
}

fn produce(bytes: &[u8]) {
    let counted = eddy_proto::codec::produce_record_count(bytes);
    let refused = eddy_proto::codec::check_produce_record_count(bytes).is_err();
    let Ok(request) = v1::ProduceRequest::decode(bytes) else { return };
    // The count before decoding must be the count decoding gives, or a request could pass the
    // check and still decode into more records than the limit.
    assert_eq!(counted, request.records.len(), "the codec counts every record prost decodes");
    assert_eq!(refused, request.records.len() > eddy_limits::BATCH_RECORDS_MAX_LIMIT);
    let wire_sizes: Vec<usize> = request.records.iter().map(eddy_proto::wire_record_size_bytes).collect();
    for (wire, size) in request.records.into_iter().zip(wire_sizes) {
        let record = convert::record_from_wire(wire, NOW_MS);
        assert_eq!(record.size_bytes(), size, "a record's counted size is the same on the wire and converted");
    }
    if let Some(producer) = request.producer {
        let batch = convert::producer_from_wire(producer, 60_000);
        assert_eq!(batch.producer_id, producer.producer_id);
    }
}

fn create_acls(bytes: &[u8]) {
    let Ok(request) = v1::CreateAclsRequest::decode(bytes) else { return };
    for acl in request.acls {
        if let Ok(binding) = convert::acl_from_wire(acl) {
            // What the broker accepted must convert back to an ACL it accepts again.
            let again = convert::acl_from_wire(convert::acl_to_wire(&binding)).expect("an accepted ACL round-trips");
            assert_eq!(binding, again);
        }
    }
}

fn acl_filter(bytes: &[u8]) {
    let Ok(request) = v1::DeleteAclsRequest::decode(bytes) else { return };
    if let Some(filter) = request.filter {
        let _ = convert::acl_filter_from_wire(filter);
    }
}

fn fetch_offsets(bytes: &[u8]) {
    let Ok(request) = v1::FetchOffsetsRequest::decode(bytes) else { return };
    let partitions = convert::partitions_from_wire(request.partitions);
    let again = convert::partitions_from_wire(convert::partitions_to_wire(&partitions));
    assert_eq!(partitions, again, "partitions survive the wire");
}
