//! The REST API's query strings as axum's `Query` extractor decodes them (serde_urlencoded):
//! a produce's, a partition read's, an SSE stream's (with its resume positions) and a group
//! read's. Decoding ends in the parameters or an error, never a panic. The first byte picks
//! the query.

#![no_main]

use eddy_http::rest::groups::GroupReadQuery;
use eddy_http::rest::model::{ProduceQuery, ReadQuery};
use eddy_http::rest::records::{StreamQuery, parse_event_id};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, query)) = data.split_first() else { return };
    match selector % 4 {
        0 => {
            let _ = serde_urlencoded::from_bytes::<ProduceQuery>(query);
        }
        1 => {
            let _ = serde_urlencoded::from_bytes::<ReadQuery>(query);
        }
        2 => {
            let Ok(stream) = serde_urlencoded::from_bytes::<StreamQuery>(query) else { return };
            // A stream resumes after the records its event id names; the positions it reads
            // must print back to the same positions.
            if let Some(Ok(positions)) = stream.last_event_id.as_deref().map(parse_event_id) {
                let printed: Vec<String> = positions.iter().map(|(p, o)| format!("{p}:{o}")).collect();
                assert_eq!(parse_event_id(&printed.join(",")).ok(), Some(positions));
            }
        }
        _ => {
            let _ = serde_urlencoded::from_bytes::<GroupReadQuery>(query);
        }
    }
});
