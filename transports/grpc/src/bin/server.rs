//! `remotemedia-grpc-server`: serve RemoteMedia pipelines over gRPC.

use clap::Parser;
use remotemedia_grpc::args::{init_logging, run_server, ServerArgs};

#[derive(Parser, Debug)]
#[command(
    name = "remotemedia-grpc-server",
    version,
    about = "Serve RemoteMedia pipelines over gRPC (remotemedia.v1.PipelineService, grpc.health.v1, reflection)"
)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    init_logging();
    if let Err(error) = run_server("remotemedia-grpc-server", &cli.server).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
