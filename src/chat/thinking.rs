//! Reasoning kept apart from the answer.
//!
//! Reasoning models (Qwen3 and its kin) write a chain of thought inside `<think>…</think>`
//! before they answer. Everything downstream wants the answer alone: tool calls are parsed from
//! it, it goes into the conversation history, a judge reads it. So the reply is split in two.
//!
//! Three shapes occur:
//! - the reply opens the block itself: `<think>…</think>answer` (Qwen3 with thinking on);
//! - the chat template opened it at the end of the prompt (models that always think), so the
//!   reply starts inside it: `…</think>answer`. Only the caller knows this; it says so with
//!   `opened`;
//! - no block at all: the whole reply is the answer, untouched.
//!
//! A reply cut off by `max_tokens` inside the block is all reasoning and no answer. Whitespace
//! around the reasoning and between `</think>` and the answer is dropped, as the Qwen3 templates
//! themselves drop it when they render a past turn.
//!
//! [`ReasoningSplitter`] does the split incrementally, so that a stream of text pieces can be
//! shown as it arrives; [`split`] applies it to a whole text. Both give the same result however
//! the text is cut into pieces.

/// The tag that opens a reasoning block.
pub const OPEN: &str = "<think>";
/// The tag that closes it.
pub const CLOSE: &str = "</think>";

/// Which part of a reply a piece of text belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    Reasoning,
    Answer,
}

/// A reply split into its reasoning and its answer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Split {
    /// The text inside the reasoning block, trimmed; `None` when there was none or it was empty.
    pub reasoning: Option<String>,
    pub answer: String,
}

/// Splits a whole reply. `opened`: the prompt ended inside an open `<think>` block.
pub fn split(text: &str, opened: bool) -> Split {
    let mut splitter = ReasoningSplitter::new(opened);
    splitter.push(text, &mut |_, _| {});
    splitter.finish(&mut |_, _| {})
}

/// Whether a rendered prompt leaves a reasoning block open for the reply to continue.
pub fn prompt_opens_reasoning(prompt: &str) -> bool {
    prompt.trim_end().ends_with(OPEN)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Nothing but whitespace yet: an opening tag may still come.
    Start,
    /// Inside the reasoning block.
    Reasoning,
    /// After `</think>`, skipping the whitespace before the answer.
    AfterReasoning,
    /// Everything from here on is answer.
    Answer,
}

/// Splits a reply given piece by piece, handing each piece of reasoning or answer on as soon as
/// its place is known. Text that might still turn out to be part of a tag, or whitespace that
/// the split drops, is held back until the next piece decides it.
#[derive(Debug, Clone)]
pub struct ReasoningSplitter {
    state: State,
    held: String,
    /// `Some` once a reasoning block has been seen.
    reasoning: Option<String>,
    answer: String,
}

impl ReasoningSplitter {
    /// `opened`: the prompt ended inside an open `<think>` block, so the reply starts as reasoning.
    pub fn new(opened: bool) -> Self {
        let (state, reasoning) = if opened { (State::Reasoning, Some(String::new())) } else { (State::Start, None) };
        Self { state, held: String::new(), reasoning, answer: String::new() }
    }

    /// Takes the next piece of the reply and hands on what is now known, tagged with its part.
    pub fn push(&mut self, piece: &str, emit: &mut dyn FnMut(Part, &str)) {
        self.held.push_str(piece);
        loop {
            match self.state {
                State::Start => {
                    let body = self.held.trim_start();
                    if let Some(rest) = body.strip_prefix(OPEN) {
                        self.held = rest.to_string();
                        self.reasoning = Some(String::new());
                        self.state = State::Reasoning;
                    } else if OPEN.starts_with(body) {
                        return;
                    } else {
                        self.state = State::Answer;
                    }
                }
                State::Reasoning => {
                    if let Some(end) = self.held.find(CLOSE) {
                        let after = self.held[end + CLOSE.len()..].to_string();
                        self.held.truncate(end);
                        let thought = std::mem::replace(&mut self.held, after);
                        self.give_reasoning(thought.trim_end(), emit);
                        self.state = State::AfterReasoning;
                    } else {
                        let undecided = self.held.split_off(undecided_tail(&self.held));
                        let ready = std::mem::replace(&mut self.held, undecided);
                        self.give_reasoning(&ready, emit);
                        return;
                    }
                }
                State::AfterReasoning => {
                    let answer = self.held.trim_start();
                    if answer.is_empty() {
                        self.held.clear();
                        return;
                    }
                    self.held = answer.to_string();
                    self.state = State::Answer;
                }
                State::Answer => {
                    if !self.held.is_empty() {
                        emit(Part::Answer, &self.held);
                        self.answer.push_str(&self.held);
                        self.held.clear();
                    }
                    return;
                }
            }
        }
    }

    /// Ends the reply: hands on what was held back and returns the whole split.
    pub fn finish(mut self, emit: &mut dyn FnMut(Part, &str)) -> Split {
        match self.state {
            // Whitespace or the start of something that only looked like a tag.
            State::Start => {
                self.state = State::Answer;
                self.push("", emit);
            }
            // Cut off inside the block: it is all reasoning.
            State::Reasoning => {
                let rest = std::mem::take(&mut self.held);
                self.give_reasoning(rest.trim_end(), emit);
            }
            State::AfterReasoning | State::Answer => {}
        }
        Split { reasoning: self.reasoning.filter(|r| !r.is_empty()), answer: self.answer }
    }

    fn give_reasoning(&mut self, text: &str, emit: &mut dyn FnMut(Part, &str)) {
        let reasoning = self.reasoning.get_or_insert_with(String::new);
        let text = if reasoning.is_empty() { text.trim_start() } else { text };
        if !text.is_empty() {
            emit(Part::Reasoning, text);
            reasoning.push_str(text);
        }
    }
}

/// Where the undecided end of some reasoning begins: a trailing start of `</think>` and the
/// whitespace before it, which are dropped if the tag does follow.
fn undecided_tail(text: &str) -> usize {
    let tag_start = (1..CLOSE.len()).rev().find(|&n| text.ends_with(&CLOSE[..n])).map_or(text.len(), |n| text.len() - n);
    text[..tag_start].trim_end().len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parts(reasoning: Option<&str>, answer: &str) -> Split {
        Split { reasoning: reasoning.map(str::to_string), answer: answer.to_string() }
    }

    #[test]
    fn a_block_the_reply_opens_is_reasoning() {
        assert_eq!(split("<think>\nLet me add.\n2+2=4\n</think>\n\nIt is 4.", false), parts(Some("Let me add.\n2+2=4"), "It is 4."));
        assert_eq!(split("  <think>x</think>y", false), parts(Some("x"), "y"));
        // Only the whitespace between the block and the answer goes; the answer's own stays.
        assert_eq!(split("<think>x</think>\n\n  y \n", false), parts(Some("x"), "y \n"));
    }

    #[test]
    fn a_block_the_template_opened_ends_at_the_closing_tag() {
        assert_eq!(split("\nThinking.\n</think>\n\nDone.", true), parts(Some("Thinking."), "Done."));
        // Without `opened`, the same text has no block: the caller must know.
        assert_eq!(split("Thinking.</think>Done.", false), parts(None, "Thinking.</think>Done."));
    }

    #[test]
    fn a_reply_cut_off_inside_the_block_has_no_answer() {
        assert_eq!(split("<think>\nStep one, step tw", false), parts(Some("Step one, step tw"), ""));
        assert_eq!(split("Step one </thi", true), parts(Some("Step one </thi"), ""));
        assert_eq!(split("<think>", false), parts(None, ""));
    }

    #[test]
    fn an_empty_block_is_no_reasoning() {
        assert_eq!(split("<think>\n\n</think>\n\nHello.", false), parts(None, "Hello."));
        assert_eq!(split("</think>Hello.", true), parts(None, "Hello."));
    }

    #[test]
    fn a_reply_without_tags_is_all_answer_and_untouched() {
        assert_eq!(split("  Hello.\n", false), parts(None, "  Hello.\n"));
        assert_eq!(split("<tool_call>{}</tool_call>", false), parts(None, "<tool_call>{}</tool_call>"));
        assert_eq!(split("<thin", false), parts(None, "<thin"));
        assert_eq!(split("", false), parts(None, ""));
        // A tag that does not start the reply is text.
        assert_eq!(split("Use <think> tags.", false), parts(None, "Use <think> tags."));
        // Only the first block counts.
        assert_eq!(split("<think>a</think>b<think>c</think>", false), parts(Some("a"), "b<think>c</think>"));
    }

    #[test]
    fn prompts_that_leave_the_block_open() {
        assert!(prompt_opens_reasoning("<|im_start|>assistant\n<think>\n"));
        assert!(!prompt_opens_reasoning("<|im_start|>assistant\n<think>\n\n</think>\n\n"));
        assert!(!prompt_opens_reasoning("<|im_start|>assistant\n"));
    }

    #[test]
    fn streaming_holds_back_only_what_is_undecided() {
        let mut got = Vec::new();
        let mut splitter = ReasoningSplitter::new(false);
        for piece in ["<th", "ink>\nA", " b  ", "</th", "ink", ">\n", "\nC", "!"] {
            splitter.push(piece, &mut |part, text| got.push((part, text.to_string())));
        }
        let whole = splitter.finish(&mut |part, text| got.push((part, text.to_string())));
        let expected = [(Part::Reasoning, "A"), (Part::Reasoning, " b"), (Part::Answer, "C"), (Part::Answer, "!")];
        assert_eq!(got, expected.map(|(p, t)| (p, t.to_string())));
        assert_eq!(whole, parts(Some("A b"), "C!"));
    }

    /// Cuts `text` at the given fractions of its length, on character boundaries.
    fn pieces(text: &str, cuts: &[f64]) -> Vec<String> {
        let mut bounds: Vec<usize> = cuts
            .iter()
            .map(|f| (text.len() as f64 * f) as usize)
            .map(|mut i| {
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                i
            })
            .chain([0, text.len()])
            .collect();
        bounds.sort_unstable();
        bounds.windows(2).map(|w| text[w[0]..w[1]].to_string()).collect()
    }

    proptest! {
        #[test]
        fn streaming_agrees_with_the_whole_split(
            fragments in proptest::collection::vec(
                prop::sample::select(vec!["<think>", "</think>", "<", "</th", "ink>", " ", "\n", "a", "é", "b c"]),
                0..12,
            ),
            cuts in proptest::collection::vec(0.0f64..1.0, 0..6),
            opened in any::<bool>(),
        ) {
            let text: String = fragments.concat();
            let whole = split(&text, opened);
            let mut streamed = [String::new(), String::new()];
            let mut splitter = ReasoningSplitter::new(opened);
            let mut sink = |part: Part, piece: &str| {
                assert!(!piece.is_empty(), "empty pieces are never handed on");
                streamed[usize::from(part == Part::Answer)].push_str(piece);
            };
            for piece in pieces(&text, &cuts) {
                splitter.push(&piece, &mut sink);
            }
            let finished = splitter.finish(&mut sink);
            prop_assert_eq!(&finished, &whole);
            prop_assert_eq!(whole.reasoning.as_deref().unwrap_or(""), streamed[0].as_str());
            prop_assert_eq!(&whole.answer, &streamed[1]);
            // Nothing is lost: every non-space character is in a part, or in the tags.
            let untagged = if opened {
                text.replacen(CLOSE, "", 1)
            } else if text.trim_start().starts_with(OPEN) {
                text.replacen(OPEN, "", 1).replacen(CLOSE, "", 1)
            } else {
                text.clone()
            };
            let kept: String = format!("{}{}", streamed[0], streamed[1]).split_whitespace().collect();
            prop_assert_eq!(kept, untagged.split_whitespace().collect::<String>());
        }
    }
}
