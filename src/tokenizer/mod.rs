//! Text ↔ token ids for every model the engine loads.
//!
//! One [`Tokenizer`] type wraps a Hugging Face `tokenizers` tokenizer, whether it came from a
//! `tokenizer.json` or was rebuilt from a GGUF file's metadata ([`gguf`]), so the engine, the
//! chat templates and the constrained decoder all see the same ids for the same text.
//!
//! Encoding never adds a BOS token: chat templates write it themselves, and adding it here too
//! would double it.

mod bytes;
pub(crate) mod gguf;

use std::path::Path;
use std::sync::OnceLock;

use anyhow::{anyhow, Context, Result};

use bytes::ByteScheme;

/// A tokenizer with the operations generation needs.
pub struct Tokenizer {
    /// Recognises special-token text such as `<|im_start|>` while encoding.
    inner: tokenizers::Tokenizer,
    /// The same tokenizer with special-token matching switched off, built on first use: the
    /// `tokenizers` crate keeps that switch in the tokenizer rather than per call.
    plain: OnceLock<tokenizers::Tokenizer>,
    scheme: ByteScheme,
    vocab_size: usize,
    /// Where the tokenizer came from, for error messages.
    source: String,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer").field("source", &self.source).field("vocab_size", &self.vocab_size()).finish()
    }
}

impl Tokenizer {
    /// Loads a Hugging Face `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| anyhow!("cannot load tokenizer {}: {e}", path.display()))?;
        Ok(Self::wrap(inner, path.display().to_string()))
    }

    /// Rebuilds the tokenizer that a GGUF file describes in its `tokenizer.ggml.*` metadata.
    /// `path` names the file in errors.
    pub fn from_gguf(content: &candle_core::quantized::gguf_file::Content, path: &Path) -> Result<Self> {
        let inner = gguf::build(content).with_context(|| format!("cannot build the tokenizer of {}", path.display()))?;
        Ok(Self::wrap(inner, path.display().to_string()))
    }

    fn wrap(inner: tokenizers::Tokenizer, source: String) -> Self {
        let scheme = ByteScheme::detect(&inner);
        let vocab_size = inner.get_vocab(true).values().copied().max().map_or(0, |m| m as usize + 1);
        Self { inner, plain: OnceLock::new(), scheme, vocab_size, source }
    }

    /// Token ids of `text`. With `parse_special`, special-token text such as `<|im_end|>`
    /// becomes its single special id; without it, that text is tokenized like any other, which
    /// is what user-supplied content needs.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let tokenizer = if parse_special {
            &self.inner
        } else {
            self.plain.get_or_init(|| {
                let mut plain = self.inner.clone();
                plain.set_encode_special_tokens(true);
                plain
            })
        };
        let encoding = tokenizer.encode_fast(text, false).map_err(|e| anyhow!("cannot encode text with tokenizer {}: {e}", self.source))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// The text of `ids`; `skip_special` leaves out special tokens such as `<|im_end|>`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner.decode(ids, skip_special).map_err(|e| anyhow!("cannot decode ids with tokenizer {}: {e}", self.source))
    }

    /// A decoder that turns ids into text as they arrive. It owns its state, so the engine can
    /// keep one per running sequence next to the tokenizer.
    pub fn stream(&self, skip_special: bool) -> TextStream {
        TextStream { skip_special, ids: Vec::new(), prefix: String::new(), prefix_index: 0 }
    }

    /// Each id's raw bytes, as the model sees them, for building a constraint trie: byte-level
    /// BPE symbols are mapped back to bytes and SentencePiece byte tokens (`<0x0A>`) become the
    /// byte they stand for. Special and added tokens give their text; [`Self::special_tokens`]
    /// says which ids those are. Ids the vocabulary does not define give an empty vector.
    pub fn token_bytes(&self) -> Vec<Vec<u8>> {
        (0..self.vocab_size() as u32)
            .map(|id| match self.inner.id_to_token(id) {
                Some(token) if self.is_added(id) => token.into_bytes(),
                Some(token) => self.scheme.token_bytes(&token),
                None => Vec::new(),
            })
            .collect()
    }

    fn is_added(&self, id: u32) -> bool {
        self.inner.get_added_vocabulary().simple_id_to_token(id).is_some()
    }

    pub fn id_to_token(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// One more than the largest id, counting added tokens: the length of a logits row the
    /// tokenizer can name.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// `(id, text)` of every special token, sorted by id.
    pub fn special_tokens(&self) -> Vec<(u32, String)> {
        let mut specials: Vec<(u32, String)> = self
            .inner
            .get_added_tokens_decoder()
            .into_iter()
            .filter(|(_, token)| token.special)
            .map(|(id, token)| (id, token.content))
            .collect();
        specials.sort();
        specials
    }

    /// The underlying `tokenizers` tokenizer, for libraries that take one directly.
    pub fn hf(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

/// Incremental decoding: text comes out only once it forms whole UTF-8 characters, and pieces
/// that depend on the tokens around them (such as a leading space) come out right.
#[derive(Debug, Clone)]
pub struct TextStream {
    skip_special: bool,
    ids: Vec<u32>,
    prefix: String,
    prefix_index: usize,
}

impl TextStream {
    /// Feeds one id; returns the new text, or `None` while a character is still incomplete.
    pub fn step(&mut self, tokenizer: &Tokenizer, id: u32) -> Result<Option<String>> {
        tokenizers::tokenizer::step_decode_stream(
            &tokenizer.inner,
            vec![id],
            self.skip_special,
            &mut self.ids,
            &mut self.prefix,
            &mut self.prefix_index,
        )
        .map_err(|e| anyhow!("cannot decode id {id} with tokenizer {}: {e}", tokenizer.source))
    }
}
