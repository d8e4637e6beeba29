//! Stored Raft entries of a partition as a fetch reads them: the walk over an entry's bytes
//! that decodes only what it returns (`eddy_partition::stored_records`), held to the full
//! decoding of the entry wherever that succeeds. The bytes stand for a corrupt disk.

#![no_main]

use bytes::Bytes;
use eddy_partition::{PartitionCommand, PartitionTypes};
use libfuzzer_sys::fuzz_target;
use openraft::EntryPayload;
use openraft::type_config::alias::EntryOf;

fuzz_target!(|data: &[u8]| {
    let walked = eddy_partition::stored_records(Bytes::copy_from_slice(data));
    let Ok(entry) = eddy_storage::codec::decode::<EntryOf<PartitionTypes>>(data, "raft log entry") else { return };
    match entry.payload {
        EntryPayload::Normal(PartitionCommand::Append(batch)) => {
            let walked = walked.expect("an entry that decodes whole is walked too");
            assert_eq!(walked, batch.records, "the walk reads the records the full decoding reads");
        }
        _ => assert!(walked.is_err(), "an entry without records is refused by the walk"),
    }
});
