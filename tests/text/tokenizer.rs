//! The tokenizer rebuilt from GGUF metadata must give the ids that the model's own
//! tokenizer.json gives, on text of every kind a conversation carries.

use std::path::Path;

use apigen_mt::tokenizer::Tokenizer;
use candle_core::quantized::gguf_file::Content;

fn load_both(dir: &Path) -> (Tokenizer, Tokenizer) {
    let json = Tokenizer::from_file(&dir.join("tokenizer.json")).unwrap();
    let gguf_path = dir.join("model-q4_1.gguf");
    let mut file = std::fs::File::open(&gguf_path).unwrap();
    let content = Content::read(&mut file).unwrap();
    let gguf = Tokenizer::from_gguf(&content, &gguf_path).unwrap();
    (json, gguf)
}

const CORPUS: &[&str] = &[
    "Hello, world! How are you doing today?",
    "fn main() {\n    let x: Vec<u32> = vec![1, 2, 3];\n    println!(\"{x:?}\");\n}\n",
    r#"{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius", "days": [1, 2]}}"#,
    "1234567 and 3.14159, -42, 1e-9, 0x1F, 2024-07-26",
    "Emoji: 😀🎉👩‍👩‍👧 ✅",
    "中文测试：你好，世界。日本語のテキスト。한국어",
    "Accents: café, naïve, Ærøskøbing, São Paulo, Ångström",
    "Whitespace   runs\t\ttabs\n\n\nnewlines    \n  trailing   ",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "I'm sure they'll say it's what we'd've DONE",
    "",
    " leading space and <tool_call>{\"a\": 1}</tool_call>",
];

#[test]
fn gguf_tokenizer_matches_tokenizer_json() {
    let Some(dir) = crate::support::smollm2_dir() else { return };
    let (json, gguf) = load_both(&dir);
    assert_eq!(json.vocab_size(), gguf.vocab_size());
    assert_eq!(json.special_tokens(), gguf.special_tokens());
    for text in CORPUS {
        for parse_special in [true, false] {
            let want = json.encode(text, parse_special).unwrap();
            let got = gguf.encode(text, parse_special).unwrap();
            assert_eq!(got, want, "ids differ for {text:?} (parse_special={parse_special})");
            assert_eq!(gguf.decode(&got, false).unwrap(), *text, "round trip of {text:?}");
        }
    }
    assert_eq!(json.token_bytes(), gguf.token_bytes());
}

#[test]
fn special_text_is_one_id_only_when_parsed() {
    let Some(dir) = crate::support::smollm2_dir() else { return };
    let (json, _) = load_both(&dir);
    let im_end = json.token_to_id("<|im_end|>").unwrap();
    assert_eq!(json.encode("<|im_end|>", true).unwrap(), vec![im_end]);
    let plain = json.encode("<|im_end|>", false).unwrap();
    assert!(plain.len() > 1 && !plain.contains(&im_end), "{plain:?}");
    // Digits are split one by one, as SmolLM2 was trained.
    assert_eq!(json.encode("1234567", false).unwrap().len(), 7);
}

#[test]
fn stream_yields_whole_characters_that_add_up() {
    let Some(dir) = crate::support::smollm2_dir() else { return };
    let (tok, _) = load_both(&dir);
    let text = "Café 😀 中文 <|im_end|> done";
    let ids = tok.encode(text, true).unwrap();
    let mut stream = tok.stream(false);
    let mut pieces = Vec::new();
    for id in &ids {
        if let Some(piece) = stream.step(&tok, *id).unwrap() {
            assert!(!piece.contains('\u{FFFD}'), "split character in {piece:?}");
            pieces.push(piece);
        }
    }
    // The emoji needs several byte tokens, so there are fewer pieces than ids.
    assert!(pieces.len() < ids.len());
    assert_eq!(pieces.concat(), text);
    let bytes = tok.token_bytes();
    let joined: Vec<u8> = ids.iter().flat_map(|id| bytes[*id as usize].clone()).collect();
    assert_eq!(joined, text.as_bytes());
}
