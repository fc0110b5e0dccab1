//! `remotemedia run examples/pipelines/stream-monitor.yaml` on a live RTMP stream: the
//! command is the server (`--listen`) an ffmpeg publisher pushes a sync test signal to (a
//! flash and a beep every second on black and silence), prints JSON events as they come,
//! and ends cleanly on Ctrl-C. Built with the ingest-rtmp feature only.

#![cfg(feature = "ingest-rtmp")]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A child killed when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn publisher(url: &str) -> Child {
    let args = [
        "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i",
        "color=c=black:size=320x240:rate=25,drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(mod(t\\,1)\\,0.08)'",
        "-re", "-f", "lavfi", "-i",
        "aevalsrc='if(lt(mod(t\\,1)\\,0.1)\\,0.5*sin(2*PI*1000*t)\\,0)':s=48000",
        "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-ac", "2", "-f", "flv", url,
    ];
    Child(
        Command::new("ffmpeg")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ffmpeg"),
    )
}

#[test]
fn the_stream_monitor_reports_a_live_rtmp_stream_and_ends_on_ctrl_c() {
    let port = free_port();
    let url = format!("rtmp://127.0.0.1:{port}/live/monitor");
    let manifest = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/pipelines/stream-monitor.yaml"
    );
    let mut monitor = Child(
        Command::new(env!("CARGO_BIN_EXE_remotemedia"))
            .args([
                "run", manifest, "--format", "json", "--listen", "--input", &url,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("remotemedia"),
    );
    let stdout = monitor.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let event = serde_json::from_str::<serde_json::Value>(&line).expect("JSON line");
            if tx.send(event).is_err() {
                break;
            }
        }
    });
    // The publisher retries, as an encoder does, until the command listens.
    let until = Instant::now() + Duration::from_secs(20);
    let _publisher = loop {
        let mut candidate = publisher(&url);
        std::thread::sleep(Duration::from_millis(700));
        match candidate.0.try_wait() {
            Ok(None) => break candidate,
            _ if Instant::now() < until => continue,
            _ => panic!("the publisher never connected"),
        }
    };
    // Until every kind of event has come (three A/V reports), then Ctrl-C.
    let mut events: Vec<serde_json::Value> = Vec::new();
    let complete = |events: &[serde_json::Value]| {
        let from = |node: &str| events.iter().filter(|e| e["node_id"] == node).count();
        from("black") > 0
            && from("freeze") > 0
            && from("silence") > 0
            && from("level") > 0
            && from("avsync") >= 3
    };
    let until = Instant::now() + Duration::from_secs(30);
    while !complete(&events) && Instant::now() < until {
        if let Ok(event) = rx.recv_timeout(Duration::from_millis(200)) {
            events.push(event);
        }
    }
    let pid = monitor.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill")
        .success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = monitor.0.try_wait().expect("wait") {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the command did not end on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    events.extend(rx.try_iter());
    let mut stderr = String::new();
    use std::io::Read;
    let _ = monitor
        .0
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    assert!(status.success(), "{status}: {stderr}");
    let has = |node: &str, key: &str, value: &str| {
        events
            .iter()
            .any(|e| e["node_id"] == node && e["data"][key] == value)
    };
    assert!(has("black", "alert", "black"), "{events:#?}");
    assert!(has("freeze", "alert", "freeze"), "{events:#?}");
    assert!(has("silence", "alert", "silence"), "{events:#?}");
    assert!(
        events.iter().any(|e| e["node_id"] == "level"),
        "{events:#?}"
    );
    let skews: Vec<f64> = events
        .iter()
        .filter(|e| e["node_id"] == "avsync")
        .filter_map(|e| e["data"]["av_skew_ms"].as_f64())
        .collect();
    assert!(
        !skews.is_empty() && skews.iter().all(|s| s.abs() <= 25.0),
        "{skews:?}"
    );
    assert!(stderr.contains("waiting for a publisher"), "{stderr}");
}
