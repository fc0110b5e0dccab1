//! Outputs stream out of a Python node as it produces them, with backpressure, and a
//! session's work budget and cancellation reach into the worker.

mod support;

use remotemedia_runtime_core::transport::ExecutorConfig;
use remotemedia_runtime_core::Error;
use std::time::{Duration, Instant};
use support::{gone_within, manifest, text, Harness, Scratch};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generators_items_arrive_while_it_is_still_running() {
    let harness = Harness::new();
    let session = harness
        .runner
        .create_stream_session(manifest(
            "nodes: [{id: gen, node_type: Endless, executor: multiprocess}]",
        ))
        .await
        .expect("session");
    session.send_input(text("x")).await.expect("send");
    for i in 0..2000 {
        let output = tokio::time::timeout(Duration::from_secs(10), session.next_output())
            .await
            .expect("items come while the call runs")
            .expect("no failure")
            .expect("an item");
        assert_eq!(output.data.as_text(), Some(format!("x-{i}").as_str()));
    }
    drop(session);
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_generator_is_stopped_by_the_work_budget() {
    let harness = Harness::new();
    let runner = harness
        .runner
        .clone()
        .with_config(ExecutorConfig::default().with_max_items_per_input(5_000));
    let started = Instant::now();
    let err = runner
        .execute_collect(
            manifest("nodes: [{id: gen, node_type: Endless, executor: multiprocess}]"),
            vec![text("x")],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WorkBudget { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "node 'gen' (Endless) exceeded the session's work budget: the pipeline produced more than 5000 items per input"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    harness.assert_no_leftovers();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_a_session_during_a_long_call_kills_the_worker_at_once() {
    let harness = Harness::new();
    let scratch = Scratch::new("abandoned-call");
    let pid_file = scratch.path("pid");
    let session = harness
        .runner
        .create_stream_session(manifest(&format!(
            "nodes: [{{id: slow, node_type: SleepsWithPid, executor: multiprocess, params: {{path: \"{}\"}}}}]",
            pid_file.display()
        )))
        .await
        .expect("session");
    let pid = scratch.pid("pid");
    session.send_input(text("work")).await.expect("send");
    // The call is under way (the worker sleeps for a minute in it).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let dropped = Instant::now();
    drop(session);
    assert!(
        gone_within(pid, 3.0),
        "the worker of an abandoned call must not outlive its session"
    );
    assert!(
        dropped.elapsed() < Duration::from_secs(3),
        "{:?}",
        dropped.elapsed()
    );
    harness.assert_no_leftovers();
}

/// The high-water mark of this process's resident memory, in MiB.
fn peak_resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<f64>()
                .ok()
        })
        .expect("VmHWM")
        / 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_printing_without_newlines_costs_the_runtime_no_memory() {
    let harness = Harness::new();
    let before = peak_resident_mib();
    let outputs = harness
        .runner
        .execute_collect(
            manifest(
                "nodes: [{id: loud, node_type: PrintsWithoutNewline, executor: multiprocess, params: {megabytes: 300}}]",
            ),
            vec![text("after the noise")],
        )
        .await
        .expect("the item comes through");
    assert_eq!(outputs[0].data.as_text(), Some("after the noise"));
    let grew = peak_resident_mib() - before;
    assert!(
        grew < 64.0,
        "300 MB without a newline grew the runtime by {grew:.0} MiB"
    );
    harness.assert_no_leftovers();
}
