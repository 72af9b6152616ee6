//! Rebuilding a Hugging Face tokenizer from a GGUF file's `tokenizer.ggml.*` metadata.
//!
//! A GGUF file carries the vocabulary, the merges and the token types, but only a *name* for
//! the pre-tokenizer (`tokenizer.ggml.pre`): the regular expressions that split text before
//! BPE live in each runtime's code. [`pre_tokenizer`] holds that table for the presets. A name
//! it does not know is an error, because a wrong split silently gives different ids from the
//! ones the model was trained on.

use anyhow::{bail, Context, Result};
use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::unicode::NFC;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const TOKEN_TYPE_CONTROL: i32 = 3;
const TOKEN_TYPE_USER_DEFINED: i32 = 4;

/// Llama 3's split: contractions, letters with one leading non-letter, numbers in groups of up
/// to three, punctuation runs, newlines, then other whitespace.
const LLAMA3_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split: Llama 3's, except that every digit stands alone.
const QWEN2_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The normalizer and pre-tokenizer a `tokenizer.ggml.pre` name stands for, as the model's own
/// `tokenizer.json` declares them.
pub(super) fn pre_tokenizer(pre: &str) -> Result<(Option<NormalizerWrapper>, PreTokenizerWrapper)> {
    let split = |pattern: &str| -> Result<PreTokenizerWrapper> {
        let split = Split::new(SplitPattern::Regex(pattern.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| anyhow::anyhow!("bad pre-tokenizer pattern: {e}"))?;
        Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![split.into(), ByteLevel::new(false, false, false).into()])))
    };
    Ok(match pre {
        // GPT-2's own regex (inside ByteLevel), after splitting every digit apart.
        "smollm" => {
            (None, PreTokenizerWrapper::Sequence(Sequence::new(vec![Digits::new(true).into(), ByteLevel::new(false, true, true).into()])))
        }
        "gpt2" | "gpt-2" | "default" => (None, ByteLevel::new(false, true, true).into()),
        "llama-bpe" | "llama3" => (None, split(LLAMA3_PATTERN)?),
        "qwen2" => (Some(NFC.into()), split(QWEN2_PATTERN)?),
        other => bail!(
            "unsupported pre-tokenizer `tokenizer.ggml.pre = {other}` (known: smollm, gpt2, llama-bpe, qwen2); \
             load the model's tokenizer.json instead"
        ),
    })
}

pub(super) fn build(content: &Content) -> Result<tokenizers::Tokenizer> {
    let model = metadata_str(content, "tokenizer.ggml.model")?;
    if model != "gpt2" {
        bail!("unsupported tokenizer model `tokenizer.ggml.model = {model}` (only byte-level BPE, \"gpt2\", is rebuilt from GGUF)");
    }
    let tokens = metadata_strings(content, "tokenizer.ggml.tokens")?;
    let merges = metadata_strings(content, "tokenizer.ggml.merges")?
        .iter()
        .enumerate()
        .map(|(i, merge)| match merge.split_once(' ') {
            Some((a, b)) => Ok((a.to_string(), b.to_string())),
            None => bail!("merge {i} `{merge}` in tokenizer.ggml.merges has no space between its two parts"),
        })
        .collect::<Result<Vec<_>>>()?;
    let types = match content.metadata.get("tokenizer.ggml.token_type") {
        Some(value) => array(value, "tokenizer.ggml.token_type")?
            .iter()
            .map(|v| v.to_i32().context("tokenizer.ggml.token_type holds a non-integer"))
            .collect::<Result<Vec<i32>>>()?,
        None => Vec::new(),
    };
    if !types.is_empty() && types.len() != tokens.len() {
        bail!("tokenizer.ggml.token_type has {} entries for {} tokens", types.len(), tokens.len());
    }
    let pre = match content.metadata.get("tokenizer.ggml.pre") {
        Some(_) => metadata_str(content, "tokenizer.ggml.pre")?,
        None => "default",
    };
    let (normalizer, pre_tokenizer) = pre_tokenizer(pre)?;

    let vocab: Vocab = tokens.iter().enumerate().map(|(id, t)| (t.to_string(), id as u32)).collect();
    let bpe = BPE::builder().vocab_and_merges(vocab, merges).build().map_err(|e| anyhow::anyhow!("cannot build the BPE model: {e}"))?;
    let mut tokenizer = tokenizers::Tokenizer::new(bpe);
    tokenizer.with_normalizer(normalizer).map_err(|e| anyhow::anyhow!("cannot set the normalizer: {e}"))?;
    tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
    tokenizer.with_decoder(Some(ByteLevelDecoder::new(true, true, true)));

    // Control tokens are special (skipped when decoding with skip_special); user-defined ones,
    // such as Qwen's `<tool_call>`, are matched whole but decoded as text.
    let added = |wanted: i32, special: bool| -> Vec<AddedToken> {
        tokens
            .iter()
            .zip(&types)
            .filter(|(_, t)| **t == wanted)
            .map(|(token, _)| AddedToken::from(token.to_string(), special).normalized(false))
            .collect()
    };
    tokenizer.add_special_tokens(added(TOKEN_TYPE_CONTROL, true)).map_err(|e| anyhow::anyhow!("cannot add the control tokens: {e}"))?;
    tokenizer.add_tokens(added(TOKEN_TYPE_USER_DEFINED, false)).map_err(|e| anyhow::anyhow!("cannot add the user-defined tokens: {e}"))?;
    Ok(tokenizer)
}

/// A string metadata value.
pub(crate) fn metadata_str<'a>(content: &'a Content, key: &str) -> Result<&'a str> {
    let value = content.metadata.get(key).with_context(|| format!("GGUF metadata has no `{key}`"))?;
    match value {
        Value::String(s) => Ok(s),
        other => bail!("GGUF metadata `{key}` is a {:?}, not a string", other.value_type()),
    }
}

/// A string-array metadata value.
pub(crate) fn metadata_strings<'a>(content: &'a Content, key: &str) -> Result<Vec<&'a str>> {
    let value = content.metadata.get(key).with_context(|| format!("GGUF metadata has no `{key}`"))?;
    array(value, key)?
        .iter()
        .enumerate()
        .map(|(i, v)| match v {
            Value::String(s) => Ok(s.as_str()),
            other => bail!("GGUF metadata `{key}`[{i}] is a {:?}, not a string", other.value_type()),
        })
        .collect()
}

fn array<'a>(value: &'a Value, key: &str) -> Result<&'a Vec<Value>> {
    match value {
        Value::Array(items) => Ok(items),
        other => bail!("GGUF metadata `{key}` is a {:?}, not an array", other.value_type()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokenizers::{OffsetReferential, OffsetType, PreTokenizedString, PreTokenizer};

    fn pieces(pre: &str, text: &str) -> Vec<String> {
        let (_, pre_tokenizer) = pre_tokenizer(pre).unwrap();
        let mut pretokenized = PreTokenizedString::from(text);
        pre_tokenizer.pre_tokenize(&mut pretokenized).unwrap();
        pretokenized.get_splits(OffsetReferential::Original, OffsetType::Char).into_iter().map(|(s, _, _)| s.to_string()).collect()
    }

    #[test]
    fn presets_split_numbers_their_own_way() {
        assert_eq!(pieces("smollm", "x 1234"), ["x", "Ġ", "1", "2", "3", "4"]);
        assert_eq!(pieces("llama-bpe", "x 1234567"), ["x", "Ġ", "123", "456", "7"]);
        assert_eq!(pieces("qwen2", "x 123"), ["x", "Ġ", "1", "2", "3"]);
        assert_eq!(pieces("llama-bpe", "I'LL go\n\n  now"), ["I", "'LL", "Ġgo", "ĊĊ", "Ġ", "Ġnow"]);
    }

    #[test]
    fn unknown_pre_tokenizer_is_named() {
        let err = pre_tokenizer("deepseek-coder").unwrap_err().to_string();
        assert!(err.contains("tokenizer.ggml.pre = deepseek-coder"), "{err}");
    }
}
