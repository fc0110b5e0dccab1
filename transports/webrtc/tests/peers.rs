//! The WebRTC transport against a real webrtc-rs client peer in the same process: audio
//! in and out through pipelines, the data channel, barge-in, signaling errors, limits, a
//! failing node and a peer that vanishes.

mod support;

use remotemedia_webrtc::Limits;
use serde_json::json;
use std::time::{Duration, Instant};
use support::*;

const ECHO: &str = "nodes: [{id: echo, node_type: PassThrough}]";
const VAD: &str = "
nodes:
  - {id: resample, node_type: FastResampleNode, params: {target_rate: 16000}}
  - {id: frames, node_type: AudioChunkerNode, params: {chunk_size: 320}}
  - {id: vad, node_type: VADNode, params: {min_silence_duration_ms: 300}}
  - {id: events, node_type: TypeFilterNode, params: {types: [json]}}
  - {id: utterances, node_type: AudioBufferAccumulatorNode}
connections:
  - {from: resample, to: frames}
  - {from: frames, to: vad}
  - {from: vad, to: events}
  - {from: vad, to: utterances}
";
const CALC: &str = "nodes: [{id: calc, node_type: CalculatorNode}]";

/// Sends `packets` (20 ms each) at real-time pace.
async fn stream(client: &Client, packets: &[bytes::Bytes]) {
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    for (i, packet) in packets.iter().enumerate() {
        tick.tick().await;
        client
            .send_packet(packet.clone(), (i as u32) * 960, i == 0)
            .await;
    }
}

/// Sends `packets` at four times real time (one per 5 ms), RTP timestamps from `first`.
async fn send_fast(client: &Client, packets: &[bytes::Bytes], first: u32) {
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    for (i, p) in packets.iter().enumerate() {
        tick.tick().await;
        client
            .send_packet(p.clone(), (i as u32 + first) * 960, i == 0)
            .await;
    }
}

fn received_samples(client: &Client) -> Vec<f32> {
    client
        .received
        .lock()
        .unwrap()
        .audio
        .iter()
        .flat_map(|(_, _, s)| s.iter().copied())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn echo_returns_the_tone_at_its_level_and_pace() {
    let server = TestServer::start(&[("echo", ECHO)], None, Limits::default()).await;
    let client = Client::connect(&server, "echo", None).await;
    let tone = tone_48k(440.0, 0.3, 2.0);
    let sent_at = Instant::now();
    stream(&client, &encode_48k(&tone)).await;
    client
        .wait_for(Duration::from_secs(5), |r| r.audio.len() >= 95)
        .await
        .expect("the echo comes back");
    let audio = received_samples(&client);
    assert!(audio.len() >= 95 * 960, "{} frames back", audio.len());
    // Past the codecs' start-up: the same tone at the same level.
    let steady = &audio[9_600..90_000];
    let freq = frequency(steady, 48_000.0);
    assert!((freq - 440.0).abs() < 5.0, "{freq} Hz");
    let level_db = 20.0 * (rms(steady) / rms(&tone)).log10();
    assert!(level_db.abs() < 1.5, "{level_db} dB");
    // Real-time pace: the packets arrived over about the time they were sent in.
    let (first, last) = {
        let r = client.received.lock().unwrap();
        (r.audio[0].0, r.audio[r.audio.len() - 1].0)
    };
    let span = last.duration_since(first).as_secs_f32();
    eprintln!(
        "echo: {} frames back, {freq:.1} Hz, level {level_db:+.2} dB, over {span:.2} s",
        audio.len()
    );
    assert!((1.7..2.6).contains(&span), "returned over {span} s");
    assert!(first.duration_since(sent_at) < Duration::from_millis(500));
    // RTP timestamps advance 960 per packet while talking.
    {
        let r = client.received.lock().unwrap();
        let steps: Vec<u32> = r
            .audio
            .windows(2)
            .map(|w| w[1].1.wrapping_sub(w[0].1))
            .collect();
        assert!(steps.iter().filter(|s| **s == 960).count() >= steps.len() * 9 / 10);
    }
    assert_eq!(client.hang_up().await, 200);
    assert!(
        server.wait_empty(Duration::from_secs(5)).await,
        "peer freed"
    );
    // The resource is gone.
    assert_eq!(client.hang_up().await, 404);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn speech_gives_vad_events_and_the_utterance_back() {
    let server = TestServer::start(&[("vad", VAD)], None, Limits::default()).await;
    let client = Client::connect(&server, "vad", None).await;
    // The clip's first sentence and a second of silence after it.
    let mut clip = speech_16k()[..16_000 * 4].to_vec();
    clip.extend(std::iter::repeat_n(0.0, 16_000));
    stream(&client, &encode_16k(&clip)).await;
    client.send_json(json!({"type": "end"})).await;
    client
        .wait_for(Duration::from_secs(10), |r| {
            r.messages.iter().any(|m| m["type"] == "end")
        })
        .await
        .expect("the session ends once the input ended");
    let outputs = client.messages("output");
    let events: Vec<_> = outputs
        .iter()
        .filter(|m| m["node_id"] == "events")
        .map(|m| m["data"]["data"].clone())
        .collect();
    assert!(events.len() > 100, "{} VAD events", events.len());
    assert!(
        events.iter().any(|e| e["is_speech_start"] == true),
        "{events:?}"
    );
    assert!(events.iter().any(|e| e["is_speech_end"] == true));
    // Timestamps follow the media: the last event is near the end of the 5 s sent.
    let last_ms = events.last().unwrap()["timestamp_ms"].as_f64().unwrap();
    assert!((4_500.0..5_100.0).contains(&last_ms), "{last_ms}");
    let end = &client.messages("end")[0];
    assert_eq!(end["code"], "finished", "{end}");
    // The utterance came back as audio (resampled to 48 kHz): about the sentence's length.
    let audio = received_samples(&client);
    let seconds = audio.len() as f32 / 48_000.0;
    eprintln!(
        "vad: {} events, last at {last_ms} ms, {seconds:.2} s of utterance",
        events.len()
    );
    assert!(
        (2.0..4.6).contains(&seconds),
        "{seconds} s of utterance audio"
    );
    assert!(rms(&audio) > 0.01);
    assert!(server.wait_empty(Duration::from_secs(5)).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_channel_inputs_outputs_and_a_failing_node() {
    let server = TestServer::start(&[("calc", CALC)], None, Limits::default()).await;
    let client = Client::connect(&server, "calc", None).await;
    client
        .send_json(json!({"type": "json", "data": {"operation": "multiply", "operands": [6, 7]}, "sequence": 9}))
        .await;
    client.send_json(json!({"type": "ping", "id": 5})).await;
    client.send_json(json!({"type": "shout"})).await;
    client
        .wait_for(Duration::from_secs(5), |r| {
            r.messages.iter().filter(|m| m["type"] != "ready").count() >= 3
        })
        .await
        .expect("answers");
    let output = &client.messages("output")[0];
    assert_eq!(output["node_id"], "calc");
    assert_eq!(output["data"]["data"]["result"], 42.0);
    assert_eq!(output["input_sequence"], 9);
    assert_eq!(client.messages("pong")[0]["id"], 5);
    let bad = &client.messages("error")[0];
    assert_eq!(bad["code"], "bad_message");
    assert!(bad["message"].as_str().unwrap().contains("shout"), "{bad}");
    // A node failure: the error names the node, then the session ends.
    client
        .send_json(json!({"type": "json", "data": {"operation": "divide", "operands": [1, 0]}}))
        .await;
    client
        .wait_for(Duration::from_secs(5), |r| {
            r.messages.iter().any(|m| m["type"] == "end")
        })
        .await
        .expect("end");
    let failure = client
        .messages("error")
        .into_iter()
        .find(|m| m["code"] == "node_failed")
        .expect("node_failed");
    assert_eq!(failure["node_id"], "calc", "{failure}");
    assert_eq!(client.messages("end")[0]["code"], "node_failed");
    assert!(server.wait_empty(Duration::from_secs(5)).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn barge_in_clears_the_queued_reply() {
    let server = TestServer::start(&[("echo", ECHO)], None, Limits::default()).await;
    let client = Client::connect(&server, "echo", None).await;
    // Four seconds of audio at four times real time (the input side holds a second of
    // audio ahead of the pipeline, so a faster burst would be cut): the server plays it
    // out in real time, so most of it waits in the outgoing queue.
    let packets = encode_48k(&tone_48k(300.0, 0.3, 4.0));
    send_fast(&client, &packets, 0).await;
    client
        .wait_for(Duration::from_secs(5), |r| r.audio.len() >= 25)
        .await
        .expect("the reply starts");
    client.send_json(json!({"type": "barge_in"})).await;
    client
        .wait_for(Duration::from_secs(5), |r| {
            r.messages.iter().any(|m| m["type"] == "barge_in")
        })
        .await
        .expect("barge_in answer");
    let cleared = client.messages("barge_in")[0]["cleared_ms"]
        .as_u64()
        .unwrap();
    assert!(cleared >= 1_000, "{cleared} ms cleared");
    let count_at_barge_in = client.received.lock().unwrap().audio.len();
    tokio::time::sleep(Duration::from_millis(600)).await;
    let after = client.received.lock().unwrap().audio.len() - count_at_barge_in;
    eprintln!("barge-in: {cleared} ms cleared, {after} packets after it");
    assert!(after <= 10, "{after} packets after the barge-in");
    // The pipeline side: a node's `{"control": "barge_in"}` output clears too.
    send_fast(&client, &packets, 400).await;
    client
        .wait_for(Duration::from_secs(5), |r| {
            r.audio.len() >= count_at_barge_in + after + 25
        })
        .await
        .expect("the second reply starts");
    client
        .send_json(json!({"type": "json", "data": {"control": "barge_in"}}))
        .await;
    client
        .wait_for(Duration::from_secs(5), |r| {
            r.messages
                .iter()
                .any(|m| m["type"] == "barge_in" && m["source"] == "pipeline")
        })
        .await
        .expect("the pipeline's barge-in");
    let pipeline_side = client
        .messages("barge_in")
        .into_iter()
        .find(|m| m["source"] == "pipeline")
        .unwrap();
    assert_eq!(pipeline_side["node_id"], "echo");
    assert!(
        client.messages("warning").is_empty(),
        "{:?}",
        client.messages("warning")
    );
    assert!(pipeline_side["cleared_ms"].as_u64().unwrap() >= 1_000);
    assert_eq!(client.hang_up().await, 200);
    assert!(server.wait_empty(Duration::from_secs(5)).await);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signaling_errors_are_json_with_standard_statuses() {
    let limits = Limits {
        max_peers: 1,
        max_sdp_bytes: 16 * 1024,
        ..Limits::default()
    };
    let server = TestServer::start(&[("echo", ECHO)], Some("s3cret"), limits).await;
    let http = reqwest::Client::new();
    let base = format!("http://{}", server.addr);
    let (_pc, _parts, sdp) = client_offer().await;
    let error =
        |body: &str| serde_json::from_str::<serde_json::Value>(body).expect(body)["error"].clone();
    // No token, a wrong token.
    let (status, _, body) = post_offer(&http, &base, "echo", None, &sdp).await;
    assert_eq!(
        (status, error(&body)["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _, _) = post_offer(&http, &base, "echo", Some("guess"), &sdp).await;
    assert_eq!(status, 401);
    let r = http.get(format!("{base}/pipelines")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);
    assert!(r.headers().get("www-authenticate").is_some());
    // An unknown pipeline: 404 naming what exists.
    let (status, _, body) = post_offer(&http, &base, "nope", Some("s3cret"), &sdp).await;
    assert_eq!(status, 404);
    let e = error(&body);
    assert_eq!(e["code"], "unknown_pipeline");
    assert!(e["message"].as_str().unwrap().contains("echo"), "{e}");
    // Bad SDP.
    let (status, _, body) = post_offer(
        &http,
        &base,
        "echo",
        Some("s3cret"),
        "v=0\r\nm=audio garbage\r\n",
    )
    .await;
    assert_eq!(
        (status, error(&body)["code"].as_str()),
        (400, Some("bad_sdp")),
        "{body}"
    );
    let (status, _, body) = post_offer(&http, &base, "echo", Some("s3cret"), "hello").await;
    assert_eq!(
        (status, error(&body)["code"].as_str()),
        (400, Some("bad_sdp")),
        "{body}"
    );
    // The wrong content type; a body over the limit.
    let r = http
        .post(format!("{base}/whip/echo"))
        .bearer_auth("s3cret")
        .header("Content-Type", "text/plain")
        .body(sdp.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 415);
    let huge = format!("{sdp}{}", "a=x\r\n".repeat(10_000));
    let (status, _, body) = post_offer(&http, &base, "echo", Some("s3cret"), &huge).await;
    assert_eq!(
        (status, error(&body)["code"].as_str()),
        (413, Some("too_large"))
    );
    // Unknown sessions.
    let r = http
        .delete(format!("{base}/whip/sessions/0123"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    // Nothing was left behind by the refusals.
    assert_eq!(server.server.peers(), 0);
    assert!(server.runner.sessions().is_empty());
    // The peer limit: the second peer is refused while the first is connected.
    let first = Client::connect(&server, "echo", Some("s3cret")).await;
    let (_pc2, _parts2, sdp2) = client_offer().await;
    let (status, _, body) = post_offer(&http, &base, "echo", Some("s3cret"), &sdp2).await;
    assert_eq!(
        (status, error(&body)["code"].as_str()),
        (503, Some("peer_limit")),
        "{body}"
    );
    // Trickle on the live session: a candidate fragment is accepted.
    let r = http
        .patch(format!("{base}{}", first.resource))
        .bearer_auth("s3cret")
        .header("Content-Type", "application/trickle-ice-sdpfrag")
        .body("a=mid:0\r\na=end-of-candidates\r\n")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!(first.hang_up().await, 200);
    assert!(server.wait_empty(Duration::from_secs(5)).await);
    let again = Client::connect(&server, "echo", Some("s3cret")).await;
    assert_eq!(again.hang_up().await, 200);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_vanishes_is_ended_within_seconds() {
    let limits = Limits {
        vanish_timeout: Duration::from_secs(3),
        ..Limits::default()
    };
    let server = TestServer::start(&[("echo", ECHO)], None, limits).await;
    let relay = Relay::start().await;
    let client = Client::connect_through(&server, "echo", &relay).await;
    stream(&client, &encode_48k(&tone_48k(440.0, 0.3, 0.4))).await;
    client
        .wait_for(Duration::from_secs(5), |r| r.audio.len() >= 10)
        .await
        .expect("media flows through the relay");
    assert_eq!(server.server.peers(), 1);
    // The network path dies: no DTLS close, no more consent checks.
    let gone = Instant::now();
    relay.cut();
    assert!(
        server.wait_empty(Duration::from_secs(10)).await,
        "peer still held"
    );
    let took = gone.elapsed();
    eprintln!("vanished peer freed after {took:?}");
    assert!(took < Duration::from_secs(7), "freed after {took:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_signaling_connections_are_capped_and_closed() {
    use tokio::io::AsyncReadExt;
    let limits = Limits {
        max_connections: 4,
        connection_lifetime: Duration::from_secs(1),
        ..Limits::default()
    };
    let server = TestServer::start(&[("echo", ECHO)], None, limits).await;
    // Four connections that never send a request take every place.
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(tokio::net::TcpStream::connect(server.addr).await.unwrap());
    }
    let started = Instant::now();
    let http = reqwest::Client::new();
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        http.get(server.url("/pipelines")).send(),
    )
    .await
    .expect("served once the idle connections reach their lifetime")
    .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(800),
        "{waited:?}: the cap did not hold"
    );
    // The idle connections were closed by the server.
    for mut s in idle {
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf))
            .await
            .expect("closed")
            .unwrap_or(0);
        assert_eq!(n, 0);
    }
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_with_only_a_data_channel_gets_its_outputs() {
    let server = TestServer::start(&[("echo", ECHO)], None, Limits::default()).await;
    let client = Client::connect_data_only(&server, "echo").await;
    client
        .send_json(json!({"type": "text", "text": "hello", "metadata": {"turn": "1"}}))
        .await;
    client
        .wait_for(Duration::from_secs(5), |r| {
            r.messages.iter().any(|m| m["type"] == "output")
        })
        .await
        .expect("the output");
    let output = &client.messages("output")[0];
    assert_eq!(output["node_id"], "echo");
    assert_eq!(output["data"], json!({"type": "text", "text": "hello"}));
    assert_eq!(output["metadata"]["turn"], "1");
    assert_eq!(client.hang_up().await, 200);
    assert!(server.wait_empty(Duration::from_secs(5)).await);
    server.stop().await;
}
