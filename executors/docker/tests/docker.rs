//! The Docker executor against the real engine: images built from Debian packages,
//! containers with the security posture of the crate docs, workers over iceoryx2.
//!
//! `#[ignore]`d by default (they need a running Docker engine and build images); CI runs
//! them with `--ignored`. `SKIP_DOCKER_TESTS=1` skips them.

use remotemedia_docker::{DockerBackend, DockerConfig};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use remotemedia_runtime_core::transport::{PipelineRunner, TransportData};
use std::sync::Arc;
use std::time::Duration;

fn skip() -> bool {
    if std::env::var_os("SKIP_DOCKER_TESTS").is_some_and(|v| v == "1") {
        eprintln!("SKIP_DOCKER_TESTS=1: skipped");
        return true;
    }
    false
}

fn python() -> std::path::PathBuf {
    std::env::var_os("REMOTEMEDIA_PYTHON")
        .map(Into::into)
        .expect("REMOTEMEDIA_PYTHON: an interpreter with the remotemedia wheel and remotemedia-nodes (cargo xtask python-env)")
}

fn runner_with(adjust: impl FnOnce(&mut DockerConfig)) -> (PipelineRunner, Arc<DockerBackend>) {
    let mut config = DockerConfig {
        host_python: Some(python()),
        grace_period: Duration::from_millis(300),
        ..DockerConfig::default()
    };
    adjust(&mut config);
    let mut registry = NodeRegistry::with_builtins();
    remotemedia_multiprocess::register(
        &mut registry,
        remotemedia_multiprocess::MultiprocessConfig {
            python_executable: Some(python()),
            ..Default::default()
        },
    );
    let backend = remotemedia_docker::register(&mut registry, config);
    (
        PipelineRunner::with_registry(registry).expect("runner"),
        backend,
    )
}

fn manifest(yaml: &str) -> Arc<Manifest> {
    Arc::new(Manifest::from_yaml(yaml).expect("manifest"))
}

fn test_nodes() -> String {
    format!("{}/tests/python", env!("CARGO_MANIFEST_DIR"))
}

/// A docker block that mounts the test nodes and imports them, with `extra` keys.
fn block(extra: &str) -> String {
    format!(
        "{{volumes: [\"{}:/nodes\"], python_path: [/nodes], modules: [rm_docker_test_nodes]{}{extra}}}",
        test_nodes(),
        if extra.is_empty() { "" } else { ", " }
    )
}

/// Every file below `dir`.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

fn text(s: &str) -> TransportData {
    TransportData::new(RuntimeData::Text(s.to_owned()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
async fn test_docker_executor() {
    if skip() {
        return;
    }
    let (runner, _backend) = runner_with(|_| {});
    let pipeline = manifest(
        r#"
nodes:
  - id: echo
    node_type: EchoNode
    docker:
      python_version: "3.11"
      resource_limits: { memory_mb: 256, cpu_cores: 1.0, pids: 64 }
"#,
    );
    let output = runner
        .execute_unary(pipeline, text("through a container"))
        .await
        .expect("run in docker");
    assert_eq!(
        output.data,
        RuntimeData::Text("through a container".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
async fn test_docker_executor_audio_is_lossless_and_the_posture_holds() {
    if skip() {
        return;
    }
    let (runner, _backend) = runner_with(|_| {});
    // Audio goes in and comes back bit for bit.
    let samples: Vec<f32> = (0..48_000).map(|i| ((i as f32) * 0.001).sin()).collect();
    let audio = RuntimeData::audio(samples.clone(), 48_000, 1);
    let output = runner
        .execute_unary(
            manifest("nodes: [{id: echo, node_type: EchoNode, docker: {resource_limits: {memory_mb: 256}}}]"),
            TransportData::new(audio.clone()),
        )
        .await
        .expect("audio through docker");
    assert_eq!(output.data, audio);
    // Growing frames in one session: each larger one needs a larger shared-memory
    // segment on each side, made after the channel is connected (by the runtime as the
    // container's user).
    let session = runner
        .create_stream_session(manifest(
            "nodes: [{id: echo, node_type: EchoNode, docker: {resource_limits: {memory_mb: 256}}}]",
        ))
        .await
        .expect("session");
    for frames in [160usize, 1 << 20, 4 << 20] {
        let big = RuntimeData::audio(
            (0..frames)
                .map(|i| (i % 1000) as f32 / 1000.0)
                .collect::<Vec<f32>>(),
            16_000,
            1,
        );
        session
            .send_input(TransportData::new(big.clone()))
            .await
            .expect("send");
        let out = session.recv_output().await.expect("recv").expect("an echo");
        assert_eq!(out.data, big, "{frames} frames came back unchanged");
    }
    session.close().await.expect("close");

    // What the worker can see and do.
    let marker = std::env::temp_dir().join(format!("rm-docker-marker-{}", std::process::id()));
    std::fs::write(&marker, "host").expect("marker");
    let pipeline = manifest(&format!(
        "nodes: [{{id: posture, node_type: Posture, docker: {}}}]",
        block("resource_limits: {memory_mb: 200, pids: 50}")
    ));
    let output = runner
        .execute_unary(pipeline, text(&marker.display().to_string()))
        .await
        .expect("posture report");
    let _ = std::fs::remove_file(&marker);
    let report = output.data.as_json().expect("json").clone();
    eprintln!("{report:#}");
    assert_ne!(report["uid"], 0, "not root: {report}");
    assert_eq!(
        report["cap_eff"], "0000000000000000",
        "no capabilities: {report}"
    );
    assert_eq!(report["no_new_privs"], "1", "{report}");
    assert_eq!(report["root_writable"], false, "read-only root: {report}");
    assert_eq!(
        report["tmp"][2], "tmpfs",
        "/tmp is a private tmpfs: {report}"
    );
    assert_eq!(
        report["interfaces"],
        serde_json::json!(["lo"]),
        "no network: {report}"
    );
    assert_eq!(report["network"], false, "{report}");
    assert_eq!(
        report["host_marker_visible"], false,
        "the host's /tmp is not visible: {report}"
    );
    let dev: Vec<String> = serde_json::from_value(report["dev"].clone()).expect("dev");
    assert!(
        !dev.iter()
            .any(|d| d.starts_with("sd") || d.starts_with("nvme") || d == "mem"),
        "no host devices: {dev:?}"
    );
    assert_eq!(
        report["memory_limit"],
        (200u64 << 20).to_string(),
        "{report}"
    );
    assert_eq!(report["pids_limit"], "50", "{report}");
    let mounts: Vec<String> =
        serde_json::from_value(report["mount_points"].clone()).expect("mounts");
    assert!(mounts.contains(&"/domain".to_owned()), "{mounts:?}");
    assert!(
        !mounts
            .iter()
            .any(|m| m == "/dev/shm/rm-docker" || m.starts_with("/host")),
        "{mounts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
async fn test_docker_multicontainer() {
    if skip() {
        return;
    }
    let (runner, backend) = runner_with(|c| c.grace_period = Duration::from_secs(2));
    let counter = manifest(&format!(
        "nodes: [{{id: count, node_type: Counter, docker: {}}}]",
        block("")
    ));
    // Two sessions at once with the same settings: one container, two workers, each with
    // its own state.
    let a = runner
        .create_stream_session(Arc::clone(&counter))
        .await
        .expect("session a");
    let b = runner
        .create_stream_session(Arc::clone(&counter))
        .await
        .expect("session b");
    let containers = backend.containers().await.expect("containers").running();
    assert_eq!(containers.len(), 1, "shared: {containers:?}");
    assert_eq!(containers[0].users(), 2);
    let mut seen = Vec::new();
    for (session, n) in [(&a, 3), (&b, 1)] {
        let mut last = serde_json::Value::Null;
        for _ in 0..n {
            session.send_input(text("x")).await.expect("send");
            while let Some(out) = session.recv_output().await.expect("recv") {
                last = out.data.as_json().expect("json").clone();
            }
        }
        seen.push(last);
    }
    assert_eq!(seen[0]["count"], 3, "{seen:?}");
    assert_eq!(seen[1]["count"], 1, "isolated state: {seen:?}");
    assert_ne!(seen[0]["pid"], seen[1]["pid"], "separate workers: {seen:?}");
    a.close().await.expect("close a");
    b.close().await.expect("close b");
    while a.recv_output().await.expect("drain a").is_some() {}
    while b.recv_output().await.expect("drain b").is_some() {}
    drop((a, b));
    // The sessions' workers and channel files are gone; the idle container waits for the
    // next session with its agent's socket only.
    let domain = containers[0].domain.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left = files_under(&domain)
            .into_iter()
            .filter(|n| !n.ends_with("/agent.sock") && !n.ends_with(".global_mgmt"))
            .collect::<Vec<_>>();
        if left.is_empty() || std::time::Instant::now() > deadline {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        left.is_empty(),
        "files left in {}: {left:?}",
        domain.display()
    );

    // Different limits and a different Python version: separate containers, and two
    // interpreters in one pipeline.
    let mixed = manifest(&format!(
        "nodes:\n  - {{id: old, node_type: Counter, docker: {}}}\n  - {{id: new, node_type: Counter, docker: {}}}\n  - {{id: both, node_type: PassThrough}}\nconnections: [{{from: old, to: both}}, {{from: new, to: both}}]",
        block("python_version: \"3.11\", resource_limits: {memory_mb: 300}"),
        block("python_version: \"3.13\", resource_limits: {memory_mb: 400}")
    ));
    let session = runner
        .create_stream_session(mixed)
        .await
        .expect("two versions");
    let running = backend.containers().await.expect("containers").running();
    let in_use: Vec<_> = running.iter().filter(|c| c.users() > 0).collect();
    assert_eq!(
        in_use.len(),
        2,
        "one container per configuration: {running:?}"
    );
    session.send_input(text("x")).await.expect("send");
    let mut versions = Vec::new();
    while let Some(out) = session.recv_output().await.expect("recv") {
        let json = out.data.as_json().expect("json").clone();
        versions.push(json["python"].as_str().unwrap_or_default()[..4].to_owned());
    }
    versions.sort();
    assert_eq!(
        versions,
        ["3.11", "3.13"],
        "each node in its own interpreter"
    );
    session.close().await.expect("close");
    drop(session);
    // After the grace period, idle containers are gone.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !backend.containers().await.expect("c").running().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "idle containers were not stopped"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
async fn test_mixed_executors_manifest_loading() {
    if skip() {
        return;
    }
    let (runner, _backend) = runner_with(|_| {});
    let pipeline = manifest(
        r#"
version: v1
metadata: { name: mixed }
nodes:
  - { id: resample, node_type: FastResampleNode, params: { target_rate: 16000 } }
  - { id: in_docker, node_type: EchoNode, docker: { resource_limits: { memory_mb: 256 } } }
  - { id: in_process, node_type: EchoNode, executor: multiprocess }
  - { id: gain, node_type: AudioGainNode, params: { gain_db: 0 } }
connections:
  - { from: resample, to: in_docker }
  - { from: in_docker, to: in_process }
  - { from: in_process, to: gain }
"#,
    );
    let validated = runner
        .validate(&pipeline)
        .expect("the mixed manifest validates");
    drop(validated);
    let audio = RuntimeData::audio(vec![0.25f32; 48_000], 48_000, 1);
    let outputs = runner
        .execute_unary_collect(pipeline, TransportData::new(audio))
        .await
        .expect("mixed run");
    let frames: usize = outputs
        .iter()
        .map(|o| match &o.data {
            RuntimeData::Audio {
                samples,
                sample_rate,
                ..
            } => {
                assert_eq!(*sample_rate, 16_000);
                assert_eq!(o.node_id.as_deref(), Some("gain"));
                samples.len()
            }
            other => panic!("unexpected output {other:?}"),
        })
        .sum();
    assert!((15_920..=16_080).contains(&frames), "{frames} frames");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
async fn test_docker_oom_ends_only_its_session_with_the_cause() {
    if skip() {
        return;
    }
    let (runner, _backend) = runner_with(|_| {});
    let survivor = runner
        .create_stream_session(manifest(&format!(
            "nodes: [{{id: count, node_type: Counter, docker: {}}}]",
            block("")
        )))
        .await
        .expect("survivor");
    let hog = manifest(&format!(
        "nodes: [{{id: asr, node_type: Hog, docker: {}}}]",
        block("resource_limits: {memory_mb: 128}")
    ));
    let err = runner
        .execute_unary(hog, text("eat"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("asr"), "{err}");
    assert!(
        err.contains("was killed: container exceeded its 128 MiB memory limit"),
        "{err}"
    );
    survivor.send_input(text("still here")).await.expect("send");
    let out = survivor
        .recv_output()
        .await
        .expect("recv")
        .expect("an output");
    assert_eq!(out.data.as_json().expect("json")["count"], 1);
    survivor.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
async fn test_docker_hung_container_is_killed_and_named() {
    if skip() {
        return;
    }
    let (runner, backend) = runner_with(|c| {
        c.health_interval = Duration::from_millis(200);
        c.health_timeout = Duration::from_secs(1);
    });
    let session = runner
        .create_stream_session(manifest(&format!(
            "nodes: [{{id: frozen, node_type: Counter, docker: {}}}]",
            block("resource_limits: {memory_mb: 160}")
        )))
        .await
        .expect("session");
    let container = backend.containers().await.expect("c").running()[0].clone();
    // The container's agent stops answering (stopped, as a process that hangs is).
    let agent = backend
        .docker()
        .await
        .expect("docker")
        .inspect_container(&container.name, None)
        .await
        .expect("inspect")
        .state
        .and_then(|s| s.pid)
        .expect("the agent's pid");
    // SAFETY: signalling the container's first process, found through the engine.
    assert_eq!(
        unsafe { libc::kill(agent as libc::pid_t, libc::SIGSTOP) },
        0
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let err = loop {
        assert!(
            std::time::Instant::now() < deadline,
            "the hung container was not noticed"
        );
        if let Err(e) = session.send_input(text("x")).await {
            break e.to_string();
        }
        match session.recv_output().await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => break e.to_string(),
        }
    };
    assert!(err.contains("frozen"), "{err}");
    assert!(err.contains("stopped answering"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
async fn test_docker_a_container_killed_from_outside_ends_its_sessions_naming_it() {
    if skip() {
        return;
    }
    let (runner, backend) = runner_with(|_| {});
    let pipeline = manifest(&format!(
        "nodes: [{{id: victim, node_type: Counter, docker: {}}}]",
        block("resource_limits: {memory_mb: 170}")
    ));
    let first = runner
        .create_stream_session(Arc::clone(&pipeline))
        .await
        .expect("first");
    let second = runner
        .create_stream_session(Arc::clone(&pipeline))
        .await
        .expect("second");
    let container = backend.containers().await.expect("c").running()[0].clone();
    assert_eq!(container.users(), 2);
    // Someone else kills it (an operator, the engine restarting).
    backend
        .docker()
        .await
        .expect("docker")
        .kill_container(
            &container.id,
            None::<bollard::query_parameters::KillContainerOptions>,
        )
        .await
        .expect("kill");
    for session in [&first, &second] {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let err = loop {
            assert!(
                std::time::Instant::now() < deadline,
                "the dead container was not noticed"
            );
            if let Err(e) = session.send_input(text("x")).await {
                break e.to_string();
            }
            match session.recv_output().await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(e) => break e.to_string(),
            }
        };
        assert!(err.contains("victim"), "{err}");
        assert!(
            err.contains("its container stopped (exit code 137)"),
            "both sessions name the cause: {err}"
        );
    }
    // The next session gets a new container.
    let third = runner
        .create_stream_session(pipeline)
        .await
        .expect("a new container");
    third.send_input(text("x")).await.expect("send");
    let out = third.recv_output().await.expect("recv").expect("output");
    assert_eq!(out.data.as_json().expect("json")["count"], 1);
    third.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
async fn test_docker_bad_packages_fail_the_build_naming_them() {
    if skip() {
        return;
    }
    let (runner, _backend) = runner_with(|_| {});
    let err = runner
        .create_stream_session(manifest(
            "nodes: [{id: ml, node_type: EchoNode, docker: {python_packages: [rm-no-such-package-zz9]}}]",
        ))
        .await
        .map(|_| ())
        .expect_err("a build error")
        .to_string();
    assert!(err.contains("ml"), "{err}");
    assert!(err.contains("rm-no-such-package-zz9"), "{err}");
    let err = runner
        .create_stream_session(manifest(
            "nodes: [{id: ml, node_type: EchoNode, docker: {system_packages: [rm-no-such-deb-zz9]}}]",
        ))
        .await
        .map(|_| ())
        .expect_err("a build error")
        .to_string();
    assert!(
        err.contains("Debian bookworm has no package 'rm-no-such-deb-zz9'"),
        "{err}"
    );
}

/// Run as a child by the SIGKILL test: holds a container until killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a helper of test_docker_cleanup_after_the_runtime_is_killed"]
async fn helper_hold_a_container() {
    if std::env::var_os("RM_DOCKER_HELPER").is_none() {
        return;
    }
    let (runner, backend) = runner_with(|_| {});
    let session = runner
        .create_stream_session(manifest(&format!(
            "nodes: [{{id: held, node_type: Counter, docker: {}}}]",
            block("")
        )))
        .await
        .expect("session");
    let container = backend.containers().await.expect("c").running()[0].clone();
    println!("HOLDING {} {}", container.name, container.domain.display());
    use std::io::Write;
    std::io::stdout().flush().expect("flush");
    tokio::time::sleep(Duration::from_secs(600)).await;
    drop(session);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
async fn test_docker_cleanup_after_the_runtime_is_killed() {
    if skip() {
        return;
    }
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().expect("exe"))
        .args([
            "helper_hold_a_container",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("RM_DOCKER_HELPER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("helper");
    let stdout = child.stdout.take().expect("stdout");
    let line = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find(|l| l.starts_with("HOLDING "))
        .expect("the helper holds a container");
    let mut parts = line.split_whitespace().skip(1);
    let (name, domain) = (
        parts.next().expect("name").to_owned(),
        parts.next().expect("domain").to_owned(),
    );
    let helper_pid = child.id();
    child.kill().expect("SIGKILL");
    child.wait().expect("reap");
    // A directory whose container is already gone (the runtime died between removing the
    // container and its directory): removed too, since its process is gone.
    let orphan =
        std::path::Path::new(&domain).with_file_name(format!("000000000000-{helper_pid}-99"));
    std::fs::create_dir_all(orphan.join("services")).expect("orphan");
    let (_, backend) = runner_with(|_| {});
    let docker = backend.docker().await.expect("docker"); // connecting removes stale ones
    let _ = docker;
    // The container stops by itself (its lifeline closed) and the next runtime removes it.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let removed = backend
            .containers()
            .await
            .expect("c")
            .remove_stale()
            .await
            .expect("stale");
        let gone = backend
            .docker()
            .await
            .expect("docker")
            .inspect_container(&name, None)
            .await
            .is_err();
        if gone {
            let _ = removed;
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "container {name} was not cleaned up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!std::path::Path::new(&domain).exists(), "{domain} was left");
    assert!(!orphan.exists(), "{} was left", orphan.display());
}

#[tokio::test]
async fn an_unreachable_engine_is_a_clear_error() {
    let (runner, _) =
        runner_with(|c| c.socket = Some("unix:///nonexistent/docker.sock".to_owned()));
    let err = runner
        .create_stream_session(manifest(
            "nodes: [{id: ml, node_type: EchoNode, executor: docker}]",
        ))
        .await
        .map(|_| ())
        .expect_err("no engine")
        .to_string();
    assert!(err.contains("node 'ml'") || err.contains("ml"), "{err}");
    assert!(
        err.contains("cannot reach the Docker engine at unix:///nonexistent/docker.sock"),
        "{err}"
    );
    assert!(err.contains("dockerd"), "{err}");
}
