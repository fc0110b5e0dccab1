//! Streaming through the console transport: text arrives word by word (as from a speech
//! recognizer or an LLM), a session collects it into sentences, and each sentence is
//! printed as soon as it is complete.
//!
//! `echo "Hello there. How are you? Fine" | cargo run -p custom-transport --example streaming`

use custom_transport::{render, ConsoleTransport};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{PipelineTransport, TransportData};
use std::sync::Arc;
use tokio::io::AsyncReadExt;

const MANIFEST: &str = r#"
version: v1
metadata: { name: console-sentences }
nodes:
  - { id: sentences, node_type: TextCollectorNode }
  - { id: console, node_type: PassThrough }
"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut text = String::new();
    tokio::io::stdin().read_to_string(&mut text).await?;
    if text.trim().is_empty() {
        text = "Streaming works. Each sentence prints when it ends! The last one flushes".into();
    }

    let transport = ConsoleTransport::new()?;
    let session = transport
        .stream(Arc::new(Manifest::from_yaml(MANIFEST)?))
        .await?;
    for word in text.split_inclusive(' ') {
        let data = TransportData::new(RuntimeData::Text(word.to_owned()));
        session.send_input(data).await?;
        while let Some(output) = session.recv_output().await? {
            println!("{}", render(&output));
        }
    }
    session.close().await?;
    while let Some(output) = session.recv_output().await? {
        println!("{} (flushed at end of stream)", render(&output));
    }
    Ok(())
}
