//! The blueprint run on the real SmolLM2 GGUF, sized for a test.
