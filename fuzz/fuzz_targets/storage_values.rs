//! Values and keys a node reads back from its own disk, as the stores decode them: partition
//! index entries, the time index, partition and producer state, the Raft log's metadata (vote,
//! committed and purged log ids) and the controller's state. Corrupt bytes must be an error,
//! never a panic; a value that decodes must survive its own encoding.

#![no_main]

use eddy_controller::{ClusterMetadata, ControllerTypes, SecurityState};
use eddy_partition::PartitionTypes;
use eddy_partition::dedup::{PartitionState, ProducerState};
use eddy_partition::store::IndexEntry;
use eddy_storage::codec::{decode, encode};
use eddy_storage::kv::keys;
use libfuzzer_sys::fuzz_target;
use openraft::type_config::alias::{EntryOf, LogIdOf, VoteOf};
use serde::Serialize;
use serde::de::DeserializeOwned;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, bytes)) = data.split_first() else { return };
    match selector % 11 {
        0 => round_trip::<IndexEntry>(bytes),
        1 => round_trip::<u64>(bytes),
        2 => round_trip::<PartitionState>(bytes),
        3 => round_trip::<ProducerState>(bytes),
        4 => round_trip::<VoteOf<PartitionTypes>>(bytes),
        5 => round_trip::<Option<LogIdOf<PartitionTypes>>>(bytes),
        6 => round_trip::<ClusterMetadata>(bytes),
        7 => round_trip::<SecurityState>(bytes),
        8 => round_trip::<EntryOf<ControllerTypes>>(bytes),
        9 => round_trip::<EntryOf<PartitionTypes>>(bytes),
        _ => key(bytes),
    }
});

fn round_trip<T: Serialize + DeserializeOwned>(bytes: &[u8]) {
    let Ok(value) = decode::<T>(bytes, "fuzz input") else { return };
    let encoded = encode(&value);
    let again: T = decode(&encoded, "re-encoded fuzz input").expect("a decoded value re-encodes decodably");
    assert_eq!(encode(&again), encoded, "a decoded value survives its own encoding");
}

/// A key as a scan returns it: group prefix and big-endian suffix read back as written.
fn key(bytes: &[u8]) {
    if bytes.len() < 16 {
        return;
    }
    let group = u64::from_be_bytes(bytes[..8].try_into().expect("8 bytes"));
    let n = keys::suffix_u64(bytes);
    assert_eq!(keys::suffix_u64(&keys::group_u64(group, n)), n);
    assert_eq!(&keys::group_u64(group, n)[..], &bytes[..16]);
    // Group u64::MAX has no finite end key above all of its keys; no group gets that id.
    if group < u64::MAX {
        assert!(keys::group_end(group).as_slice() > bytes, "every key of a group sorts before its end");
    }
}
