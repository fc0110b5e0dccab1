//! The gRPC server end to end, in process, through the generated client.

use bytes::Bytes;
use remotemedia_grpc::proto::pipeline_service_client::PipelineServiceClient;
use remotemedia_grpc::proto::{
    self, data_item::Payload, stream_request, stream_response, DataItem, ExecuteRequest,
    StreamRequest,
};
use remotemedia_grpc::{bind, serve, ServerConfig};
use remotemedia_runtime_core::transport::PipelineRunner;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

struct TestServer {
    addr: std::net::SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestServer {
    async fn start(config: ServerConfig) -> Self {
        let config = ServerConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            ..config
        };
        let (listener, addr) = bind(&config).await.expect("bind");
        let (stop, stopped) = oneshot::channel::<()>();
        let done = tokio::spawn(serve(
            PipelineRunner::new().expect("runner"),
            config,
            listener,
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            addr,
            stop: Some(stop),
            done,
        }
    }

    async fn client(&self) -> PipelineServiceClient<Channel> {
        let channel = Channel::from_shared(format!("http://{}", self.addr))
            .expect("uri")
            .connect()
            .await
            .expect("connect");
        PipelineServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024)
    }

    async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(30), self.done)
            .await
            .expect("server stops")
            .expect("join")
            .expect("serve");
    }
}

fn text(t: &str) -> DataItem {
    DataItem {
        payload: Some(Payload::Text(t.into())),
        ..Default::default()
    }
}

fn json(v: serde_json::Value) -> DataItem {
    DataItem {
        payload: Some(Payload::Json(v.to_string())),
        ..Default::default()
    }
}

fn audio(samples: &[f32], rate: u32, channels: u32, ts: u64) -> DataItem {
    DataItem {
        payload: Some(Payload::Audio(proto::AudioData {
            samples: Bytes::from(
                samples
                    .iter()
                    .flat_map(|s| s.to_le_bytes())
                    .collect::<Vec<u8>>(),
            ),
            sample_rate: rate,
            channels,
            stream_id: Some("audio:0".into()),
            timestamp_us: ts,
        })),
        ..Default::default()
    }
}

fn node_id(status: &Status) -> Option<String> {
    status
        .metadata()
        .get(remotemedia_grpc::status::NODE_ID_METADATA)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

const CALC: &str = "nodes: [{id: calc, node_type: CalculatorNode}]";

#[tokio::test]
async fn unary_execute_returns_every_output_tagged_with_its_node() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.client().await;
    let response = client
        .execute(ExecuteRequest {
            manifest: CALC.into(),
            inputs: vec![
                json(serde_json::json!({"operation": "add", "operands": [2, 3]})),
                json(serde_json::json!({"operation": "divide", "operands": [10, 4]})),
            ],
        })
        .await
        .expect("execute")
        .into_inner();
    assert_eq!(response.outputs.len(), 2);
    let results: Vec<serde_json::Value> = response
        .outputs
        .iter()
        .map(|o| {
            assert_eq!(o.node_id, "calc");
            match &o.data.as_ref().and_then(|d| d.payload.clone()) {
                Some(Payload::Json(j)) => {
                    serde_json::from_str::<serde_json::Value>(j).expect("json")["result"].clone()
                }
                other => panic!("unexpected {other:?}"),
            }
        })
        .collect();
    assert_eq!(results, [serde_json::json!(5), serde_json::json!(2.5)]);
    server.shutdown().await;
}

#[tokio::test]
async fn every_data_type_round_trips_through_a_pipeline() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.client().await;
    let inputs = vec![
        audio(&[0.5, -0.25, 1.0, 0.0], 48_000, 2, 42),
        text("héllo"),
        json(serde_json::json!({"nested": {"list": [1, 2.5, null]}})),
        DataItem {
            payload: Some(Payload::Binary(Bytes::from_static(&[0, 1, 255]))),
            ..Default::default()
        },
        DataItem {
            payload: Some(Payload::Video(proto::VideoData {
                pixel_data: Bytes::from_static(&[9; 12]),
                width: 2,
                height: 2,
                format: "rgb24".into(),
                codec: None,
                frame_number: 3,
                timestamp_us: 1000,
                is_keyframe: true,
                stream_id: Some("video:0".into()),
            })),
            ..Default::default()
        },
        DataItem {
            payload: Some(Payload::Tensor(proto::TensorData {
                data: Bytes::from(vec![1u8; 16]),
                shape: vec![2, 2],
                dtype: "f32".into(),
            })),
            ..Default::default()
        },
    ];
    let response = client
        .execute(ExecuteRequest {
            manifest: "nodes: [{id: echo, node_type: PassThrough}]".into(),
            inputs: inputs.clone(),
        })
        .await
        .expect("execute")
        .into_inner();
    let got: Vec<DataItem> = response
        .outputs
        .into_iter()
        .filter_map(|o| o.data)
        .collect();
    assert_eq!(got.len(), inputs.len());
    for (sent, received) in inputs.iter().zip(&got) {
        match (&sent.payload, &received.payload) {
            (Some(Payload::Json(a)), Some(Payload::Json(b))) => assert_eq!(
                serde_json::from_str::<serde_json::Value>(a).expect("json"),
                serde_json::from_str::<serde_json::Value>(b).expect("json")
            ),
            _ => assert_eq!(sent, received),
        }
    }
    server.shutdown().await;
}

async fn open_stream(
    client: &mut PipelineServiceClient<Channel>,
    manifest: &str,
) -> Result<
    (
        mpsc::Sender<StreamRequest>,
        tonic::Streaming<proto::StreamResponse>,
    ),
    Status,
> {
    let (tx, rx) = mpsc::channel(16);
    tx.send(StreamRequest {
        kind: Some(stream_request::Kind::Open(proto::OpenSession {
            manifest: manifest.into(),
        })),
    })
    .await
    .expect("queue open");
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut responses = client.stream_pipeline(stream).await?.into_inner();
    match responses.message().await?.and_then(|m| m.kind) {
        Some(stream_response::Kind::Opened(opened)) => assert!(!opened.session_id.is_empty()),
        other => panic!("expected opened, got {other:?}"),
    }
    Ok((tx, responses))
}

fn data(item: DataItem) -> StreamRequest {
    StreamRequest {
        kind: Some(stream_request::Kind::Data(item)),
    }
}

fn close() -> StreamRequest {
    StreamRequest {
        kind: Some(stream_request::Kind::Close(proto::CloseSession {})),
    }
}

const RESAMPLE_CHUNK: &str = "nodes:\n  - {id: resample, node_type: FastResampleNode, params: {target_rate: 16000}}\n  - {id: chunk, node_type: AudioChunkerNode, params: {chunk_size: 320}}\n";

#[tokio::test]
async fn streaming_audio_through_resample_and_chunker() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.client().await;
    let (tx, mut responses) = open_stream(&mut client, RESAMPLE_CHUNK)
        .await
        .expect("open");
    let sender = tokio::spawn(async move {
        for i in 0..50u64 {
            let frame: Vec<f32> = (0..960)
                .map(|n| {
                    ((i * 960 + n) as f32 * 440.0 * std::f32::consts::TAU / 48_000.0).sin() * 0.5
                })
                .collect();
            tx.send(data(audio(&frame, 48_000, 1, i * 20_000)))
                .await
                .expect("send");
        }
        tx.send(close()).await.expect("close");
    });
    let mut frames = 0usize;
    let mut outputs = 0u64;
    let closed = loop {
        match responses
            .message()
            .await
            .expect("stream ok")
            .and_then(|m| m.kind)
        {
            Some(stream_response::Kind::Output(o)) => {
                assert_eq!(o.node_id, "chunk");
                let Some(Payload::Audio(a)) = o.data.and_then(|d| d.payload) else {
                    panic!("audio")
                };
                assert_eq!(a.sample_rate, 16_000);
                assert_eq!(a.timestamp_us, frames as u64 * 1_000_000 / 16_000);
                frames += a.samples.len() / 4;
                outputs += 1;
            }
            Some(stream_response::Kind::Closed(c)) => break c,
            other => panic!("unexpected {other:?}"),
        }
    };
    sender.await.expect("sender");
    assert_eq!(frames, 16_000, "one second in, one second out");
    assert_eq!(closed.outputs, outputs);
    assert!(responses.message().await.expect("end").is_none());
    server.shutdown().await;
}

#[tokio::test]
async fn each_error_class_has_its_code_and_names_the_node() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.client().await;
    let execute = |manifest: &str, inputs: Vec<DataItem>| ExecuteRequest {
        manifest: manifest.into(),
        inputs,
    };

    let bad_param = client
        .execute(execute(
            "nodes: [{id: c, node_type: AudioChunkerNode, params: {chunk_size: 0}}]",
            vec![],
        ))
        .await
        .unwrap_err();
    assert_eq!(bad_param.code(), Code::InvalidArgument);
    assert_eq!(node_id(&bad_param).as_deref(), Some("c"));
    assert!(
        bad_param.message().contains("param 'chunk_size'"),
        "{}",
        bad_param.message()
    );

    let syntax = client
        .execute(execute("nodes: [", vec![]))
        .await
        .unwrap_err();
    assert_eq!(syntax.code(), Code::InvalidArgument);
    assert!(
        syntax.message().starts_with("manifest is not valid YAML"),
        "{}",
        syntax.message()
    );

    let unknown = client
        .execute(execute(
            "nodes: [{id: x, node_type: WhisperLarge}]",
            vec![text("a")],
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(node_id(&unknown).as_deref(), Some("x"));

    let failure = client
        .execute(execute(
            CALC,
            vec![json(
                serde_json::json!({"operation": "divide", "operands": [1, 0]}),
            )],
        ))
        .await
        .unwrap_err();
    assert_eq!(failure.code(), Code::Aborted);
    assert_eq!(node_id(&failure).as_deref(), Some("calc"));
    assert_eq!(
        failure.message(),
        "node 'calc' (CalculatorNode) failed: division by zero"
    );

    let ragged = client
        .execute(execute(
            CALC,
            vec![text("ok"), audio(&[0.0; 3], 16_000, 2, 0)],
        ))
        .await
        .unwrap_err();
    assert_eq!(ragged.code(), Code::InvalidArgument);
    assert!(
        ragged
            .message()
            .starts_with("inputs[1]: audio has 3 samples, not a whole number of 2-channel frames"),
        "{}",
        ragged.message()
    );

    // Streaming: a node failure ends the stream with ABORTED naming the node.
    let (tx, mut responses) = open_stream(&mut client, CALC).await.expect("open");
    tx.send(data(json(
        serde_json::json!({"operation": "divide", "operands": [1, 0]}),
    )))
    .await
    .expect("send");
    let status = loop {
        match responses.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream must end with an error"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Aborted);
    assert_eq!(node_id(&status).as_deref(), Some("calc"));

    // Streaming: the first message must open the session.
    let (tx, rx) = mpsc::channel(1);
    tx.send(data(text("too early"))).await.expect("send");
    let err = client
        .stream_pipeline(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "the first message of a stream must be `open` with a manifest"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn bearer_token_is_required_when_configured() {
    let server = TestServer::start(ServerConfig {
        auth_token: Some("s3cret".into()),
        ..ServerConfig::default()
    })
    .await;
    let mut client = server.client().await;
    let request = || ExecuteRequest {
        manifest: "nodes: [{id: p, node_type: PassThrough}]".into(),
        inputs: vec![text("x")],
    };

    let missing = client.execute(request()).await.unwrap_err();
    assert_eq!(missing.code(), Code::Unauthenticated);
    assert_eq!(
        missing.message(),
        "missing bearer token (authorization: Bearer <token>)"
    );

    let mut wrong = Request::new(request());
    wrong
        .metadata_mut()
        .insert("authorization", "Bearer nope".parse().expect("header"));
    assert_eq!(
        client.execute(wrong).await.unwrap_err().code(),
        Code::Unauthenticated
    );

    let mut right = Request::new(request());
    right
        .metadata_mut()
        .insert("authorization", "Bearer s3cret".parse().expect("header"));
    assert_eq!(
        client
            .execute(right)
            .await
            .expect("authorized")
            .into_inner()
            .outputs
            .len(),
        1
    );

    // Health stays open.
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let status = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "remotemedia.v1.PipelineService".into(),
        })
        .await
        .expect("health")
        .into_inner()
        .status;
    assert_eq!(
        status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );
    server.shutdown().await;
}

#[tokio::test]
async fn without_auth_any_client_is_served() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.client().await;
    let mut request = Request::new(ExecuteRequest {
        manifest: "nodes: [{id: p, node_type: PassThrough}]".into(),
        inputs: vec![text("x")],
    });
    request
        .metadata_mut()
        .insert("authorization", "Bearer anything".parse().expect("header"));
    assert!(client.execute(request).await.is_ok());
    server.shutdown().await;
}

#[tokio::test]
async fn session_limit_is_resource_exhausted_and_frees_up() {
    let server = TestServer::start(ServerConfig {
        max_sessions: 2,
        ..ServerConfig::default()
    })
    .await;
    let mut client = server.client().await;
    let first = open_stream(&mut client, CALC).await.expect("first");
    let _second = open_stream(&mut client, CALC).await.expect("second");
    let Err(third) = open_stream(&mut client, CALC).await else {
        panic!("the third session must be refused");
    };
    assert_eq!(third.code(), Code::ResourceExhausted);
    assert_eq!(
        third.message(),
        "server is at its limit of 2 concurrent sessions (--max-sessions)"
    );
    let busy = client
        .execute(ExecuteRequest {
            manifest: CALC.into(),
            inputs: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(busy.code(), Code::ResourceExhausted);

    let (tx, mut responses) = first;
    tx.send(close()).await.expect("close");
    while let Ok(Some(_)) = responses.message().await {}
    let mut reopened = None;
    for _ in 0..50 {
        if let Ok(s) = open_stream(&mut client, CALC).await {
            reopened = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(reopened.is_some(), "a closed session frees its slot");
    server.shutdown().await;
}

#[tokio::test]
async fn oversized_messages_are_resource_exhausted() {
    let server = TestServer::start(ServerConfig {
        max_message_bytes: 64 * 1024,
        ..ServerConfig::default()
    })
    .await;
    let mut client = server.client().await;
    for samples in [25_000usize, 300_000] {
        let err = client
            .execute(ExecuteRequest {
                manifest: "nodes: [{id: p, node_type: PassThrough}]".into(),
                inputs: vec![audio(&vec![0.0; samples], 16_000, 1, 0)],
            })
            .await
            .unwrap_err();
        assert_eq!(
            err.code(),
            Code::ResourceExhausted,
            "{samples} samples: {}",
            err.message()
        );
    }
    // Within the limit works.
    assert!(client
        .execute(ExecuteRequest {
            manifest: "nodes: [{id: p, node_type: PassThrough}]".into(),
            inputs: vec![audio(&vec![0.0; 1000], 16_000, 1, 0)],
        })
        .await
        .is_ok());
    server.shutdown().await;
}

#[tokio::test]
async fn idle_streams_are_closed() {
    let server = TestServer::start(ServerConfig {
        idle_timeout: Duration::from_secs(1),
        ..ServerConfig::default()
    })
    .await;
    let mut client = server.client().await;
    let (_tx, mut responses) = open_stream(&mut client, CALC).await.expect("open");
    let status = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match responses.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => panic!("expected an error"),
                Err(status) => break status,
            }
        }
    })
    .await
    .expect("closed within the timeout");
    assert_eq!(status.code(), Code::ResourceExhausted);
    assert_eq!(
        status.message(),
        "session idle for 1 s (--idle-timeout-secs)"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_then_closes_open_sessions() {
    let server = TestServer::start(ServerConfig {
        shutdown_grace: Duration::from_millis(500),
        ..ServerConfig::default()
    })
    .await;
    let mut client = server.client().await;
    let (tx, mut responses) = open_stream(&mut client, CALC).await.expect("open");
    let started = std::time::Instant::now();
    let TestServer {
        addr: _,
        mut stop,
        done,
    } = server;
    if let Some(stop) = stop.take() {
        let _ = stop.send(());
    }
    // During the grace period the open session still works.
    tx.send(data(json(
        serde_json::json!({"operation": "add", "operands": [1, 1]}),
    )))
    .await
    .expect("send");
    match responses
        .message()
        .await
        .expect("served during grace")
        .and_then(|m| m.kind)
    {
        Some(stream_response::Kind::Output(o)) => assert_eq!(o.node_id, "calc"),
        other => panic!("unexpected {other:?}"),
    }
    // New sessions are refused.
    let refused = client
        .execute(ExecuteRequest {
            manifest: CALC.into(),
            inputs: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    // After the grace period the session is closed with UNAVAILABLE.
    let status = loop {
        match responses.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("expected UNAVAILABLE"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Unavailable);
    assert!(started.elapsed() >= Duration::from_millis(450));
    drop(tx);
    tokio::time::timeout(Duration::from_secs(10), done)
        .await
        .expect("server exits after closing the sessions")
        .expect("join")
        .expect("serve");
}

#[tokio::test]
async fn list_nodes_and_reflection_describe_the_service() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.client().await;
    let nodes = client
        .list_nodes(proto::ListNodesRequest {})
        .await
        .expect("list")
        .into_inner()
        .nodes;
    let resample = nodes
        .iter()
        .find(|n| n.node_type == "FastResampleNode")
        .expect("listed");
    assert_eq!(resample.aliases, ["AudioResampleNode"]);
    assert_eq!(resample.kind, "rust");
    let schema: serde_json::Value =
        serde_json::from_str(&resample.params_schema).expect("schema json");
    assert_eq!(schema["properties"]["target_rate"]["default"], 16000);

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::{
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
        ServerReflectionRequest,
    };
    let channel = Channel::from_shared(format!("http://{}", server.addr))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter(vec![request]))
        .await
        .expect("reflection")
        .into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = stream
        .message()
        .await
        .expect("response")
        .and_then(|r| r.message_response)
    else {
        panic!("list services response expected");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"remotemedia.v1.PipelineService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn cancel_ends_the_session_with_cancelled() {
    let server = TestServer::start(ServerConfig::default()).await;
    let mut client = server.client().await;
    let (tx, mut responses) = open_stream(&mut client, CALC).await.expect("open");
    tx.send(StreamRequest {
        kind: Some(stream_request::Kind::Cancel(proto::CancelSession {})),
    })
    .await
    .expect("cancel");
    let status = loop {
        match responses.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("expected CANCELLED"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Cancelled);
    assert_eq!(status.message(), "session cancelled by the client");
    server.shutdown().await;
}
