//! A Python node that raises, crashes, hangs or cannot start ends its own session with an
//! error naming the node; nothing else is lost, no process or shared-memory file is left.

mod support;

use remotemedia_runtime_core::Error;
use std::time::Duration;
use support::{gone_within, manifest, text, Harness};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_fails_the_session_with_node_id_and_traceback() {
    let harness = Harness::new();
    let pipeline = manifest("nodes: [{id: risky, node_type: Raises, executor: multiprocess}]");
    let session = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .expect("session");
    session.send_input(text("fine")).await.expect("send");
    let first = session
        .recv_output()
        .await
        .expect("first item is fine")
        .expect("output");
    assert_eq!(first.data.as_text(), Some("fine"));
    session.send_input(text("boom")).await.expect("send");
    let err = loop {
        match session.recv_output().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the session ended without the error"),
            Err(e) => break e,
        }
    };
    let message = err.to_string();
    assert_eq!(err.node_id(), Some("risky"), "{message}");
    assert!(message.starts_with("node 'risky' (Raises) failed: Python exception in process(): ValueError: bad input: boom"), "{message}");
    assert!(
        message.contains("Traceback (most recent call last)"),
        "{message}"
    );
    assert!(message.contains("rm_test_nodes.py"), "{message}");
    assert!(session.send_input(text("more")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exception_in_initialize_fails_session_start() {
    let harness = Harness::new();
    let pipeline =
        manifest("nodes: [{id: model, node_type: FailsToInitialize, executor: multiprocess}]");
    let err = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::NodeInit { .. }), "{message}");
    assert!(message.starts_with("node 'model' (FailsToInitialize) failed to start: Python exception in initialize(): RuntimeError: model file missing"), "{message}");
    assert!(message.contains("Traceback"), "{message}");
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_python_class_is_named() {
    let harness = Harness::new();
    let message = harness
        .start_error("nodes: [{id: ghost, node_type: NoSuchNode, executor: multiprocess}]")
        .await;
    assert!(message.starts_with("node 'ghost' (NoSuchNode) failed to start: Python exception in import(): LookupError: no Python node class 'NoSuchNode' was found"), "{message}");
    assert!(
        message.contains("EchoNode"),
        "the message lists what is available: {message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_that_cannot_be_imported_is_reported() {
    let harness = Harness::new();
    let message = harness
        .start_error(
            "nodes: [{id: n, node_type: EchoNode, multiprocess: {modules: [no_such_module_here]}}]",
        )
        .await;
    assert!(
        message.contains("ModuleNotFoundError: No module named 'no_such_module_here'"),
        "{message}"
    );
    assert!(
        message.starts_with("node 'n' (EchoNode) failed to start"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_interpreter_is_named() {
    let harness = Harness::new();
    let message = harness.start_error("nodes: [{id: n, node_type: EchoNode, multiprocess: {python_executable: /nonexistent/bin/python}}]").await;
    assert!(message.starts_with("node 'n' (EchoNode) failed to start: cannot start the Python interpreter '/nonexistent/bin/python'"), "{message}");
    assert!(message.contains("REMOTEMEDIA_PYTHON"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interpreter_without_the_package_gets_a_hint() {
    let harness = Harness::new();
    // `python -I -S` ignores PYTHONPATH and site-packages: a bare interpreter.
    let bare = std::env::temp_dir().join(format!("rm-bare-python-{}", std::process::id()));
    std::fs::write(
        &bare,
        format!(
            "#!/bin/sh\nexec {} -I -S \"$@\"\n",
            support::python().display()
        ),
    )
    .expect("wrapper");
    std::fs::set_permissions(&bare, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let message = harness
        .start_error(&format!(
            "nodes: [{{id: n, node_type: EchoNode, multiprocess: {{python_executable: '{}'}}}}]",
            bare.display()
        ))
        .await;
    let _ = std::fs::remove_file(&bare);
    assert!(
        message.contains("cannot import the remotemedia package"),
        "{message}"
    );
    assert!(message.contains("No module named"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_worker_fails_only_its_session() {
    let harness = Harness::new();
    let healthy = harness
        .runner
        .create_stream_session(manifest("nodes: [{id: steady, node_type: EchoNode}]"))
        .await
        .expect("healthy session");
    for signal_case in ["kill", "segfault", "exit"] {
        let pipeline =
            manifest("nodes: [{id: fragile, node_type: Crashes, executor: multiprocess}]");
        let session = harness
            .runner
            .create_stream_session(pipeline)
            .await
            .expect("session");
        session.send_input(text(signal_case)).await.expect("send");
        let err = session.recv_output().await.unwrap_err();
        let message = err.to_string();
        assert_eq!(err.node_id(), Some("fragile"));
        let expected = match signal_case {
            "kill" => "was killed by signal 9 (SIGKILL) while processing item 1 (text)",
            "segfault" => "was killed by signal 11 (SIGSEGV) while processing item 1 (text)",
            _ => "exited with status 3 while processing item 1 (text)",
        };
        assert!(
            message.starts_with("node 'fragile' (Crashes) failed: the Python worker (pid "),
            "{message}"
        );
        assert!(message.contains(expected), "{signal_case}: {message}");
        drop(session);
        // The other session never noticed.
        healthy
            .send_input(text(signal_case))
            .await
            .expect("healthy send");
        let echoed = healthy
            .recv_output()
            .await
            .expect("healthy recv")
            .expect("output");
        assert_eq!(echoed.data.as_text(), Some(signal_case));
    }
    healthy.close().await.expect("close");
    while healthy.recv_output().await.expect("drain").is_some() {}
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_worker_is_killed_after_the_process_timeout() {
    let harness = Harness::new();
    let pipeline = manifest(
        "nodes: [{id: stuck, node_type: Hangs, multiprocess: {process_timeout_ms: 400}, executor: multiprocess}]",
    );
    let probe = manifest("nodes: [{id: probe, node_type: ParamsAndEnv, executor: multiprocess}]");
    let session = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .expect("session");
    session.send_input(text("ok")).await.expect("send");
    assert_eq!(
        session
            .recv_output()
            .await
            .expect("ok")
            .expect("output")
            .data
            .as_text(),
        Some("ok")
    );
    let started = std::time::Instant::now();
    session.send_input(text("hang")).await.expect("send");
    let message = session.recv_output().await.unwrap_err().to_string();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    assert!(
        message.starts_with("node 'stuck' (Hangs) failed: the Python worker (pid "),
        "{message}"
    );
    assert!(message.contains("did not finish processing item 2 (text) within 0.4 s (process_timeout_ms); it was killed"), "{message}");
    // The runtime is fine: a new session works.
    let out = harness
        .runner
        .execute_unary(probe, text("x"))
        .await
        .expect("probe");
    assert_eq!(out.data.as_json().expect("json")["node_id"], "probe");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_start_hits_the_init_timeout() {
    let harness = Harness::new();
    let pipeline = manifest(
        "nodes: [{id: slow, node_type: SlowToInitialize, multiprocess: {init_timeout_ms: 500}}]",
    );
    let started = std::time::Instant::now();
    let message = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(
        message
            .starts_with("node 'slow' (SlowToInitialize) failed to start: the Python worker (pid "),
        "{message}"
    );
    assert!(
        message.contains("did not finish starting within 0.5 s (init_timeout_ms); it was killed"),
        "{message}"
    );
    let pid: u32 = message
        ["node 'slow' (SlowToInitialize) failed to start: the Python worker (pid ".len()..]
        .split(')')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("pid in message");
    assert!(gone_within(pid, 2.0), "worker {pid} still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unconvertible_output_is_reported() {
    let harness = Harness::new();
    let pipeline = manifest("nodes: [{id: odd, node_type: BadOutput, executor: multiprocess}]");
    let message = harness
        .runner
        .execute_unary(pipeline, text("x"))
        .await
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("node 'odd' (BadOutput) failed: Python exception in process(): TypeError: output 0: cannot send a value of type object to a pipeline"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_multiprocess_blocks_are_rejected_before_anything_starts() {
    let harness = Harness::new();
    let err = harness
        .runner
        .validate(&manifest(
            "nodes: [{id: n, node_type: EchoNode, multiprocess: {init_timeout: 5}}]",
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid manifest: node 'n' (EchoNode): multiprocess.init_timeout: unknown key (known keys: python_executable, env, python_path, modules, source, init_timeout_ms, process_timeout_ms, shutdown_timeout_ms, share)"
    );
    let err = remotemedia_runtime_core::manifest::Manifest::from_yaml(
        "nodes: [{id: n, node_type: EchoNode, executor: native, multiprocess: {}}]",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid manifest: node 'n': has a multiprocess block but executor is 'native'"
    );
    let err = harness
        .runner
        .validate(&manifest(
            "nodes: [{id: vad, node_type: SileroVADNode, params: {threshold: 2}}]",
        ))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "node 'vad' (SileroVADNode): param 'threshold': value 2 is out of range 0..=1"
    );
}
