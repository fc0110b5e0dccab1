//! Workers start with their params and environment, flush at end of stream, clean up and
//! exit at session end, die with the runtime, and leave no shared-memory files.

mod support;

use remotemedia_runtime_core::data::RuntimeData;
use serde_json::json;
use std::process::Command;
use std::time::Duration;
use support::{gone_within, item, manifest, text, Harness, Scratch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_and_env_reach_the_worker() {
    let harness = Harness::with(|c| {
        c.env
            .insert("RM_TEST_VALUE".into(), "from the backend".into());
    });
    let pipeline = manifest(
        r#"
nodes:
  - id: probe
    node_type: ParamsAndEnv
    executor: multiprocess
    params: { model: tiny, beams: 4, nested: { a: [1, 2] } }
    multiprocess: { env: { RM_TEST_VALUE: "from the manifest" } }
"#,
    );
    let out = harness
        .runner
        .execute_unary(pipeline, text("?"))
        .await
        .expect("probe");
    let report = out.data.as_json().expect("json");
    assert_eq!(report["node_id"], "probe");
    assert_eq!(
        report["params"],
        json!({"model": "tiny", "beams": 4, "nested": {"a": [1, 2]}})
    );
    assert_eq!(report["env"], "from the manifest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_class_given_inline_in_the_manifest_runs_with_its_own_line_numbers() {
    let harness = Harness::new();
    let pipeline = manifest(
        r#"
nodes:
  - id: shout
    node_type: InlineShout
    multiprocess:
      source: |
        import array
        import remotemedia

        @remotemedia.node("InlineShout")
        class InlineShout(remotemedia.Node):
            def process(self, data):
                if data == "fail":
                    raise ValueError("asked to fail")
                if isinstance(data, str):
                    return data.upper()
                return remotemedia.Audio(array.array("f", [float(x) * 2 for x in data.samples]), data.sample_rate)
"#,
    );
    let out = harness
        .runner
        .execute_unary(std::sync::Arc::clone(&pipeline), text("hello"))
        .await
        .expect("the inline class");
    assert_eq!(out.data.as_text(), Some("HELLO"));
    // Audio built from a standard-library float32 buffer (array.array), as in the browser.
    let out = harness
        .runner
        .execute_unary(
            std::sync::Arc::clone(&pipeline),
            item(RuntimeData::audio(vec![0.25f32, -0.5], 8000, 1)),
        )
        .await
        .expect("audio");
    match out.data {
        RuntimeData::Audio {
            samples,
            sample_rate,
            ..
        } => {
            assert_eq!(&samples[..], &[0.5, -1.0]);
            assert_eq!(sample_rate, 8000);
        }
        other => panic!("expected audio, got {other:?}"),
    }
    let err = harness
        .runner
        .execute_unary(pipeline, text("fail"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(
            "node 'shout' (InlineShout) failed: Python exception in process(): ValueError: asked to fail"
        ),
        "{err}"
    );
    assert!(
        err.contains(r#"File "<multiprocess.source>", line 8, in process"#),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffered_items_flush_at_end_of_stream() {
    let harness = Harness::new();
    let pipeline = manifest("nodes: [{id: buffer, node_type: Buffers, executor: multiprocess}]");
    let session = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .expect("session");
    for word in ["one", "two", "three"] {
        session.send_input(text(word)).await.expect("send");
        assert!(
            session.recv_output().await.expect("recv").is_none(),
            "nothing before the flush"
        );
    }
    session.close().await.expect("close");
    let flushed = session
        .recv_output()
        .await
        .expect("recv")
        .expect("the flushed text");
    assert_eq!(flushed.data.as_text(), Some("one two three"));
    assert!(session.recv_output().await.expect("recv").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_end_runs_cleanup_and_the_worker_exits() {
    let harness = Harness::new();
    let scratch = Scratch::new("cleanup");
    let marker = scratch.path("cleanup");
    let pid_file = scratch.path("pid");
    let pipeline = manifest(&format!(
        r#"
nodes:
  - {{ id: first, node_type: WritesPid, executor: multiprocess, params: {{ path: "{}" }} }}
  - {{ id: last, node_type: MarksCleanup, executor: multiprocess, params: {{ path: "{}" }} }}
"#,
        pid_file.display(),
        marker.display()
    ));
    let session = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .expect("session");
    let pid = scratch.pid("pid");
    assert!(support::alive(pid));
    session.send_input(text("x")).await.expect("send");
    assert_eq!(
        session
            .recv_output()
            .await
            .expect("recv")
            .expect("out")
            .data
            .as_text(),
        Some("x")
    );
    session.close().await.expect("close");
    while session.recv_output().await.expect("drain").is_some() {}
    assert!(
        gone_within(pid, 5.0),
        "worker {pid} still runs after the session ended"
    );
    assert_eq!(
        std::fs::read_to_string(&marker).expect("cleanup ran"),
        "cleaned up"
    );
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_session_kills_its_workers() {
    let harness = Harness::new();
    let scratch = Scratch::new("drop");
    let pid_file = scratch.path("pid");
    let pipeline = support::writes_pid_pipeline(&pid_file);
    let session = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .expect("session");
    let pid = scratch.pid("pid");
    drop(session);
    assert!(
        gone_within(pid, 5.0),
        "worker {pid} outlived its dropped session"
    );
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_stuck_in_cleanup_is_killed_after_the_shutdown_timeout() {
    let harness = Harness::new();
    let scratch = Scratch::new("stuck-cleanup");
    let pipeline = manifest(&format!(
        "nodes: [{{id: slow, node_type: HangsInCleanup, params: {{path: \"{}\"}}, multiprocess: {{shutdown_timeout_ms: 300}}}}]",
        scratch.path("pid").display()
    ));
    let session = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .expect("session");
    let pid = scratch.pid("pid");
    let started = std::time::Instant::now();
    session.close().await.expect("close");
    while session.recv_output().await.expect("drain").is_some() {}
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "closing took {:?}",
        started.elapsed()
    );
    assert!(
        gone_within(pid, 2.0),
        "worker {pid} survived its shutdown timeout"
    );
    harness.assert_no_leftovers();
}

/// Runs as a separate process (see `workers_die_with_the_runtime`): starts a session with a
/// worker that writes its pid, then waits to be killed.
#[test]
#[ignore = "helper process of workers_die_with_the_runtime"]
fn helper_runtime_that_gets_killed() {
    let (Some(pid_file), Some(root), Some(prefix)) = (
        std::env::var_os("RM_HELPER_PID_FILE"),
        std::env::var_os("RM_HELPER_ROOT"),
        std::env::var("RM_HELPER_PREFIX").ok(),
    ) else {
        return;
    };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let harness = Harness::in_domain(root.into(), prefix, |_| {});
        let pipeline = support::writes_pid_pipeline(std::path::Path::new(&pid_file));
        let _session = harness
            .runner
            .create_stream_session(pipeline)
            .await
            .expect("session");
        std::fs::write(
            format!("{}.ready", std::path::Path::new(&pid_file).display()),
            "",
        )
        .expect("ready marker");
        tokio::time::sleep(Duration::from_secs(120)).await;
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_die_with_the_runtime_and_the_next_runtime_removes_its_files() {
    let scratch = Scratch::new("pdeath");
    let pid_file = scratch.path("pid");
    let ready = scratch.path("pid.ready");
    let (root, prefix) = support::new_domain();
    let mut helper = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "helper_runtime_that_gets_killed",
            "--ignored",
            "--nocapture",
        ])
        .env("RM_HELPER_PID_FILE", &pid_file)
        .env("RM_HELPER_ROOT", &root)
        .env("RM_HELPER_PREFIX", &prefix)
        .env("REMOTEMEDIA_PYTHON", support::python())
        .spawn()
        .expect("helper");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the helper never started its session"
        );
        assert!(
            helper.try_wait().expect("helper status").is_none(),
            "the helper exited early"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let worker = scratch.pid("pid");
    assert!(support::alive(worker));
    helper.kill().expect("SIGKILL the runtime");
    helper.wait().expect("reap");
    assert!(
        gone_within(worker, 5.0),
        "worker {worker} outlived the runtime that started it"
    );

    // The killed runtime could not remove its files; the next runtime in the same domain
    // does, when it starts its first worker.
    let next = Harness::in_domain(root, prefix, |_| {});
    assert!(
        !next.leftovers().is_empty(),
        "the killed runtime left files behind"
    );
    let out = next
        .runner
        .execute_unary(
            manifest("nodes: [{id: e, node_type: EchoNode}]"),
            text("after"),
        )
        .await
        .expect("a new session in the same domain");
    assert_eq!(out.data.as_text(), Some("after"));
    next.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_workers_serve_new_sessions() {
    let harness = Harness::with(|c| c.warm_workers = 2);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while harness.backend.warm_count() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the pool never filled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let pipeline =
        manifest("nodes: [{id: probe, node_type: ParamsAndEnv, executor: multiprocess}]");
    let out = harness
        .runner
        .execute_unary(pipeline, text("?"))
        .await
        .expect("warm probe");
    assert_eq!(out.data.as_json().expect("json")["node_id"], "probe");
    // The pool refills after handing a worker out.
    assert_eq!(harness.backend.warm_count(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_worker_sleeps() {
    let harness = Harness::new();
    let pipeline = manifest("nodes: [{id: idle, node_type: ParamsAndEnv, executor: multiprocess}]");
    let session = harness
        .runner
        .create_stream_session(pipeline)
        .await
        .expect("session");
    session
        .send_input(item(RuntimeData::Json(json!(1))))
        .await
        .expect("send");
    let report = session.recv_output().await.expect("recv").expect("out");
    let pid = report.data.as_json().expect("json")["pid"]
        .as_u64()
        .expect("pid") as u32;
    let cpu = |pid: u32| -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .expect("fields")
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cpu(pid);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let used_ticks = cpu(pid) - before;
    // Clock ticks are 10 ms: an idle worker may wake once a second to look at signals.
    assert!(
        used_ticks <= 2,
        "an idle worker used {used_ticks} ticks of CPU in 2 s"
    );
    session.close().await.expect("close");
}
