//! [`AudioSamples`]: a cheaply clonable, sliceable buffer of f32 samples.

use bytes::Bytes;
use std::fmt;
use std::ops::{Deref, Range};

/// Interleaved f32 samples behind a reference-counted buffer.
///
/// Cloning and [`slice`](AudioSamples::slice) are O(1) and never copy. The buffer can own a
/// `Vec<f32>` (no copy on conversion) or any foreign memory that exposes `[f32]`
/// ([`from_owner`](AudioSamples::from_owner)) — a numpy array, a shared-memory sample — so
/// transports hand audio to the runtime without copying it.
///
/// ```
/// use remotemedia_runtime_core::data::AudioSamples;
///
/// let samples = AudioSamples::from(vec![0.0f32, 0.5, -0.5, 1.0]);
/// let tail = samples.slice(2..4);
/// assert_eq!(&*tail, &[-0.5, 1.0]);
/// assert_eq!(tail.as_ptr(), samples[2..].as_ptr()); // same memory
/// ```
#[derive(Clone)]
pub struct AudioSamples {
    // Invariant: the pointer is aligned for f32 and the length is a multiple of 4.
    bytes: Bytes,
}

struct F32Owner<T>(T);

impl<T: AsRef<[f32]>> AsRef<[u8]> for F32Owner<T> {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(self.0.as_ref())
    }
}

impl AudioSamples {
    /// An empty buffer.
    pub fn empty() -> Self {
        Self::from(Vec::new())
    }

    /// Wraps memory owned by `owner` without copying it. The owner is dropped when the last
    /// clone or slice of the buffer is dropped.
    pub fn from_owner<T>(owner: T) -> Self
    where
        T: AsRef<[f32]> + Send + 'static,
    {
        Self {
            bytes: Bytes::from_owner(F32Owner(owner)),
        }
    }

    /// Interprets native-endian bytes as f32 samples. Zero-copy when `bytes` is 4-byte
    /// aligned; copies once otherwise. Fails when the length is not a multiple of 4.
    pub fn from_bytes(bytes: Bytes) -> crate::Result<Self> {
        if bytes.len() % 4 != 0 {
            return Err(crate::Error::InvalidData(format!(
                "audio payload of {} bytes is not a whole number of f32 samples",
                bytes.len()
            )));
        }
        if bytes.is_empty() || bytes.as_ptr().align_offset(std::mem::align_of::<f32>()) == 0 {
            return Ok(Self { bytes });
        }
        let samples: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_ne_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        Ok(Self::from(samples))
    }

    /// The samples as a slice.
    pub fn as_slice(&self) -> &[f32] {
        if self.bytes.is_empty() {
            return &[];
        }
        bytemuck::cast_slice(&self.bytes)
    }

    /// The samples' bytes in native endianness, sharing the buffer.
    pub fn as_bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// A view of `range` (in samples, not bytes) sharing the same buffer.
    ///
    /// # Panics
    /// When the range is out of bounds, like slice indexing.
    pub fn slice(&self, range: Range<usize>) -> Self {
        assert!(
            range.start <= range.end && range.end <= self.len(),
            "sample range {range:?} out of bounds for {} samples",
            self.len()
        );
        Self {
            bytes: self.bytes.slice(range.start * 4..range.end * 4),
        }
    }
}

impl Deref for AudioSamples {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        self.as_slice()
    }
}

impl AsRef<[f32]> for AudioSamples {
    fn as_ref(&self) -> &[f32] {
        self.as_slice()
    }
}

impl From<Vec<f32>> for AudioSamples {
    fn from(samples: Vec<f32>) -> Self {
        Self::from_owner(samples)
    }
}

impl From<&[f32]> for AudioSamples {
    fn from(samples: &[f32]) -> Self {
        Self::from(samples.to_vec())
    }
}

impl From<std::sync::Arc<[f32]>> for AudioSamples {
    fn from(samples: std::sync::Arc<[f32]>) -> Self {
        Self::from_owner(samples)
    }
}

impl Default for AudioSamples {
    fn default() -> Self {
        Self::empty()
    }
}

impl PartialEq for AudioSamples {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl fmt::Debug for AudioSamples {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AudioSamples(len={})", self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vec_conversion_does_not_copy() {
        let v = vec![1.0f32, 2.0, 3.0];
        let ptr = v.as_ptr();
        let s = AudioSamples::from(v);
        assert_eq!(s.as_ptr(), ptr);
    }

    #[test]
    fn misaligned_bytes_are_copied_once_and_read_correctly() {
        let mut raw = vec![0u8; 9];
        raw[1..5].copy_from_slice(&0.25f32.to_ne_bytes());
        raw[5..9].copy_from_slice(&(-1.0f32).to_ne_bytes());
        let b = Bytes::from(raw).slice(1..9);
        let s = AudioSamples::from_bytes(b).expect("8 bytes are two samples");
        assert_eq!(&*s, &[0.25, -1.0]);
    }

    #[test]
    fn odd_byte_length_is_rejected() {
        let err = AudioSamples::from_bytes(Bytes::from_static(&[0, 0, 0])).unwrap_err();
        assert!(err.to_string().contains("3 bytes"), "{err}");
    }
}
