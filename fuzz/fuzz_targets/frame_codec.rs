//! Frames from a worker process: decode any bytes; what decodes must re-encode to a frame
//! that decodes to the same item.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remotemedia_runtime_core::data::codec;

fuzz_target!(|data: &[u8]| {
    let Ok(item) = codec::decode(bytes::Bytes::copy_from_slice(data)) else {
        return;
    };
    let again = codec::decode(bytes::Bytes::from(codec::encode(&item)))
        .expect("what decodes once re-encodes to a frame that decodes");
    // NaN payloads compare unequal to themselves; compare the encodings instead.
    assert_eq!(codec::encode(&again), codec::encode(&item));
});
