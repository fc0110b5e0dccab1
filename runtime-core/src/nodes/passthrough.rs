//! `PassThrough`: emits its input unchanged.

use super::builtin::BuiltinFactory;
use super::params::{ConfigurableNode, NoParams, NodeParams};
use super::schema::ParamsSchema;
use super::{Node, Outputs};
use crate::data::RuntimeData;
use crate::Result;

/// Emits every input unchanged (type names `PassThrough` and `PassThroughNode`).
#[derive(Debug, Default, Clone, Copy)]
pub struct PassThroughNode;

impl Node for PassThroughNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        outputs.push(input);
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(NoParams::schema())
    }
}

impl ConfigurableNode for PassThroughNode {
    type Params = NoParams;
    fn from_params(_params: NoParams) -> Result<Self> {
        Ok(PassThroughNode)
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<PassThroughNode>(
        "PassThrough",
        &["PassThroughNode"],
        "emits its input unchanged",
    )
}
