//! From a vocabulary entry back to the bytes it stands for.
//!
//! Vocabularies spell bytes in one of two ways. Byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM)
//! maps every byte to a printable character, so `Ġ` is a space. SentencePiece (Llama 2,
//! Mistral) writes a space as `▁` and bytes it has no piece for as `<0x0A>`. The decoder in the
//! tokenizer tells which spelling a vocabulary uses.

/// How a vocabulary spells bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ByteScheme {
    ByteLevel,
    SentencePiece,
    /// Tokens are their own UTF-8 text.
    Plain,
}

impl ByteScheme {
    pub(super) fn detect(tokenizer: &tokenizers::Tokenizer) -> Self {
        // The decoder is a tree of wrappers; its serialized form names every part.
        let decoder = tokenizer.get_decoder().and_then(|d| serde_json::to_string(d).ok()).unwrap_or_default();
        if decoder.contains("\"ByteLevel\"") {
            ByteScheme::ByteLevel
        } else if decoder.contains("\"ByteFallback\"") || decoder.contains("\"Metaspace\"") {
            ByteScheme::SentencePiece
        } else {
            ByteScheme::Plain
        }
    }

    pub(super) fn token_bytes(self, token: &str) -> Vec<u8> {
        match self {
            // A token outside the byte alphabet (never seen in a real byte-level vocabulary)
            // keeps its own text rather than being guessed at.
            ByteScheme::ByteLevel => {
                token.chars().map(byte_of_char).collect::<Option<Vec<u8>>>().unwrap_or_else(|| token.as_bytes().to_vec())
            }
            ByteScheme::SentencePiece => match byte_token(token) {
                Some(byte) => vec![byte],
                None => token.replace('\u{2581}', " ").into_bytes(),
            },
            ByteScheme::Plain => token.as_bytes().to_vec(),
        }
    }
}

/// The inverse of GPT-2's byte-to-character table: printable Latin-1 bytes stand for
/// themselves, and the other 68 bytes were moved, in order, to U+0100 onwards.
fn byte_of_char(c: char) -> Option<u8> {
    let code = c as u32;
    let printable = |b: u32| (0x21..=0x7e).contains(&b) || (0xa1..=0xac).contains(&b) || (0xae..=0xff).contains(&b);
    if code < 0x100 {
        return printable(code).then_some(code as u8);
    }
    let index = code.checked_sub(0x100)?;
    (0u32..256).filter(|b| !printable(*b)).nth(index as usize).map(|b| b as u8)
}

/// `<0xAB>` → `0xAB`.
fn byte_token(token: &str) -> Option<u8> {
    let hex = token.strip_prefix("<0x")?.strip_suffix('>')?;
    if hex.len() != 2 {
        return None;
    }
    u8::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_level_symbols_map_back_to_bytes() {
        assert_eq!(ByteScheme::ByteLevel.token_bytes("Ġhello"), b" hello");
        assert_eq!(ByteScheme::ByteLevel.token_bytes("Ċ"), b"\n");
        // "é" is C3 A9; C3 is printable Latin-1, A9 too.
        assert_eq!(ByteScheme::ByteLevel.token_bytes("Ã©"), "é".as_bytes());
        assert_eq!(ByteScheme::ByteLevel.token_bytes("\u{100}"), vec![0u8]);
        assert_eq!(ByteScheme::ByteLevel.token_bytes("\u{143}"), vec![0xadu8]);
    }

    #[test]
    fn sentencepiece_bytes_and_spaces() {
        assert_eq!(ByteScheme::SentencePiece.token_bytes("<0x0A>"), b"\n");
        assert_eq!(ByteScheme::SentencePiece.token_bytes("\u{2581}the"), b" the");
        assert_eq!(ByteScheme::SentencePiece.token_bytes("<0x0>"), b"<0x0>");
    }
}
