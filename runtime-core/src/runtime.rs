//! The two things the executor needs from its host: a way to spawn tasks and a clock.
//!
//! With the `native` feature (the default) tasks go to the current tokio runtime — multi-
//! or single-threaded, both work — and the clock is the OS monotonic clock. Without it
//! (e.g. `wasm32-unknown-unknown`), the host passes a [`Spawner`] to
//! [`PipelineRunner::with_spawner`](crate::transport::PipelineRunner::with_spawner) and may
//! install a clock with [`set_clock`] (otherwise latency metrics read zero).

use futures::future::BoxFuture;
use std::sync::OnceLock;

/// Spawns the executor's tasks (one per node per session).
pub trait Spawner: Send + Sync + 'static {
    /// Runs `task` to completion in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>) -> crate::Result<()>;
}

/// Spawns onto the tokio runtime the caller is running in.
#[cfg(feature = "native")]
#[derive(Debug, Default, Clone, Copy)]
pub struct TokioSpawner;

#[cfg(feature = "native")]
impl Spawner for TokioSpawner {
    fn spawn(&self, task: BoxFuture<'static, ()>) -> crate::Result<()> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            crate::Error::NoSpawner(
                "pipelines must run inside a tokio runtime (e.g. #[tokio::main])".to_owned(),
            )
        })?;
        handle.spawn(task);
        Ok(())
    }
}

/// The default spawner for this build: tokio with `native`, none otherwise.
pub(crate) fn default_spawner() -> Option<std::sync::Arc<dyn Spawner>> {
    #[cfg(feature = "native")]
    {
        Some(std::sync::Arc::new(TokioSpawner))
    }
    #[cfg(not(feature = "native"))]
    {
        None
    }
}

static CLOCK: OnceLock<fn() -> u64> = OnceLock::new();

/// Installs the monotonic clock (nanoseconds) used for latency metrics. Only the first call
/// takes effect; native builds use the OS clock unless one is installed first.
pub fn set_clock(clock: fn() -> u64) {
    let _ = CLOCK.set(clock);
}

/// Monotonic nanoseconds from an arbitrary origin.
pub(crate) fn now_nanos() -> u64 {
    if let Some(clock) = CLOCK.get() {
        return clock();
    }
    os_clock_nanos()
}

#[cfg(feature = "native")]
fn os_clock_nanos() -> u64 {
    static ORIGIN: OnceLock<std::time::Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(std::time::Instant::now);
    origin.elapsed().as_nanos() as u64
}

#[cfg(not(feature = "native"))]
fn os_clock_nanos() -> u64 {
    0
}
