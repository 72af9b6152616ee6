//! The prefix cache: finished and in-flight sequences leave their key/value caches here, keyed
//! by the exact tokens they cover, so that a later request starting with the same tokens skips
//! computing them.
//!
//! One mechanism serves every kind of reuse: a request takes the longest common token prefix
//! between its rendered prompt and any entry, whatever produced that entry. Nothing assumes that
//! a conversation only appends: a re-rendered prompt that differs at token 5,000 reuses 4,999.
//!
//! The storage is shared rather than copied: an entry and the sequences that reused it point at
//! the same refcounted KV blocks ([`SeqKv`] is copy-on-write), so the long system prompt that
//! dozens of conversations share is held once, as in a radix tree. The index itself is a list
//! scanned for the longest match: with at most a few hundred entries, comparing token slices
//! costs microseconds against the milliseconds of one forward pass, and a list keeps eviction
//! and the supersede rule simple.

use std::collections::HashSet;

use crate::model::SeqKv;

/// A cached prefix: `kv` holds exactly `tokens`.
struct Entry {
    tokens: Vec<u32>,
    kv: SeqKv,
    /// The session the entry belongs to, pinned while that session is alive.
    session: Option<String>,
    /// Logical clock of the last insert or hit, for least-recently-used eviction.
    last_used: u64,
}

/// Reusable KV prefixes, least recently used evicted first.
#[derive(Default)]
pub struct PrefixCache {
    entries: Vec<Entry>,
    clock: u64,
}

/// The result of a lookup: a cache holding the first `len` tokens of the prompt.
pub struct Hit {
    pub kv: SeqKv,
    pub len: usize,
}

impl PrefixCache {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The longest cached prefix of `tokens`, at most `limit` tokens long (the engine keeps at
    /// least one prompt token to compute, since logits are not cached). Ties go to the most
    /// recently used entry. `None` when no entry shares even one token.
    pub fn lookup(&mut self, tokens: &[u32], limit: usize) -> Option<Hit> {
        let (index, len) = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, tokens).min(limit)))
            .filter(|&(_, len)| len > 0)
            .max_by_key(|&(i, len)| (len, self.entries[i].last_used))?;
        self.clock += 1;
        let entry = &mut self.entries[index];
        entry.last_used = self.clock;
        let mut kv = entry.kv.clone();
        kv.truncate(len);
        Some(Hit { kv, len })
    }

    /// The length of the longest cached prefix of `tokens`, without touching recency.
    pub fn longest(&self, tokens: &[u32]) -> usize {
        self.entries.iter().map(|e| common_prefix(&e.tokens, tokens)).max().unwrap_or(0)
    }

    /// Caches `kv`, which holds `tokens`. Entries whose tokens are a prefix of `tokens` are
    /// dropped: the new entry serves every request they could.
    pub fn insert(&mut self, tokens: &[u32], kv: SeqKv, session: Option<&str>) {
        debug_assert_eq!(tokens.len(), kv.len());
        if tokens.is_empty() {
            return;
        }
        if self.entries.iter().any(|e| e.tokens.len() >= tokens.len() && e.tokens.starts_with(tokens)) {
            // Already covered by an entry at least as long; refresh nothing, add nothing.
            return;
        }
        self.entries.retain(|e| !tokens.starts_with(&e.tokens));
        self.clock += 1;
        self.entries.push(Entry {
            tokens: tokens.to_vec(),
            kv,
            session: session.map(str::to_string),
            last_used: self.clock,
        });
    }

    /// Drops the least recently used entry, preferring entries whose session is not in
    /// `live_sessions`; returns false when the cache is empty.
    pub fn evict_one(&mut self, live_sessions: &HashSet<String>) -> bool {
        let pinned = |e: &Entry| e.session.as_ref().is_some_and(|s| live_sessions.contains(s));
        let victim = self
            .entries
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| (pinned(e), e.last_used))
            .map(|(i, _)| i);
        match victim {
            Some(i) => {
                self.entries.swap_remove(i);
                true
            }
            None => false,
        }
    }

    /// Every entry's cache, for memory accounting.
    pub fn caches(&self) -> impl Iterator<Item = &SeqKv> {
        self.entries.iter().map(|e| &e.kv)
    }
}

/// Number of leading tokens `a` and `b` share.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{KvDtype, KvShape};

    /// A one-layer cache holding `n` tokens.
    fn kv(n: usize) -> SeqKv {
        let mut kv = SeqKv::new(KvShape { layers: 1, kv_heads: 1, head_dim: 1 }, KvDtype::F32);
        for position in 0..n {
            kv.write(0, position, &[0.0], &[0.0]).unwrap();
        }
        kv.commit(n);
        kv
    }

    #[test]
    fn the_longest_common_prefix_wins_and_is_capped() {
        let mut cache = PrefixCache::default();
        cache.insert(&[1, 2, 3], kv(3), None);
        cache.insert(&[1, 2, 7, 8, 9], kv(5), None);
        let hit = cache.lookup(&[1, 2, 7, 8, 4], 10).unwrap();
        assert_eq!((hit.len, hit.kv.len()), (4, 4));
        // A turn that rewrites an earlier token still reuses what precedes it.
        assert_eq!(cache.lookup(&[1, 2, 3, 4], 10).unwrap().len, 3);
        assert_eq!(cache.lookup(&[1, 2, 3], 2).unwrap().len, 2);
        assert!(cache.lookup(&[9, 9], 10).is_none());
    }

    #[test]
    fn a_longer_entry_supersedes_its_prefixes() {
        let mut cache = PrefixCache::default();
        cache.insert(&[1, 2], kv(2), None);
        cache.insert(&[5], kv(1), None);
        cache.insert(&[1, 2, 3], kv(3), None);
        assert_eq!(cache.len(), 2);
        // A prefix of an existing entry adds nothing.
        cache.insert(&[1, 2], kv(2), None);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.longest(&[1, 2, 3, 4]), 3);
    }

    #[test]
    fn eviction_takes_the_least_recently_used_unpinned_entry_first() {
        let mut cache = PrefixCache::default();
        cache.insert(&[1], kv(1), Some("a"));
        cache.insert(&[2], kv(1), None);
        cache.insert(&[3], kv(1), None);
        cache.lookup(&[2], 1);
        let live: HashSet<String> = ["a".to_string()].into();
        assert!(cache.evict_one(&live));
        assert_eq!(cache.longest(&[3]), 0, "entry 3 was least recently used among the unpinned");
        assert!(cache.evict_one(&live));
        assert_eq!(cache.longest(&[2]), 0);
        // Pinned entries go last, but they do go.
        assert!(cache.evict_one(&live));
        assert!(cache.is_empty());
        assert!(!cache.evict_one(&live));
    }
}
