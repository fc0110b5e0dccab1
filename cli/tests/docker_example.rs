//! `examples/docker-node/` through the real command: a Rust → Docker → multiprocess
//! pipeline on the bundled speech, and the `docker` subcommands. Needs a Docker engine:
//! `#[ignore]`d by default, run by CI with `--ignored` (`SKIP_DOCKER_TESTS=1` skips it).

use std::process::Command;

fn workspace() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace")
        .to_path_buf()
}

fn remotemedia(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_remotemedia"))
        .args(args)
        .current_dir(workspace())
        .output()
        .expect("run remotemedia")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
#[ignore = "needs a Docker engine; CI runs it with --ignored"]
fn the_docker_node_example_runs_and_its_output_is_right() {
    if std::env::var_os("SKIP_DOCKER_TESTS").is_some_and(|v| v == "1") {
        return;
    }
    assert!(
        std::env::var_os("REMOTEMEDIA_PYTHON").is_some(),
        "REMOTEMEDIA_PYTHON: the interpreter with the remotemedia packages"
    );
    let built = remotemedia(&["docker", "build", "examples/docker-node/pipeline.yaml"]);
    assert!(built.status.success(), "{}", text(&built.stderr));
    assert!(
        text(&built.stdout).contains("node 'loudness': remotemedia-node:"),
        "{}",
        text(&built.stdout)
    );
    let o = remotemedia(&[
        "run",
        "examples/docker-node/pipeline.yaml",
        "--input",
        "examples/media/speech.wav",
        "--format",
        "json",
    ]);
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines: Vec<serde_json::Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    // 8.54 s of speech in one-second chunks: 8 full ones and the rest.
    assert_eq!(lines.len(), 9, "{lines:?}");
    let mut samples = 0;
    for line in &lines {
        assert_eq!(line["node_id"], "report");
        let data = &line["data"];
        assert!(
            data["python"]
                .as_str()
                .is_some_and(|v| v.starts_with("3.13.")),
            "computed in the container's Python 3.13: {data}"
        );
        assert_eq!(data["sample_rate"], 16000);
        samples += data["samples"].as_u64().expect("samples");
        let rms = data["rms_dbfs"].as_f64().expect("rms");
        assert!((-120.0..=0.0).contains(&rms), "{data}");
    }
    assert_eq!(samples, 136_625, "every sample of the file went through");
    let speech = lines[..8]
        .iter()
        .filter(|l| l["data"]["rms_dbfs"].as_f64().unwrap_or(-200.0) > -40.0)
        .count();
    assert!(speech >= 6, "speech seconds are loud: {lines:?}");

    let listed = remotemedia(&["docker", "ls"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains("remotemedia-node:"),
        "{}",
        text(&listed.stdout)
    );
    assert!(
        !text(&listed.stdout).contains("rm-"),
        "the run removed its container at exit: {}",
        text(&listed.stdout)
    );
    let pruned = remotemedia(&["docker", "prune"]);
    assert!(pruned.status.success(), "{}", text(&pruned.stderr));
}
