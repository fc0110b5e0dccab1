//! Python nodes in the browser: the engine's `multiprocess` executor backend, whose nodes
//! run in Pyodide on the JavaScript side.
//!
//! A manifest's Python node reads exactly as it does natively — `executor: multiprocess`
//! or a `multiprocess:` block naming `modules` (found on `python_path`, URLs relative to the
//! manifest) or inline `source` — so the same manifest mixes Rust and Python nodes in a
//! page and on a server. This module checks the block and drives node instances; the
//! package's `python.js` (the *host*, handed over with [`set_python_host`]) loads Pyodide
//! on first use, fetches modules, and calls the node class through the SDK's
//! `remotemedia._browser.Host`.
//!
//! What differs from worker processes, by necessity: every Python node of the page lives in
//! one interpreter on the page's thread (`share` changes nothing; class-level state is
//! shared by all instances); a Python call cannot be interrupted, so
//! `process_timeout_ms` / `init_timeout_ms` are checked when the call returns (the node
//! fails then); a page has no interpreter to choose and no process environment, so
//! `python_executable` and `env` are refused.

use crate::data::{from_tagged, message_of, set, to_tagged};
use async_trait::async_trait;
use js_sys::{Array, Object, Promise};
use remotemedia_runtime_core::data::RuntimeData;
use remotemedia_runtime_core::manifest::{python_block_error, NodeManifest, PythonBlock};
use remotemedia_runtime_core::nodes::registry::{BackendSettings, ExecutorBackend, NodeSpec};
use remotemedia_runtime_core::nodes::{ErrorReport, NodeContext, NodeExecutor, Outputs};
use remotemedia_runtime_core::{Error, Result};
use send_wrapper::SendWrapper;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// The name manifests use: the same as natively, so manifests run unchanged.
pub(crate) const BACKEND_NAME: &str = "multiprocess";

#[wasm_bindgen]
extern "C" {
    /// The JavaScript side that runs Python (`python.js`'s `PythonHost`). Every call
    /// answers an array (see `remotemedia._browser.Host`), or a promise of one.
    #[derive(Clone)]
    pub type PythonHost;

    /// Loads Pyodide (once) and the node's modules, opens an instance: `["instance", n]`.
    #[wasm_bindgen(method, catch)]
    fn open(this: &PythonHost, spec: &JsValue) -> std::result::Result<JsValue, JsValue>;

    /// One item (`[kind, ...fields]`): `["outputs", [item, ...]]`.
    #[wasm_bindgen(method, catch)]
    fn process(
        this: &PythonHost,
        instance: u32,
        item: &Array,
    ) -> std::result::Result<JsValue, JsValue>;

    /// End of stream: answers like `process`.
    #[wasm_bindgen(method, catch)]
    fn flush(this: &PythonHost, instance: u32) -> std::result::Result<JsValue, JsValue>;

    /// `cleanup()`: `["closed"]`.
    #[wasm_bindgen(method, catch)]
    fn close(this: &PythonHost, instance: u32) -> std::result::Result<JsValue, JsValue>;
}

thread_local! {
    static HOST: RefCell<Option<PythonHost>> = const { RefCell::new(None) };
}

/// Hands the engine the JavaScript host that runs Python nodes (the package's `index.js`
/// does it in `init()`).
#[wasm_bindgen(js_name = setPythonHost)]
pub fn set_python_host(host: PythonHost) {
    HOST.with(|h| *h.borrow_mut() = Some(host));
}

fn host() -> Result<PythonHost> {
    HOST.with(|h| h.borrow().clone()).ok_or_else(|| {
        Error::Node(
            "no Python host: load the engine through the package's index.js (init()), which runs Python nodes in Pyodide"
                .to_owned(),
        )
    })
}

/// A node's block as the browser runs it.
#[derive(Debug, Clone)]
struct Settings {
    python_path: Vec<String>,
    modules: Vec<String>,
    source: Option<String>,
    init_timeout: Option<Duration>,
    process_timeout: Option<Duration>,
}

impl Settings {
    fn resolve(node: &NodeManifest) -> Result<Self> {
        let block = PythonBlock::parse(node)?;
        if block.python_executable.is_some() {
            return Err(python_block_error(
                node,
                "python_executable",
                "a browser has no interpreter to choose: Python nodes run in the page's Pyodide (remove the key to run this manifest in the browser)",
            ));
        }
        if !block.env.is_empty() {
            return Err(python_block_error(
                node,
                "env",
                "a browser has no process environment: every Python node of the page shares one interpreter (remove the key to run this manifest in the browser)",
            ));
        }
        Ok(Self {
            python_path: block.python_path,
            modules: block.modules,
            source: block.source,
            init_timeout: block.init_timeout,
            process_timeout: block.process_timeout.flatten(),
        })
    }
}

/// The executor backend of Python nodes in the browser.
#[derive(Debug, Default)]
pub(crate) struct PythonBackend;

#[async_trait]
impl ExecutorBackend for PythonBackend {
    fn name(&self) -> &str {
        BACKEND_NAME
    }

    fn validate_node(&self, node: &NodeManifest) -> Result<Option<BackendSettings>> {
        Ok(Some(Arc::new(Settings::resolve(node)?)))
    }

    async fn create_node(&self, spec: NodeSpec) -> Result<Box<dyn NodeExecutor>> {
        let settings = match spec.settings::<Settings>() {
            Some(settings) => settings.clone(),
            None => Settings::resolve(&spec.node)?,
        };
        Ok(Box::new(PythonNode {
            node: spec.node,
            session_id: spec.session_id,
            settings,
            instance: None,
        }))
    }
}

/// One Python node instance of a session, hosted by the page's Pyodide.
struct PythonNode {
    node: NodeManifest,
    session_id: String,
    settings: Settings,
    instance: Option<u32>,
}

fn now_ms() -> f64 {
    js_sys::Date::now()
}

/// Reads a host call's answer — at once when the node answered synchronously, else once
/// its promise settles: the answer array, or `Err` with the node's report when it raised.
async fn call(answer: std::result::Result<JsValue, JsValue>) -> Result<Array> {
    let failed = |e: JsValue| Error::Node(format!("the Python host failed: {}", message_of(&e)));
    let answer = answer.map_err(failed)?;
    let answer = match answer.dyn_into::<Array>() {
        Ok(array) => array,
        Err(pending) => JsFuture::from(Promise::resolve(&pending))
            .await
            .map_err(failed)?
            .dyn_into::<Array>()
            .map_err(|_| {
                Error::Node("the Python host answered something that is not an answer".to_owned())
            })?,
    };
    if answer.get(0).as_string().as_deref() == Some("error") {
        let text = |i: u32| answer.get(i).as_string().unwrap_or_default();
        let report = ErrorReport::new(&text(1), text(2), text(3));
        return Err(Error::Node(report.to_string()));
    }
    Ok(answer)
}

impl PythonNode {
    fn check_time(
        &self,
        started: f64,
        limit: Option<Duration>,
        doing: &str,
        key: &str,
    ) -> Result<()> {
        let took = now_ms() - started;
        match limit {
            Some(limit) if took > limit.as_secs_f64() * 1000.0 => Err(Error::Node(format!(
                "{doing} took {took:.0} ms, over multiprocess.{key} ({} ms); Python on the page's thread cannot be interrupted, so the limit is checked when the call returns",
                limit.as_millis()
            ))),
            _ => Ok(()),
        }
    }

    fn instance(&self) -> Result<u32> {
        self.instance
            .ok_or_else(|| Error::Node("the Python node was not started".to_owned()))
    }

    fn spec(&self, ctx: &NodeContext) -> JsValue {
        let spec = Object::new();
        set(&spec, "nodeType", self.node.node_type.as_str());
        set(&spec, "nodeId", ctx.node_id.as_str());
        set(&spec, "sessionId", self.session_id.as_str());
        set(&spec, "params", ctx.params.to_string());
        let list = |items: &[String]| {
            items
                .iter()
                .map(|s| JsValue::from(s.as_str()))
                .collect::<Array>()
        };
        set(&spec, "modules", list(&self.settings.modules));
        set(&spec, "pythonPath", list(&self.settings.python_path));
        if let Some(source) = &self.settings.source {
            set(&spec, "source", source.as_str());
        }
        if let Some(base) = self.node.base_dir.as_ref().and_then(|b| b.to_str()) {
            set(&spec, "baseUrl", base);
        }
        spec.into()
    }

    fn emit_answer(answer: Array, outputs: &mut Outputs) -> Result<()> {
        let items: Array = answer.get(1).dyn_into().unwrap_or_default();
        for item in items.iter() {
            outputs.push(from_tagged(&item)?);
        }
        Ok(())
    }
}

#[async_trait]
impl NodeExecutor for PythonNode {
    fn node_type(&self) -> &str {
        &self.node.node_type
    }

    async fn initialize(&mut self, ctx: &NodeContext) -> Result<()> {
        SendWrapper::new(async {
            let started = now_ms();
            let answer = call(host()?.open(&self.spec(ctx))).await?;
            let instance = answer
                .get(1)
                .as_f64()
                .ok_or_else(|| Error::Node("the Python host opened no instance".to_owned()))?;
            self.instance = Some(instance as u32);
            self.check_time(
                started,
                self.settings.init_timeout,
                "starting",
                "init_timeout_ms",
            )
        })
        .await
    }

    async fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        SendWrapper::new(async {
            let instance = self.instance()?;
            let item = to_tagged(&input)?;
            let started = now_ms();
            let answer = call(host()?.process(instance, &item)).await?;
            self.check_time(
                started,
                self.settings.process_timeout,
                "process()",
                "process_timeout_ms",
            )?;
            Self::emit_answer(answer, outputs)
        })
        .await
    }

    async fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        SendWrapper::new(async {
            let instance = self.instance()?;
            let started = now_ms();
            let answer = call(host()?.flush(instance)).await?;
            self.check_time(
                started,
                self.settings.process_timeout,
                "flush()",
                "process_timeout_ms",
            )?;
            Self::emit_answer(answer, outputs)
        })
        .await
    }

    async fn cleanup(&mut self) -> Result<()> {
        let Some(instance) = self.instance.take() else {
            return Ok(());
        };
        SendWrapper::new(async move { call(host()?.close(instance)).await.map(|_| ()) }).await
    }
}
