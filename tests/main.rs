//! Integration tests, one binary: each module covers one area.

mod worldgen;
