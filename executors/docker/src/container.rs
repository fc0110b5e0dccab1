//! Containers: started on demand, shared by every node instance whose image and limits
//! are identical, reference counted, stopped a grace period after their last node ends,
//! watched (exit, OOM kill, health) and cleaned up — after a crash of the runtime too.
//!
//! Each container runs the agent (`python -m remotemedia.container`) as its first
//! process, with a private directory of the host bind-mounted alone at `/domain`: the
//! agent's socket and the iceoryx2 domain of every channel to its workers live there.
//! The runtime keeps one connection to the agent open, its *lifeline*: it carries the
//! health checks, and when it closes — the runtime exited or was killed — the agent ends
//! its workers and exits, which stops the container. Containers carry labels naming the
//! runtime that started them, so the next runtime removes those a dead one left.

use crate::config::{DockerConfig, DockerNodeSettings};
use crate::image::MANAGED_LABEL;
use bollard::models::{ContainerCreateBody, DeviceRequest, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, KillContainerOptionsBuilder, ListContainersOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use bollard::Docker;
use futures::StreamExt;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

/// Label: the runtime instance that started a container (`pid-starttime`).
pub const RUNTIME_LABEL: &str = "io.remotemedia.runtime";
/// Label: the container's private directory on the host.
pub const DOMAIN_LABEL: &str = "io.remotemedia.domain";
/// Label: the container key (what nodes sharing it have in common).
pub const KEY_LABEL: &str = "io.remotemedia.key";
/// The private directory inside the container.
pub const DOMAIN_IN_CONTAINER: &str = "/domain";
/// The agent's socket, relative to the private directory.
pub const AGENT_SOCKET: &str = "agent.sock";

/// Why a container stopped serving.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fate {
    /// The kernel's OOM killer ended it (or a process in it) at the memory limit.
    OutOfMemory {
        /// The limit, MiB.
        limit_mb: u64,
    },
    /// It exited.
    Exited {
        /// Its exit code.
        code: i64,
    },
    /// It stopped answering health checks and was killed.
    Hung {
        /// How long it had not answered.
        waited: Duration,
    },
    /// The runtime removed it.
    Removed,
}

impl Fate {
    /// After "the Python worker (pid N in container X)".
    pub fn describe(&self) -> String {
        match self {
            Fate::OutOfMemory { limit_mb } => {
                format!("was killed: container exceeded its {limit_mb} MiB memory limit")
            }
            Fate::Exited { code } => format!("was lost: its container stopped (exit code {code})"),
            Fate::Hung { waited } => format!(
                "was lost: its container stopped answering (no reply to a health check within {:.0} s) and was killed",
                waited.as_secs_f64()
            ),
            Fate::Removed => "was lost: its container was removed".to_owned(),
        }
    }
}

/// One running container and what the runtime knows about it.
#[derive(Debug)]
pub struct Container {
    /// Its name (`rm-<key>-<pid>-<n>`).
    pub name: String,
    /// The engine's id.
    pub id: String,
    /// Its private directory on the host.
    pub domain: PathBuf,
    /// Its memory limit, MiB.
    pub memory_mb: u64,
    key: String,
    users: Mutex<usize>,
    /// Bumped whenever the container gains a user: a grace timer started before is void.
    generation: AtomicU64,
    fate: Mutex<Option<Fate>>,
    fate_known: Condvar,
    stop: tokio::sync::Notify,
}

impl Container {
    /// Why it stopped, if it has.
    pub fn fate(&self) -> Option<Fate> {
        self.fate.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits up to `limit` for the container's fate to be known.
    pub fn wait_for_fate(&self, limit: Duration) -> Option<Fate> {
        let deadline = Instant::now() + limit;
        let mut fate = self.fate.lock().unwrap_or_else(|p| p.into_inner());
        while fate.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            fate = self
                .fate_known
                .wait_timeout(fate, left)
                .map(|(guard, _)| guard)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        fate.clone()
    }

    fn set_fate(&self, fate: Fate) {
        let mut current = self.fate.lock().unwrap_or_else(|p| p.into_inner());
        if current.is_none() {
            *current = Some(fate);
        }
        self.fate_known.notify_all();
    }

    /// The agent's socket on the host.
    pub fn agent_socket(&self) -> PathBuf {
        self.domain.join(AGENT_SOCKET)
    }

    /// Node instances using it now.
    pub fn users(&self) -> usize {
        *self.users.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A node instance's share of a container; the container's count drops with it.
#[derive(Debug)]
pub struct Lease {
    /// The container.
    pub container: Arc<Container>,
    pool: Arc<PoolInner>,
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut users = self
            .container
            .users
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *users = users.saturating_sub(1);
        if *users > 0 {
            return;
        }
        drop(users);
        let generation = self.container.generation.load(Ordering::Acquire);
        let container = Arc::clone(&self.container);
        let pool = Arc::clone(&self.pool);
        let grace = pool.config.grace_period;
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime to wait in (the process is ending): the lifeline closes with it.
            return;
        };
        handle.spawn(async move {
            tokio::time::sleep(grace).await;
            let idle = container.users() == 0
                && container.generation.load(Ordering::Acquire) == generation;
            if idle {
                tracing::debug!(container = %container.name, "grace period over: stopping the idle container");
                pool.retire(&container).await;
            }
        });
    }
}

#[derive(Debug)]
struct PoolInner {
    docker: Docker,
    config: DockerConfig,
    instance: String,
    containers: Mutex<HashMap<String, Arc<Container>>>,
    starting: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

/// Every container this runtime runs.
#[derive(Debug, Clone)]
pub struct Containers {
    inner: Arc<PoolInner>,
}

/// This process, as the labels name it: pid and start time (a reused pid differs in
/// start time).
pub fn runtime_instance() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        start_time(std::process::id()).unwrap_or(0)
    )
}

fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (in parentheses); start time is field 22.
    stat.rsplit(')')
        .next()?
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()
}

/// Whether the runtime instance `label` names is still running.
fn instance_alive(label: &str) -> bool {
    let Some((pid, started)) = label.split_once('-') else {
        return false;
    };
    match (pid.parse::<u32>(), started.parse::<u64>()) {
        (Ok(pid), Ok(started)) => start_time(pid) == Some(started),
        _ => false,
    }
}

fn chown(path: &Path, (uid, gid): (u32, u32)) -> std::io::Result<()> {
    std::os::unix::fs::chown(path, Some(uid), Some(gid))
}

impl Containers {
    /// The containers of this runtime, on `docker`.
    pub fn new(docker: Docker, config: DockerConfig) -> Self {
        Self {
            inner: Arc::new(PoolInner {
                docker,
                config,
                instance: runtime_instance(),
                containers: Mutex::new(HashMap::new()),
                starting: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Running containers.
    pub fn running(&self) -> Vec<Arc<Container>> {
        self.inner
            .containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Removes the containers (and their directories) that runtimes no longer running
    /// left behind; returns their names.
    pub async fn remove_stale(&self) -> Result<Vec<String>, String> {
        self.inner.remove_stale(false).await
    }

    /// Removes every container of this backend that no running runtime uses, this one's
    /// idle ones included.
    pub async fn prune(&self) -> Result<Vec<String>, String> {
        let idle: Vec<Arc<Container>> = self
            .running()
            .into_iter()
            .filter(|c| c.users() == 0)
            .collect();
        let mut removed = Vec::new();
        for container in idle {
            self.inner.retire(&container).await;
            removed.push(container.name.clone());
        }
        removed.extend(self.inner.remove_stale(false).await?);
        Ok(removed)
    }

    /// Stops and removes every container of this runtime.
    pub async fn retire_all(&self) {
        for container in self.running() {
            self.inner.retire(&container).await;
        }
    }

    /// A share of the container for `settings` running `image`, started if none runs.
    pub async fn acquire(
        &self,
        settings: &DockerNodeSettings,
        image: &str,
    ) -> Result<Lease, String> {
        let key = format!(
            "{}-{}",
            settings.container_key(),
            &image[image.len().saturating_sub(8)..]
        );
        let lock = {
            let mut starting = self
                .inner
                .starting
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            Arc::clone(starting.entry(key.clone()).or_default())
        };
        let _one_start = lock.lock().await;
        if let Some(container) = self.shared(&key) {
            return Ok(Lease {
                container,
                pool: Arc::clone(&self.inner),
            });
        }
        let count = self.running().len();
        if count >= self.inner.config.max_containers {
            return Err(format!(
                "{count} containers are running, the limit (DockerConfig::max_containers) is {}",
                self.inner.config.max_containers
            ));
        }
        let container = self.inner.start(&key, settings, image).await?;
        *container.users.lock().unwrap_or_else(|p| p.into_inner()) = 1;
        self.inner
            .containers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, Arc::clone(&container));
        Ok(Lease {
            container,
            pool: Arc::clone(&self.inner),
        })
    }

    /// The running container for `key` with one more user, if there is one.
    fn shared(&self, key: &str) -> Option<Arc<Container>> {
        let containers = self
            .inner
            .containers
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let container = containers.get(key)?;
        if container.fate().is_some() {
            return None;
        }
        let mut users = container.users.lock().unwrap_or_else(|p| p.into_inner());
        *users += 1;
        container.generation.fetch_add(1, Ordering::AcqRel);
        drop(users);
        Some(Arc::clone(container))
    }
}

impl PoolInner {
    fn domain_for(&self, name: &str) -> PathBuf {
        self.config.domains_dir.join(name.trim_start_matches("rm-"))
    }

    async fn start(
        self: &Arc<Self>,
        key: &str,
        settings: &DockerNodeSettings,
        image: &str,
    ) -> Result<Arc<Container>, String> {
        let started = Instant::now();
        static STARTED: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "rm-{}-{}-{}",
            &key[..12.min(key.len())],
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        );
        let domain = self.domain_for(&name);
        let user = self.config.user();
        std::fs::create_dir_all(&domain)
            .and_then(|_| {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&domain, std::fs::Permissions::from_mode(0o700))
            })
            .and_then(|_| chown(&domain, user))
            .map_err(|e| {
                format!(
                    "cannot prepare the container's directory {}: {e}",
                    domain.display()
                )
            })?;
        let python = settings.image.python().interpreter();
        let mut env: Vec<String> = settings
            .env
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        env.push("PYTHONUNBUFFERED=1".to_owned());
        let mut binds = vec![format!("{}:{DOMAIN_IN_CONTAINER}:rw", domain.display())];
        binds.extend(settings.volumes.iter().map(|v| {
            format!(
                "{}:{}:{}",
                v.host.display(),
                v.container,
                if v.read_only { "ro" } else { "rw" }
            )
        }));
        let labels = HashMap::from([
            (MANAGED_LABEL.to_owned(), "true".to_owned()),
            (RUNTIME_LABEL.to_owned(), self.instance.clone()),
            (DOMAIN_LABEL.to_owned(), domain.display().to_string()),
            (KEY_LABEL.to_owned(), key.to_owned()),
        ]);
        let limits = &settings.limits;
        let memory = (limits.memory_mb as i64) << 20;
        let host_config = HostConfig {
            network_mode: Some("none".to_owned()),
            cap_drop: Some(vec!["ALL".to_owned()]),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            readonly_rootfs: Some(true),
            tmpfs: Some(HashMap::from([(
                "/tmp".to_owned(),
                format!(
                    "rw,nosuid,nodev,size={}m,mode=1777",
                    self.config.tmp_size_mb
                ),
            )])),
            ipc_mode: Some("private".to_owned()),
            pid_mode: None,
            memory: Some(memory),
            memory_swap: Some(memory),
            nano_cpus: limits.cpu_cores.map(|c| (c * 1e9) as i64),
            pids_limit: Some(limits.pids as i64),
            shm_size: Some((limits.shm_size_mb as i64) << 20),
            binds: Some(binds),
            init: Some(false),
            device_requests: limits.gpu.then(|| {
                vec![DeviceRequest {
                    count: Some(-1),
                    capabilities: Some(vec![vec!["gpu".to_owned()]]),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        };
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec![
                python,
                "-u".to_owned(),
                "-m".to_owned(),
                "remotemedia.container".to_owned(),
                format!("{DOMAIN_IN_CONTAINER}/{AGENT_SOCKET}"),
            ]),
            user: Some(format!("{}:{}", user.0, user.1)),
            env: Some(env),
            labels: Some(labels),
            working_dir: Some("/tmp".to_owned()),
            host_config: Some(host_config),
            ..Default::default()
        };
        let created = self
            .docker
            .create_container(
                Some(CreateContainerOptionsBuilder::default().name(&name).build()),
                body,
            )
            .await
            .map_err(|e| format!("cannot create container {name} from {image}: {e}"))?;
        let id = created.id;
        if let Err(e) = self.docker.start_container(&id, None).await {
            let _ = self.remove(&id, &domain).await;
            return Err(format!("cannot start container {name}: {e}"));
        }
        let container = Arc::new(Container {
            name: name.clone(),
            id: id.clone(),
            domain,
            memory_mb: limits.memory_mb,
            key: key.to_owned(),
            users: Mutex::new(0),
            generation: AtomicU64::new(0),
            fate: Mutex::new(None),
            fate_known: Condvar::new(),
            stop: tokio::sync::Notify::new(),
        });
        self.watch_exit(&container);
        let lifeline = match self
            .connect_lifeline(&container, started + self.config.init_timeout)
            .await
        {
            Ok(stream) => stream,
            Err(e) => {
                let logs = self.logs(&id).await;
                container.set_fate(Fate::Removed);
                let _ = self.remove(&id, &container.domain).await;
                return Err(format!(
                    "container {name} did not start its agent: {e}{logs}"
                ));
            }
        };
        self.watch_health(&container, lifeline);
        tracing::info!(container = %name, image, elapsed_ms = started.elapsed().as_millis() as u64,
            "container started");
        Ok(container)
    }

    /// The container's last log lines, for start-up errors.
    async fn logs(&self, id: &str) -> String {
        let options = bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .tail("20")
            .build();
        let mut stream = self.docker.logs(id, Some(options));
        let mut text = String::new();
        while let Some(Ok(chunk)) = stream.next().await {
            text.push_str(&chunk.to_string());
        }
        if text.trim().is_empty() {
            String::new()
        } else {
            format!(
                "\n--- container output (last lines) ---\n{}",
                text.trim_end()
            )
        }
    }

    /// Connects to the agent, retrying while it starts.
    async fn connect_lifeline(
        &self,
        container: &Container,
        deadline: Instant,
    ) -> Result<tokio::net::UnixStream, String> {
        let socket = container.agent_socket();
        loop {
            match tokio::net::UnixStream::connect(&socket).await {
                Ok(mut stream) => {
                    stream
                        .write_all(b"{\"kind\": \"lifeline\"}\n")
                        .await
                        .map_err(|e| format!("cannot talk to the agent: {e}"))?;
                    return Ok(stream);
                }
                Err(e) => {
                    if let Some(fate) = container.fate() {
                        return Err(format!(
                            "the container {}",
                            fate.describe()
                                .trim_start_matches("was lost: its container ")
                        ));
                    }
                    if Instant::now() >= deadline {
                        return Err(format!(
                            "no agent at {} within the start limit: {e}",
                            socket.display()
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }

    /// Records how the container ends, and cleans up after it.
    fn watch_exit(self: &Arc<Self>, container: &Arc<Container>) {
        let pool = Arc::clone(self);
        let container = Arc::clone(container);
        tokio::spawn(async move {
            let mut wait = pool.docker.wait_container(&container.id, None);
            let _ = wait.next().await;
            let state = pool
                .docker
                .inspect_container(&container.id, None)
                .await
                .ok()
                .and_then(|c| c.state);
            let fate = match state {
                Some(s) if s.oom_killed == Some(true) => Fate::OutOfMemory {
                    limit_mb: container.memory_mb,
                },
                Some(s) => Fate::Exited {
                    code: s.exit_code.unwrap_or(-1),
                },
                None => Fate::Removed,
            };
            if container.fate().is_none() {
                tracing::warn!(container = %container.name, "container stopped: {}", fate.describe());
            }
            container.set_fate(fate);
            container.stop.notify_waiters();
            // Removed first, then forgotten: until it is gone, the backend still knows it
            // (and removes it when dropped, should this task not get to finish).
            let _ = pool.remove(&container.id, &container.domain).await;
            pool.forget(&container);
        });
    }

    /// Pings the agent over the lifeline; a container that does not answer is killed.
    fn watch_health(
        self: &Arc<Self>,
        container: &Arc<Container>,
        lifeline: tokio::net::UnixStream,
    ) {
        let pool = Arc::clone(self);
        let container = Arc::clone(container);
        let interval = self.config.health_interval;
        let timeout = self.config.health_timeout;
        tokio::spawn(async move {
            let (read, mut write) = lifeline.into_split();
            let mut lines = tokio::io::BufReader::new(read).lines();
            loop {
                tokio::select! {
                    _ = container.stop.notified() => break,
                    _ = tokio::time::sleep(interval) => {}
                }
                if container.fate().is_some() {
                    break;
                }
                let asked = Instant::now();
                let answered = async {
                    write.write_all(b"ping\n").await.ok()?;
                    lines.next_line().await.ok()?
                };
                match tokio::time::timeout(timeout, answered).await {
                    Ok(Some(line)) if line.trim() == "pong" => {}
                    Ok(_) => {
                        // The agent closed the lifeline: the container is ending; its exit
                        // watch reports how.
                        break;
                    }
                    Err(_) => {
                        let fate = Fate::Hung {
                            waited: asked.elapsed(),
                        };
                        tracing::warn!(container = %container.name, "{}", fate.describe());
                        container.set_fate(fate);
                        let _ = pool
                            .docker
                            .kill_container(
                                &container.id,
                                Some(
                                    KillContainerOptionsBuilder::default()
                                        .signal("SIGKILL")
                                        .build(),
                                ),
                            )
                            .await;
                        break;
                    }
                }
            }
            // Dropping the lifeline tells the agent to end.
        });
    }

    fn forget(&self, container: &Arc<Container>) {
        let mut containers = self.containers.lock().unwrap_or_else(|p| p.into_inner());
        if containers
            .get(&container.key)
            .is_some_and(|c| Arc::ptr_eq(c, container))
        {
            containers.remove(&container.key);
        }
    }

    /// Stops and removes a container of this runtime.
    async fn retire(&self, container: &Arc<Container>) {
        container.set_fate(Fate::Removed);
        container.stop.notify_waiters();
        let _ = self.remove(&container.id, &container.domain).await;
        self.forget(container);
    }

    async fn remove(&self, id: &str, domain: &Path) -> Result<(), String> {
        let result = self
            .docker
            .remove_container(
                id,
                Some(RemoveContainerOptionsBuilder::default().force(true).build()),
            )
            .await;
        // Only directories under the configured parent are ever removed.
        if domain.starts_with(&self.config.domains_dir) {
            let _ = std::fs::remove_dir_all(domain);
        }
        match result {
            Ok(()) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => Ok(()),
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => Ok(()),
            Err(e) => Err(format!("cannot remove container {id}: {e}")),
        }
    }

    async fn remove_stale(&self, _all: bool) -> Result<Vec<String>, String> {
        let filters = HashMap::from([("label".to_owned(), vec![format!("{MANAGED_LABEL}=true")])]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let listed = self
            .docker
            .list_containers(Some(options))
            .await
            .map_err(|e| format!("cannot list containers: {e}"))?;
        let mut removed = Vec::new();
        for summary in listed {
            let labels = summary.labels.unwrap_or_default();
            let owner = labels.get(RUNTIME_LABEL).cloned().unwrap_or_default();
            if owner == self.instance || instance_alive(&owner) {
                continue;
            }
            let Some(id) = summary.id else { continue };
            let domain = PathBuf::from(labels.get(DOMAIN_LABEL).cloned().unwrap_or_default());
            let name = summary
                .names
                .and_then(|n| n.first().cloned())
                .unwrap_or_else(|| id.clone());
            self.remove(&id, &domain).await?;
            tracing::info!(container = %name, runtime = %owner, "removed a container a stopped runtime left");
            removed.push(name.trim_start_matches('/').to_owned());
        }
        self.remove_orphan_directories();
        Ok(removed)
    }

    /// Removes the private directories whose runtime process is gone (its containers were
    /// removed, but it did not get to remove their directories). Directory names end in
    /// `-<pid>-<n>`; a directory of a live process (this one included) is kept.
    fn remove_orphan_directories(&self) {
        let Ok(entries) = std::fs::read_dir(&self.config.domains_dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let pid = name.rsplit('-').nth(1).and_then(|p| p.parse::<u32>().ok());
            let Some(pid) = pid else { continue };
            if pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let path = entry.path();
            if std::fs::remove_dir_all(&path).is_ok() {
                tracing::info!(directory = %path.display(), "removed a container directory a stopped runtime left");
            }
        }
    }
}
