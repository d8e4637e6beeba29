//! The REST API's request bodies, as axum's JSON extractor hands them to the handlers: a
//! produce body and its values and keys in each encoding (`Encoding::to_bytes`), a topic to
//! create, a group's commit. The first byte picks the body. Record bytes must also survive the
//! encoding the API writes them back in (JSON as its compact form).

#![no_main]

use eddy_http::rest::groups::CommitBody;
use eddy_http::rest::model::{CreateTopicBody, Encoding, ProduceBody};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    match selector % 4 {
        0 => {
            let Ok(produce) = serde_json::from_slice::<ProduceBody>(body) else { return };
            for (i, record) in produce.records.iter().enumerate() {
                if let Some(key) = &record.key {
                    let _ = produce.key_encoding.to_bytes(key, &format!("records[{i}].key"));
                }
                if let Ok(bytes) = produce.value_encoding.to_bytes(&record.value, &format!("records[{i}].value")) {
                    round_trip(&bytes);
                }
            }
        }
        1 => {
            let _ = serde_json::from_slice::<CreateTopicBody>(body);
        }
        2 => {
            let _ = serde_json::from_slice::<CommitBody>(body);
        }
        // Record bytes as a fetch answers them: the encoding chosen must give the bytes back.
        _ => round_trip(&bytes::Bytes::copy_from_slice(body)),
    }
});

/// JSON bytes come back as their compact form, the other encodings byte for byte.
fn round_trip(bytes: &bytes::Bytes) {
    for encoding in [Encoding::Json, Encoding::String, Encoding::Base64] {
        let (value, used) = encoding.encode(bytes);
        let back = used.to_bytes(&value, "value").expect("an encoded value decodes");
        if used != Encoding::Json {
            assert_eq!(&back, bytes, "{encoding:?} (written as {used:?}) gives the bytes back");
        }
    }
}
