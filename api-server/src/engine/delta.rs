//! What one engine chunk carries beyond plain text: reasoning, tool-call deltas, log
//! probabilities. Kept as the engine sent them (raw JSON for the structured parts), so the
//! OpenAI front door relays them unchanged and a collected reply can be rebuilt from them.
//!
//! A chunk with only text stays an [`EngineEvent::Token`](super::EngineEvent::Token): the
//! common path allocates nothing here.

use serde_json::value::RawValue;

/// One chunk's parts, as the engine sent them.
#[derive(Clone, Debug, Default)]
pub struct Delta {
    /// Text (`delta.content`, or a completion's `text`); never empty when `Some`.
    pub content: Option<String>,
    /// Reasoning text (`delta.reasoning_content`), shown apart from the answer.
    pub reasoning: Option<String>,
    /// `delta.tool_calls`: an array of partial calls, keyed by `index`.
    pub tool_calls: Option<Box<RawValue>>,
    /// The choice's `logprobs` object, for this chunk's tokens.
    pub logprobs: Option<Box<RawValue>>,
}

impl Delta {
    /// True when it carries nothing.
    pub fn is_empty(&self) -> bool {
        self.content.is_none() && self.reasoning.is_none() && self.tool_calls.is_none() && self.logprobs.is_none()
    }

    /// True when it carries more than text.
    pub fn is_rich(&self) -> bool {
        self.reasoning.is_some() || self.tool_calls.is_some() || self.logprobs.is_some()
    }
}

impl PartialEq for Delta {
    fn eq(&self, other: &Self) -> bool {
        let raw = |r: &Option<Box<RawValue>>| r.as_ref().map(|r| r.get().to_owned());
        self.content == other.content
            && self.reasoning == other.reasoning
            && raw(&self.tool_calls) == raw(&other.tool_calls)
            && raw(&self.logprobs) == raw(&other.logprobs)
    }
}

impl Eq for Delta {}
