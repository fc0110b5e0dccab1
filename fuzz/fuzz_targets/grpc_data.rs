//! A client's data item on the wire: decode the protobuf, convert it as the server does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use remotemedia_grpc::convert::{input_from_proto, to_proto};
use remotemedia_grpc::proto::DataItem;

fuzz_target!(|data: &[u8]| {
    let Ok(item) = DataItem::decode(data) else {
        return;
    };
    if let Ok(input) = input_from_proto(item, "inputs[0]") {
        // What the server accepts it can send back.
        let back = to_proto(&input.data);
        let _ = back.encoded_len();
    }
});
