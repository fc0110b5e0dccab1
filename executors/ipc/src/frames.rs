//! Received frames as items: in place in shared memory, or copied out.

use crate::message::FLAG_PAYLOAD_IS_INPUT;
use crate::Received;
use bytes::Bytes;
use remotemedia_runtime_core::data::{codec, RuntimeData};
use remotemedia_runtime_core::Error;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Which buffer an item's payload lives in (address and length): two items with the same
/// identity share their payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PayloadIdentity {
    address: usize,
    len: usize,
}

/// The identity of `data`'s payload buffer; `None` for items without a shared payload
/// (text, JSON) or with an empty one.
pub fn payload_identity(data: &RuntimeData) -> Option<PayloadIdentity> {
    codec::shared_payload(data)
        .filter(|b| !b.is_empty())
        .map(|b| PayloadIdentity {
            address: b.as_ptr() as usize,
            len: b.len(),
        })
}

/// Keeps a received sample mapped while the data that views it lives.
struct HeldSample {
    sample: Received,
    held: Arc<AtomicUsize>,
}

impl AsRef<[u8]> for HeldSample {
    fn as_ref(&self) -> &[u8] {
        &self.sample
    }
}

impl Drop for HeldSample {
    fn drop(&mut self) {
        self.held.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Turns received samples into items.
///
/// A payload of at least `min_bytes` is used in place — the item views the shared memory
/// and the sample stays mapped while the item lives — as long as fewer than `max_held`
/// samples are held that way; otherwise it is copied out. The bound keeps a side that
/// holds on to its data (a node keeping inputs, a pipeline buffering outputs) from
/// exhausting the samples the other side may loan.
#[derive(Debug)]
pub struct SampleHolder {
    held: Arc<AtomicUsize>,
    min_bytes: usize,
    max_held: usize,
}

impl SampleHolder {
    /// The runtime's policy for outputs: small payloads are cheaper to copy than to keep
    /// mapped, so only those of 64 KiB and more stay in place, at most 8 at once.
    pub fn for_host() -> Self {
        Self::new(64 * 1024, crate::MAX_BORROWED / 2)
    }

    /// The worker's policy for inputs: Python views every payload in place (numpy arrays
    /// over the shared memory), at most 12 at once.
    pub fn for_worker() -> Self {
        Self::new(0, crate::MAX_BORROWED - 4)
    }

    /// A holder with its own thresholds.
    pub fn new(min_bytes: usize, max_held: usize) -> Self {
        Self {
            held: Arc::new(AtomicUsize::new(0)),
            min_bytes,
            max_held,
        }
    }

    /// Samples currently held in place.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Acquire)
    }

    /// The sample's bytes: in place when the policy allows, copied otherwise.
    pub fn bytes(&self, sample: Received) -> Bytes {
        if sample.len() >= self.min_bytes {
            if self.held.fetch_add(1, Ordering::AcqRel) < self.max_held {
                return Bytes::from_owner(HeldSample {
                    sample,
                    held: Arc::clone(&self.held),
                });
            }
            self.held.fetch_sub(1, Ordering::AcqRel);
        }
        Bytes::copy_from_slice(&sample)
    }

    /// Decodes a frame message. With [`FLAG_PAYLOAD_IS_INPUT`] only the head was sent and
    /// the payload is `input`'s, which the receiver holds.
    ///
    /// # Errors
    /// A malformed frame, or a head-only frame without (or not matching) an input.
    pub fn decode(
        &self,
        sample: Received,
        flags: u32,
        input: Option<&RuntimeData>,
    ) -> Result<RuntimeData, Error> {
        if flags & FLAG_PAYLOAD_IS_INPUT != 0 {
            let payload = input.and_then(codec::shared_payload).ok_or_else(|| {
                Error::InvalidData(
                    "a frame refers to an input payload that does not exist".to_owned(),
                )
            })?;
            // The head alone was sent; the payload length it announces is checked against
            // the buffer we hold.
            let header = codec::parse_header_prefix(&sample, usize::MAX)?;
            return codec::decode_parts(&header, payload);
        }
        codec::decode(self.bytes(sample))
    }
}
