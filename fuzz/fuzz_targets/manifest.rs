//! Manifest text from a client: parse within the default limits, then validate against
//! the built-in registry and a client policy. Must never panic, overflow the stack or
//! take unbounded time or memory.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remotemedia_runtime_core::manifest::Manifest;
use remotemedia_runtime_core::nodes::registry::NodeRegistry;
use remotemedia_runtime_core::policy::ExecutionPolicy;
use std::sync::OnceLock;

fn registry() -> &'static NodeRegistry {
    static REGISTRY: OnceLock<NodeRegistry> = OnceLock::new();
    REGISTRY.get_or_init(NodeRegistry::with_builtins)
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(manifest) = Manifest::parse(text) {
        let _ = ExecutionPolicy::default().check(&manifest, registry());
        if let Ok(pipeline) = registry().validate(&manifest) {
            let _ = pipeline.graph().order.len();
        }
        let _ = manifest.to_json();
    }
});
