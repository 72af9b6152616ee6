//! The model's vocabulary as llguidance sees it: a byte trie over every token, plus a tokenizer
//! for the text the grammar forces.
//!
//! llguidance reasons about bytes, not strings, so every token id needs its exact byte sequence.
//! We read those from the tokenizer's own JSON form (the same `tokenizers::Tokenizer` the engine
//! builds from GGUF metadata), so the trie and the model can never disagree about a token.

use std::panic::{catch_unwind, AssertUnwindSafe};

use anyhow::{bail, Context};
use toktrie::{TokRxInfo, TokTrie, TokenId, TokenizerEnv};

/// llguidance's tokenizer environment over our own tokenizer.
pub(crate) struct ModelTokEnv {
    /// Set to treat special-token text as plain text: forced grammar bytes are never control
    /// tokens, even if they spell `<|im_end|>`.
    tokenizer: tokenizers::Tokenizer,
    trie: TokTrie,
}

impl ModelTokEnv {
    /// Builds the trie from `tokenizer`'s vocabulary; `eos_token_ids` are the tokens that end a
    /// sequence (the grammar allows them wherever it is accepting).
    pub(crate) fn new(tokenizer: &tokenizers::Tokenizer, eos_token_ids: &[u32]) -> anyhow::Result<Self> {
        let json = tokenizer.to_string(false).map_err(|e| anyhow::anyhow!("cannot serialize the tokenizer to JSON: {e}"))?;
        let json: serde_json::Value = serde_json::from_str(&json).context("the tokenizer's JSON form does not parse")?;
        let mut token_bytes = guarded("reading token bytes from the tokenizer", || llguidance::token_bytes_from_tokenizer_json(&json))?
            .context("cannot read the token bytes from the tokenizer")?;

        // Ids the JSON does not name (holes, padding up to the declared size) get no bytes, so
        // the grammar can never allow them.
        let vocab_size = token_bytes.len().max(tokenizer.get_vocab_size(true));
        token_bytes.resize(vocab_size, Vec::new());
        let vocab_size = u32::try_from(vocab_size).context("the vocabulary has more than 2^32 tokens")?;

        let Some(&first_eos) = eos_token_ids.first() else {
            bail!("no end-of-sequence token id given; a constraint needs one to end in an accepting state");
        };
        if let Some(bad) = eos_token_ids.iter().find(|&&id| id >= vocab_size) {
            bail!("end-of-sequence token id {bad} is outside the vocabulary of {vocab_size} tokens");
        }

        let info = TokRxInfo::new(vocab_size, first_eos);
        let trie = guarded("building the token trie", || TokTrie::from(&info, &token_bytes).with_eos_tokens(eos_token_ids))?;

        let mut tokenizer = tokenizer.clone();
        tokenizer.set_encode_special_tokens(true);
        Ok(Self { tokenizer, trie })
    }

    fn encode_text(&self, text: &str) -> Vec<TokenId> {
        let bytes = text.as_bytes();
        match self.tokenizer.encode_fast(text, false) {
            // A tokenizer that normalizes or prepends a space would change the forced bytes;
            // accept its answer only when it spells exactly the text it was given.
            Ok(encoding) if self.trie.decode_raw(encoding.get_ids()) == bytes => encoding.get_ids().to_vec(),
            _ => self.trie.greedy_tokenize(bytes),
        }
    }
}

impl TokenizerEnv for ModelTokEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        // Valid UTF-8 goes through our tokenizer; stray bytes are matched against the trie.
        self.trie.tokenize_with_greedy_fallback(s, |text| self.encode_text(text))
    }
}

/// Runs vocabulary code from llguidance/toktrie that asserts on malformed input, turning a
/// panic into an error that names what was being done.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> anyhow::Result<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|panic| {
        let detail =
            panic.downcast_ref::<String>().map(String::as_str).or_else(|| panic.downcast_ref::<&str>().copied()).unwrap_or("no message");
        anyhow::anyhow!("{what} failed: {detail}")
    })
}
