//! `PassThrough`: emits its input unchanged.

use super::builtin::BuiltinFactory;
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
        Some(ParamsSchema::new())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory {
        name: "PassThrough",
        aliases: &["PassThroughNode"],
        description: "emits its input unchanged",
        schema: ParamsSchema::new,
        build: |_| Ok(Box::new(PassThroughNode)),
    }
}
