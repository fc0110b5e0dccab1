//! [`SessionRouter`]: the runner's table of live sessions.

use crate::executor::{NodeMetricsSnapshot, SessionShared};
use std::collections::HashMap;
use std::sync::{Mutex, Weak};

/// What the router knows about a live session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// The session's id.
    pub session_id: String,
    /// The manifest's `metadata.name`.
    pub pipeline_name: String,
    /// Number of nodes in the pipeline.
    pub node_count: usize,
}

struct Entry {
    info: SessionInfo,
    shared: Weak<SessionShared>,
}

/// Keeps track of every session a runner started. Sessions are isolated from each other
/// (own node instances, channels and state); the router only indexes them for
/// introspection. A session leaves the table when it finishes or its handle is dropped.
#[derive(Default)]
pub struct SessionRouter {
    sessions: Mutex<HashMap<String, Entry>>,
}

impl std::fmt::Debug for SessionRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionRouter")
            .field("active", &self.len())
            .finish()
    }
}

impl SessionRouter {
    pub(crate) fn insert(&self, info: SessionInfo, shared: Weak<SessionShared>) {
        let mut sessions = self.lock();
        sessions.retain(|_, e| is_live(&e.shared));
        sessions.insert(info.session_id.clone(), Entry { info, shared });
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Live sessions, sorted by id.
    pub fn sessions(&self) -> Vec<SessionInfo> {
        let mut sessions = self.lock();
        sessions.retain(|_, e| is_live(&e.shared));
        let mut out: Vec<SessionInfo> = sessions.values().map(|e| e.info.clone()).collect();
        out.sort_by(|a, b| a.session_id.cmp(&b.session_id));
        out
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions().len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every live session has finished and released what it holds (see
    /// [`PipelineSession::wait_finished`](crate::transport::PipelineSession::wait_finished)),
    /// e.g. at the end of a server's shutdown. Returns false when `within` passed first.
    #[cfg(feature = "native")]
    pub async fn wait_idle(&self, within: std::time::Duration) -> bool {
        let live: Vec<std::sync::Arc<SessionShared>> = self
            .lock()
            .values()
            .filter_map(|e| e.shared.upgrade())
            .collect();
        let all = async {
            for shared in &live {
                shared.wait_finished().await;
            }
        };
        tokio::time::timeout(within, all).await.is_ok()
    }

    /// Per-node metrics of a live session.
    pub fn metrics(&self, session_id: &str) -> Option<Vec<NodeMetricsSnapshot>> {
        let sessions = self.lock();
        let shared = sessions.get(session_id)?.shared.upgrade()?;
        Some(shared.metrics_snapshot())
    }
}

fn is_live(shared: &Weak<SessionShared>) -> bool {
    shared.upgrade().is_some_and(|s| !s.is_finished())
}
