//! Unary execution through the console transport: each line (from the arguments, or from
//! stdin when there are none) runs through a calculator pipeline once.
//!
//! `cargo run -p custom-transport -- '{"operation": "add", "operands": [2, 3]}'`

use custom_transport::{parse_line, render, ConsoleTransport};
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::transport::PipelineTransport;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, BufReader};

const MANIFEST: &str = r#"{
  "version": "v1",
  "metadata": { "name": "console-calculator" },
  "nodes": [ { "id": "calculator", "node_type": "CalculatorNode" } ]
}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let transport = ConsoleTransport::new()?;
    let manifest = Arc::new(Manifest::from_json(MANIFEST)?);

    let mut lines: Vec<String> = std::env::args().skip(1).collect();
    if lines.is_empty() {
        let mut stdin = BufReader::new(tokio::io::stdin()).lines();
        while let Some(line) = stdin.next_line().await? {
            lines.push(line);
        }
    }
    let mut failures = 0;
    for line in lines.iter().filter(|l| !l.trim().is_empty()) {
        match transport
            .execute(Arc::clone(&manifest), parse_line(line))
            .await
        {
            Ok(output) => println!("{}", render(&output)),
            Err(error) => {
                failures += 1;
                eprintln!("error: {error}");
            }
        }
    }
    std::process::exit(if failures == 0 { 0 } else { 1 });
}
