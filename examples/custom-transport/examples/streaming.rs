//! Streaming through the console transport: text arrives word by word (as from a speech
//! recognizer or an LLM), a session collects it into sentences, and each sentence is
//! printed as soon as it is complete, with the number of the word that completed it.
//!
//! The manifest is validated once; the session is driven only through `StreamSession`: one
//! task sends (each word with its sequence number), another forwards outputs as they come
//! with `next_output`, the way a live transport does.
//!
//! `echo "Hello there. How are you? Fine" | cargo run -p custom-transport --example streaming`

use custom_transport::{render, ConsoleTransport};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::{PipelineTransport, StreamSession, TransportData};
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
    let pipeline = transport.validate(&Manifest::from_yaml(MANIFEST)?)?;
    let session: Arc<dyn StreamSession> = transport.stream_pipeline(pipeline).await?.into();

    // Outputs are forwarded as they come, until the session ends.
    let printer = {
        let session = Arc::clone(&session);
        tokio::spawn(async move {
            while let Some(output) = session.next_output().await? {
                println!("{}", render(&output));
            }
            Ok::<(), remotemedia_runtime_core::Error>(())
        })
    };
    for (number, word) in text.split_inclusive(' ').enumerate() {
        let data =
            TransportData::new(RuntimeData::Text(word.to_owned())).with_sequence(number as u64);
        session.send_input(data).await?;
    }
    // End of input: the collector flushes its last sentence, then the session ends.
    session.close().await?;
    printer.await??;
    Ok(())
}
