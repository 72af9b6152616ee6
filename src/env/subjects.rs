//! How the data sampler finds what a task is about, as data: the subject table (the people
//! tasks are about), the values of a subject's record that arguments take, the subject's own
//! records, and the catalogue entries those records point to.
//!
//! The data sampler (`samplers/data.rs`) follows this description to cut one subject's slice
//! out of a database, and the blueprint schema restricts every argument named here to the
//! values of that slice.
//!
//! An environment package writes the same description as its `env.toml`'s `[subjects]` table,
//! which deserializes straight into these types.

use serde::Deserialize;

/// The data sampler's description of an environment.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subjects {
    /// The table of the people tasks are about, keyed by their id (`users`).
    pub table: String,
    /// The arguments that take the subject's id (`user_id`).
    pub id_args: Vec<String>,
    /// Tools that identify a subject. They are always offered to the blueprint generator,
    /// because policies require the identity to be confirmed before anything else, and a
    /// sampled walk may not start with one.
    #[serde(default)]
    pub identify: Vec<String>,
    /// Values of the subject's record that arguments take (an email, a payment method id).
    #[serde(default)]
    pub fields: Vec<Field>,
    /// The subject's own records.
    pub records: Records,
    /// Entries of another table that the subject's records point to (a product catalogue).
    pub catalogue: Option<Catalogue>,
}

/// Values read from the subject's record.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    /// The arguments these values fill.
    pub args: Vec<String>,
    /// Where in the record, as a JSON pointer (`/name/first_name`).
    pub pointer: String,
    /// `value` when not written.
    #[serde(default)]
    pub take: Take,
}

/// What a [`Field`] takes at its pointer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Take {
    /// The string there.
    #[default]
    Value,
    /// The keys of the object there (payment methods keyed by id).
    Keys,
}

/// The subject's records: the subject's field `list` holds their ids in `table`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Records {
    pub list: String,
    pub table: String,
    /// The arguments that take one of these ids (`order_id`).
    pub id_args: Vec<String>,
}

/// A catalogue the subject's records point into, cut down to what a task can use: the options
/// the records hold, and a few more that are on offer.
///
/// Each record has an array `lines`; a line names a catalogue entry (`entry`) and one of its
/// options (`option`). An entry keeps its `keep` fields, its id under `entry`, and its options
/// map `options` cut to the held ones plus the first `offered` with `offer_flag` true.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Catalogue {
    pub table: String,
    pub lines: String,
    pub entry: String,
    pub option: String,
    pub options: String,
    pub offer_flag: String,
    #[serde(default)]
    pub offered: usize,
    #[serde(default)]
    pub keep: Vec<String>,
    /// The arguments that take a held option (`item_ids`).
    #[serde(default)]
    pub held_args: Vec<String>,
    /// The arguments that take an offered option (`new_item_ids`).
    #[serde(default)]
    pub offered_args: Vec<String>,
}

/// Owned strings from string literals, for descriptions written in code.
pub fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}
