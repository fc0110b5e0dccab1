//! A media file from a user: the file ingest plugin decodes whatever bytes it is given
//! (WAV, FLAC, MP3, OGG/Vorbis probing) to the end or to a clear error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remotemedia_runtime_core::ingestion::{global_ingest_registry, IngestConfig};
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = std::env::temp_dir().join(format!("remotemedia-fuzz-{}.media", std::process::id()));
    if std::fs::write(&path, data).is_err() {
        return;
    }
    runtime().block_on(async {
        let config = IngestConfig::from_url(path.display().to_string());
        let Ok(source) = global_ingest_registry().create_from_uri(&config) else {
            return;
        };
        let Ok(mut stream) = source.start().await else {
            return;
        };
        let mut items = 0usize;
        while stream.recv().await.is_some() {
            items += 1;
            // A few seconds of audio at most from inputs this small.
            assert!(items < 1_000_000, "endless stream");
        }
    });
});
