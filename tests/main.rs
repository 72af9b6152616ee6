//! The integration tests, in one binary so that CI links once.

mod text;
