//! `CalculatorNode`: arithmetic on Json requests.

use super::builtin::BuiltinFactory;
use super::params::{ConfigurableNode, NoParams, NodeParams};
use super::schema::ParamsSchema;
use super::{Node, Outputs};
use crate::data::RuntimeData;
use crate::{Error, Result};
use serde_json::{json, Value};

/// Json `{"operation": "add"|"subtract"|"multiply"|"divide", "operands": [a, b]}` → Json
/// `{"result": r, "operation": op}`.
///
/// Integer operands give an integer result for add/subtract/multiply (when it fits in
/// 64 bits); division and float operands give a float. More than two operands fold left
/// to right. Division by zero and malformed requests are node errors. Other data types
/// pass through.
#[derive(Debug, Default, Clone, Copy)]
pub struct CalculatorNode;

#[derive(Clone, Copy)]
enum Operation {
    Add,
    Subtract,
    Multiply,
    Divide,
}

impl Operation {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "add" => Self::Add,
            "subtract" => Self::Subtract,
            "multiply" => Self::Multiply,
            "divide" => Self::Divide,
            _ => return None,
        })
    }

    fn apply_int(self, a: i64, b: i64) -> Option<i64> {
        match self {
            Self::Add => a.checked_add(b),
            Self::Subtract => a.checked_sub(b),
            Self::Multiply => a.checked_mul(b),
            Self::Divide => None,
        }
    }

    fn apply_float(self, a: f64, b: f64) -> Result<f64> {
        Ok(match self {
            Self::Add => a + b,
            Self::Subtract => a - b,
            Self::Multiply => a * b,
            Self::Divide if b == 0.0 => return Err(Error::node("division by zero")),
            Self::Divide => a / b,
        })
    }
}

impl CalculatorNode {
    /// Evaluates one request.
    pub fn evaluate(request: &Value) -> Result<Value> {
        let op_name = request
            .get("operation")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::node(format!(
                    "malformed request: expected {{\"operation\": add|subtract|multiply|divide, \"operands\": [a, b]}}, got {request}"
                ))
            })?;
        let op = Operation::parse(op_name).ok_or_else(|| {
            Error::node(format!(
                "unknown operation '{op_name}' (expected add, subtract, multiply or divide)"
            ))
        })?;
        let operands = request
            .get("operands")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Error::node("malformed request: 'operands' must be a list of numbers")
            })?;
        if operands.len() < 2 {
            return Err(Error::node(format!(
                "malformed request: '{op_name}' needs at least 2 operands, got {}",
                operands.len()
            )));
        }
        if let Some(bad) = operands.iter().find(|v| !v.is_number()) {
            return Err(Error::node(format!(
                "malformed request: operand {bad} is not a number"
            )));
        }

        let all_int = operands.iter().all(|v| v.is_i64());
        let mut int_acc = operands[0].as_i64();
        let mut float_acc = operands[0].as_f64().unwrap_or(f64::NAN);
        for operand in &operands[1..] {
            let b = operand.as_f64().unwrap_or(f64::NAN);
            int_acc = match (all_int, int_acc, operand.as_i64()) {
                (true, Some(a), Some(b)) => op.apply_int(a, b),
                _ => None,
            };
            float_acc = op.apply_float(float_acc, b)?;
        }
        let result = match int_acc {
            Some(i) => json!(i),
            None => json!(float_acc),
        };
        Ok(json!({"result": result, "operation": op_name}))
    }
}

impl Node for CalculatorNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        match input {
            RuntimeData::Json(request) => {
                outputs.push(RuntimeData::Json(Self::evaluate(&request)?))
            }
            other => outputs.push(other),
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(NoParams::schema())
    }
}

impl ConfigurableNode for CalculatorNode {
    type Params = NoParams;
    fn from_params(_params: NoParams) -> Result<Self> {
        Ok(CalculatorNode)
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<CalculatorNode>(
        "CalculatorNode",
        &[],
        "Json {operation, operands} -> Json {result, operation}",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_addition_stays_integer() {
        let r = CalculatorNode::evaluate(&json!({"operation": "add", "operands": [2, 3]}));
        assert_eq!(r.expect("valid"), json!({"result": 5, "operation": "add"}));
    }

    #[test]
    fn division_gives_a_float() {
        let r = CalculatorNode::evaluate(&json!({"operation": "divide", "operands": [10, 4]}));
        assert_eq!(
            r.expect("valid"),
            json!({"result": 2.5, "operation": "divide"})
        );
    }

    #[test]
    fn division_by_zero_is_an_error() {
        let e = CalculatorNode::evaluate(&json!({"operation": "divide", "operands": [1, 0]}))
            .unwrap_err();
        assert_eq!(e.to_string(), "division by zero");
    }

    #[test]
    fn unknown_operation_is_named() {
        let e =
            CalculatorNode::evaluate(&json!({"operation": "pow", "operands": [1, 2]})).unwrap_err();
        assert!(e.to_string().contains("unknown operation 'pow'"), "{e}");
    }
}
