//! `TextCollectorNode`: turns a stream of text fragments into sentences.

use super::builtin::BuiltinFactory;
use super::params::{ConfigurableNode, NodeParams};
use super::schema::ParamsSchema;
use super::{Node, Outputs};
use crate::data::RuntimeData;
use crate::Result;

/// Params of [`TextCollectorNode`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextCollectorParams {
    /// Shorter sentences are joined with the next one.
    pub min_sentence_length: usize,
}

impl Default for TextCollectorParams {
    fn default() -> Self {
        Self {
            min_sentence_length: 1,
        }
    }
}

impl NodeParams for TextCollectorParams {
    fn schema() -> ParamsSchema {
        let d = Self::default();
        ParamsSchema::new().integer(
            "min_sentence_length",
            Some(d.min_sentence_length as i64),
            1,
            1_000_000,
            "shorter sentences are joined with the next one",
        )
    }
}

/// Accumulates `Text` and emits each complete sentence, trimmed.
///
/// A sentence ends at `.`, `!`, `?`, `;` or a newline (a run such as `?!` or `...`, plus
/// closing quotes or brackets, stays with it). A `.` followed directly by a letter or digit
/// (`3.14`, `e.g.x`) does not end a sentence. A sentence shorter than
/// `min_sentence_length` characters is not dropped: it is joined with the next one. At
/// end of stream the unfinished remainder is emitted. Other data types pass through.
#[derive(Debug, Clone)]
pub struct TextCollectorNode {
    min_sentence_length: usize,
    buffer: String,
    /// Complete sentences held back because they were shorter than the minimum.
    pending: String,
}

impl TextCollectorNode {
    /// A collector emitting sentences of at least `min_sentence_length` characters.
    pub fn new(min_sentence_length: usize) -> Self {
        Self {
            min_sentence_length: min_sentence_length.max(1),
            buffer: String::new(),
            pending: String::new(),
        }
    }

    fn emit(&mut self, sentence: &str, outputs: &mut Outputs) {
        let sentence = sentence.trim();
        if sentence.is_empty() {
            return;
        }
        if !self.pending.is_empty() {
            self.pending.push(' ');
        }
        self.pending.push_str(sentence);
        if self.pending.chars().count() >= self.min_sentence_length {
            outputs.push(RuntimeData::Text(std::mem::take(&mut self.pending)));
        }
    }

    /// Byte offset just past the end of the first complete sentence in `text`.
    fn sentence_end(text: &str) -> Option<usize> {
        let chars: Vec<(usize, char)> = text.char_indices().collect();
        let mut i = 0;
        while i < chars.len() {
            let (_, c) = chars[i];
            if c == '\n' {
                return Some(chars[i].0 + 1);
            }
            if matches!(c, '.' | '!' | '?' | ';') {
                let mut j = i + 1;
                while j < chars.len() && matches!(chars[j].1, '.' | '!' | '?' | ';') {
                    j += 1;
                }
                while j < chars.len() && matches!(chars[j].1, '"' | '\'' | ')' | ']' | '”' | '’')
                {
                    j += 1;
                }
                let ends = match chars.get(j) {
                    None => true,
                    Some((_, next)) => !(c == '.' && next.is_alphanumeric()),
                };
                if ends {
                    return Some(chars.get(j).map_or(text.len(), |(pos, _)| *pos));
                }
                i = j;
                continue;
            }
            i += 1;
        }
        None
    }
}

impl Default for TextCollectorNode {
    fn default() -> Self {
        Self::new(TextCollectorParams::default().min_sentence_length)
    }
}

impl ConfigurableNode for TextCollectorNode {
    type Params = TextCollectorParams;
    fn from_params(params: TextCollectorParams) -> Result<Self> {
        Ok(Self::new(params.min_sentence_length))
    }
}

impl Node for TextCollectorNode {
    fn process(&mut self, input: RuntimeData, outputs: &mut Outputs) -> Result<()> {
        let RuntimeData::Text(text) = input else {
            outputs.push(input);
            return Ok(());
        };
        self.buffer.push_str(&text);
        while let Some(end) = Self::sentence_end(&self.buffer) {
            let rest = self.buffer.split_off(end);
            let sentence = std::mem::replace(&mut self.buffer, rest);
            self.emit(&sentence, outputs);
        }
        Ok(())
    }

    fn flush(&mut self, outputs: &mut Outputs) -> Result<()> {
        let rest = std::mem::take(&mut self.buffer);
        let rest = rest.trim();
        if !rest.is_empty() {
            if !self.pending.is_empty() {
                self.pending.push(' ');
            }
            self.pending.push_str(rest);
        }
        if !self.pending.is_empty() {
            outputs.push(RuntimeData::Text(std::mem::take(&mut self.pending)));
        }
        Ok(())
    }

    fn params_schema() -> Option<ParamsSchema> {
        Some(TextCollectorParams::schema())
    }
}

pub(crate) fn factory() -> BuiltinFactory {
    BuiltinFactory::of::<TextCollectorNode>(
        "TextCollectorNode",
        &[],
        "accumulates text and emits complete sentences",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(node: &mut TextCollectorNode, inputs: &[&str]) -> Vec<String> {
        let mut out = Outputs::new();
        for i in inputs {
            node.process(RuntimeData::Text((*i).to_owned()), &mut out)
                .expect("text is accepted");
        }
        node.flush(&mut out).expect("flush succeeds");
        out.into_vec()
            .into_iter()
            .filter_map(|d| d.as_text().map(str::to_owned))
            .collect()
    }

    #[test]
    fn sentences_split_across_fragments_are_joined() {
        let mut n = TextCollectorNode::default();
        let out = run(
            &mut n,
            &["Hello wor", "ld. How are", " you? Fine; ok", "\nbye"],
        );
        assert_eq!(out, ["Hello world.", "How are you?", "Fine;", "ok", "bye"]);
    }

    #[test]
    fn decimal_points_do_not_end_sentences() {
        let mut n = TextCollectorNode::default();
        assert_eq!(
            run(&mut n, &["Pi is 3.14 roughly. Yes!"]),
            ["Pi is 3.14 roughly.", "Yes!"]
        );
    }

    #[test]
    fn short_sentences_are_joined_not_dropped() {
        let mut n = TextCollectorNode::new(10);
        assert_eq!(
            run(&mut n, &["Hi. Ok. This is long enough."]),
            ["Hi. Ok. This is long enough."]
        );
        let mut n = TextCollectorNode::new(10);
        assert_eq!(run(&mut n, &["Hi."]), ["Hi."]);
    }
}
