//! [`PerStream`]: the state a stateful audio node keeps for each track.

use crate::{Error, Result};
use std::sync::Arc;

/// Tracks a node keeps state for at most; audio of a further `stream_id` is an error
/// (a client cannot make a node grow without bound by inventing track names).
pub(crate) const MAX_STREAMS: usize = 64;

/// One state per audio track, keyed by `stream_id` (audio without a tag is one track of
/// its own), in the order the tracks first appeared. Every stateful audio node keeps its
/// state here, so two tracks never mix in one detector, buffer or resampler.
#[derive(Debug, Clone)]
pub(crate) struct PerStream<S> {
    entries: Vec<(Option<Arc<str>>, S)>,
}

impl<S> Default for PerStream<S> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

fn same(a: &Option<Arc<str>>, b: Option<&str>) -> bool {
    a.as_deref() == b
}

impl<S> PerStream<S> {
    /// The state of `stream_id`, if it has one.
    pub(crate) fn get_mut(&mut self, stream_id: Option<&str>) -> Option<&mut S> {
        self.entries
            .iter_mut()
            .find(|(id, _)| same(id, stream_id))
            .map(|(_, state)| state)
    }

    /// The state of `stream_id`, made by `make` when the track is new.
    ///
    /// # Errors
    /// A new track beyond [`MAX_STREAMS`], or what `make` returns.
    pub(crate) fn get_or_insert_with(
        &mut self,
        stream_id: &Option<Arc<str>>,
        make: impl FnOnce() -> Result<S>,
    ) -> Result<&mut S> {
        let index = match self
            .entries
            .iter()
            .position(|(id, _)| same(id, stream_id.as_deref()))
        {
            Some(index) => index,
            None => {
                if self.entries.len() >= MAX_STREAMS {
                    return Err(Error::node(format!(
                        "audio of a {}th track ({}) arrived; a node keeps state for at most {MAX_STREAMS} tracks",
                        MAX_STREAMS + 1,
                        stream_id.as_deref().unwrap_or("untagged")
                    )));
                }
                self.entries.push((stream_id.clone(), make()?));
                self.entries.len() - 1
            }
        };
        Ok(&mut self.entries[index].1)
    }

    /// Removes the state of `stream_id` and returns it.
    pub(crate) fn remove(&mut self, stream_id: Option<&str>) -> Option<S> {
        let index = self
            .entries
            .iter()
            .position(|(id, _)| same(id, stream_id))?;
        Some(self.entries.remove(index).1)
    }

    /// Takes every track's state out, in first-seen order.
    pub(crate) fn take_all(&mut self) -> Vec<(Option<Arc<str>>, S)> {
        std::mem::take(&mut self.entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_are_kept_apart_and_untagged_audio_is_a_track_of_its_own() {
        let mut streams: PerStream<u32> = PerStream::default();
        *streams
            .get_or_insert_with(&Some("audio:0".into()), || Ok(0))
            .expect("new") += 1;
        *streams
            .get_or_insert_with(&Some("audio:1".into()), || Ok(10))
            .expect("new") += 1;
        *streams.get_or_insert_with(&None, || Ok(100)).expect("new") += 1;
        *streams
            .get_or_insert_with(&Some("audio:0".into()), || Ok(0))
            .expect("existing") += 1;
        let all: Vec<(Option<String>, u32)> = streams
            .take_all()
            .into_iter()
            .map(|(id, v)| (id.as_deref().map(str::to_owned), v))
            .collect();
        assert_eq!(
            all,
            [
                (Some("audio:0".to_owned()), 2),
                (Some("audio:1".to_owned()), 11),
                (None, 101)
            ]
        );
    }

    #[test]
    fn the_number_of_tracks_is_bounded() {
        let mut streams: PerStream<()> = PerStream::default();
        for i in 0..MAX_STREAMS {
            streams
                .get_or_insert_with(&Some(format!("audio:{i}").into()), || Ok(()))
                .expect("within the limit");
        }
        let err = streams
            .get_or_insert_with(&Some("audio:x".into()), || Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("at most 64 tracks"), "{err}");
    }
}
