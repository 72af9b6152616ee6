//! The prefix cache: finished and in-flight sequences leave their key/value caches here, keyed
//! by the exact tokens they cover, so that a later request starting with the same tokens skips
//! computing them.
//!
//! One mechanism serves every kind of reuse: a request takes the longest common token prefix
//! between its rendered prompt and any entry, whatever produced that entry. Nothing assumes that
//! a conversation only appends: a re-rendered prompt that differs at token 5,000 reuses 4,999.
//!
//! The index is a radix tree over whole KV blocks ([`SeqKv::BLOCK_TOKENS`] tokens): each node
//! is one block of tokens below its parent, and an entry hangs at the node of its last whole
//! block with the partial block after it (its tail, under one block long). A lookup walks the
//! prompt block by block, one hash probe each, and only compares tokens one by one in the last
//! block, so its cost grows with the prompt's length in blocks, not with the number of entries.
//!
//! The storage is shared rather than copied: an entry and the sequences that reused it point at
//! the same refcounted KV blocks ([`SeqKv`] is copy-on-write), so the long system prompt that
//! dozens of conversations share is held once.

use std::collections::{HashMap, HashSet};

use crate::model::SeqKv;

const BLOCK: usize = SeqKv::BLOCK_TOKENS;

/// A cached prefix: `kv` holds the tokens of its node's path followed by `tail`.
struct Entry {
    tail: Vec<u32>,
    kv: SeqKv,
    /// The session the entry belongs to, pinned while that session is alive.
    session: Option<String>,
    /// Logical clock of the last insert or hit, for least-recently-used eviction.
    last_used: u64,
}

/// One whole block of tokens below its parent.
#[derive(Default)]
struct Node {
    /// The next block of tokens → the child node holding it.
    children: HashMap<Vec<u32>, usize>,
    /// Entries whose whole blocks end here.
    entries: Vec<Entry>,
    /// The parent and the block that leads from it here; `None` for the root.
    parent: Option<(usize, Vec<u32>)>,
}

/// Reusable KV prefixes, least recently used evicted first.
pub struct PrefixCache {
    /// Arena of nodes; index 0 is the root, freed slots are listed in `free`.
    nodes: Vec<Node>,
    free: Vec<usize>,
    entries: usize,
    clock: u64,
}

impl Default for PrefixCache {
    fn default() -> Self {
        Self { nodes: vec![Node::default()], free: Vec::new(), entries: 0, clock: 0 }
    }
}

/// The result of a lookup: a cache holding the first `len` tokens of the prompt.
pub struct Hit {
    pub kv: SeqKv,
    pub len: usize,
}

/// Where an entry lives: its node and its index among the node's entries.
type Slot = (usize, usize);

impl PrefixCache {
    pub fn len(&self) -> usize {
        self.entries
    }

    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// The longest cached prefix of `tokens`, at most `limit` tokens long (the engine keeps at
    /// least one prompt token to compute, since logits are not cached). Among entries that share
    /// equally many tokens, the most recently used serves. `None` when no entry shares even one
    /// token.
    pub fn lookup(&mut self, tokens: &[u32], limit: usize) -> Option<Hit> {
        let (slot, len) = self.best(tokens)?;
        let len = len.min(limit);
        if len == 0 {
            return None;
        }
        self.clock += 1;
        let entry = &mut self.nodes[slot.0].entries[slot.1];
        entry.last_used = self.clock;
        let mut kv = entry.kv.clone();
        kv.truncate(len);
        Some(Hit { kv, len })
    }

    /// The length of the longest cached prefix of `tokens`, without touching recency.
    pub fn longest(&self, tokens: &[u32]) -> usize {
        self.best(tokens).map_or(0, |(_, len)| len)
    }

    /// The entry sharing the most leading tokens with `tokens`, the most recent among equals,
    /// and how many it shares.
    fn best(&self, tokens: &[u32]) -> Option<(Slot, usize)> {
        let (node, depth) = self.walk(tokens);
        let rest = &tokens[depth * BLOCK..];
        let mut best: Option<(Slot, usize, u64)> = None;
        let mut consider = |slot: Slot, len: usize, used: u64| {
            if best.is_none_or(|(_, l, u)| (len, used) > (l, u)) {
                best = Some((slot, len, used));
            }
        };
        // Entries ending in this node's last block share the part of their tail that matches;
        // entries further down share the part of their next block that matches.
        for (i, e) in self.nodes[node].entries.iter().enumerate() {
            consider((node, i), depth * BLOCK + common_prefix(&e.tail, rest), e.last_used);
        }
        for (block, &child) in &self.nodes[node].children {
            if let Some((slot, used)) = self.most_recent(child) {
                consider(slot, depth * BLOCK + common_prefix(block, rest), used);
            }
        }
        best.filter(|&(_, len, _)| len > 0).map(|(slot, len, _)| (slot, len))
    }

    /// The deepest node whose path is a prefix of `tokens`, and its depth in blocks.
    fn walk(&self, tokens: &[u32]) -> (usize, usize) {
        let mut node = 0;
        let mut depth = 0;
        for block in tokens.chunks_exact(BLOCK) {
            match self.nodes[node].children.get(block) {
                Some(&child) => {
                    node = child;
                    depth += 1;
                }
                None => break,
            }
        }
        (node, depth)
    }

    /// The most recently used entry at or below `node`.
    fn most_recent(&self, node: usize) -> Option<(Slot, u64)> {
        let here = self.nodes[node].entries.iter().enumerate().map(|(i, e)| ((node, i), e.last_used));
        let below = self.nodes[node].children.values().filter_map(|&child| self.most_recent(child));
        here.chain(below).max_by_key(|&(_, used)| used)
    }

    /// Caches `kv`, which holds `tokens`. Entries whose tokens are a prefix of `tokens` are
    /// dropped: the new entry serves every request they could.
    pub fn insert(&mut self, tokens: &[u32], kv: SeqKv, session: Option<&str>) {
        debug_assert_eq!(tokens.len(), kv.len());
        if tokens.is_empty() {
            return;
        }
        let whole = tokens.len() / BLOCK;
        let tail = &tokens[whole * BLOCK..];
        let (node, depth) = self.walk(tokens);
        if depth == whole && self.covers(node, tail) {
            // Already covered by an entry at least as long; refresh nothing, add nothing.
            return;
        }
        // Drop the entries this one extends: on the path, those whose tail the tokens continue.
        // Their nodes stay, since the new entry hangs at or below each of them.
        let mut on_path = vec![0];
        let mut at = 0;
        for block in tokens.chunks_exact(BLOCK).take(depth) {
            at = self.nodes[at].children[block];
            on_path.push(at);
        }
        for (d, &n) in on_path.iter().enumerate() {
            let rest = &tokens[d * BLOCK..];
            let before = self.nodes[n].entries.len();
            self.nodes[n].entries.retain(|e| !rest.starts_with(&e.tail));
            self.entries -= before - self.nodes[n].entries.len();
        }
        let mut node = node;
        for block in tokens[depth * BLOCK..whole * BLOCK].chunks_exact(BLOCK) {
            node = self.add_child(node, block);
        }
        self.clock += 1;
        self.nodes[node].entries.push(Entry { tail: tail.to_vec(), kv, session: session.map(str::to_string), last_used: self.clock });
        self.entries += 1;
    }

    /// Whether some entry at or below `node` continues `tail` (the tokens after `node`'s path).
    fn covers(&self, node: usize, tail: &[u32]) -> bool {
        let n = &self.nodes[node];
        n.entries.iter().any(|e| e.tail.starts_with(tail)) || n.children.keys().any(|block| block.starts_with(tail))
    }

    fn add_child(&mut self, parent: usize, block: &[u32]) -> usize {
        let node = Node { parent: Some((parent, block.to_vec())), ..Node::default() };
        let index = match self.free.pop() {
            Some(index) => {
                self.nodes[index] = node;
                index
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        };
        self.nodes[parent].children.insert(block.to_vec(), index);
        index
    }

    /// Frees `node` and then its ancestors for as long as they hold nothing.
    fn prune(&mut self, mut node: usize) {
        while node != 0 && self.nodes[node].entries.is_empty() && self.nodes[node].children.is_empty() {
            let Some((parent, block)) = self.nodes[node].parent.take() else { return };
            self.nodes[parent].children.remove(&block);
            self.free.push(node);
            node = parent;
        }
    }

    /// Drops the least recently used entry, preferring entries whose session is not in
    /// `live_sessions`; returns false when the cache is empty.
    pub fn evict_one(&mut self, live_sessions: &HashSet<String>) -> bool {
        let pinned = |e: &Entry| e.session.as_ref().is_some_and(|s| live_sessions.contains(s));
        let victim = self
            .live_nodes()
            .flat_map(|(n, node)| node.entries.iter().enumerate().map(move |(i, e)| ((n, i), e)))
            .min_by_key(|(_, e)| (pinned(e), e.last_used))
            .map(|(slot, _)| slot);
        let Some((node, index)) = victim else { return false };
        self.nodes[node].entries.swap_remove(index);
        self.entries -= 1;
        self.prune(node);
        true
    }

    /// Every entry's cache, for memory accounting.
    pub fn caches(&self) -> impl Iterator<Item = &SeqKv> {
        self.live_nodes().flat_map(|(_, node)| node.entries.iter().map(|e| &e.kv))
    }

    /// The nodes in the tree (the root and every node with a parent), with their indices.
    fn live_nodes(&self) -> impl Iterator<Item = (usize, &Node)> {
        self.nodes.iter().enumerate().filter(|(i, node)| *i == 0 || node.parent.is_some())
    }
}

/// Number of leading tokens `a` and `b` share.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

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

    #[test]
    fn prompts_sharing_whole_blocks_share_nodes_and_evicted_branches_are_freed() {
        let system: Vec<u32> = (0..40).collect();
        let turn = |last: u32| -> Vec<u32> { system.iter().copied().chain([last, last + 1]).collect() };
        let mut cache = PrefixCache::default();
        cache.insert(&turn(100), kv(42), None);
        cache.insert(&turn(200), kv(42), None);
        // Two whole blocks of the system prompt, then the two tails at the same node.
        assert_eq!(cache.live_nodes().count(), 3);
        assert_eq!(cache.longest(&turn(300)), 40);
        // Divergence inside the second block.
        let mut early: Vec<u32> = system[..20].to_vec();
        early.push(999);
        assert_eq!(cache.longest(&early), 20);
        let diverging: Vec<u32> = (0..32).map(|t| if t == 31 { 7 } else { t }).chain([5]).collect();
        cache.insert(&diverging, kv(33), None);
        assert_eq!(cache.live_nodes().count(), 4);
        assert_eq!(cache.longest(&diverging), 33);
        assert!(cache.evict_one(&HashSet::new()));
        assert!(cache.evict_one(&HashSet::new()));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.live_nodes().count(), 3, "the system prompt's branch is gone");
        assert_eq!(cache.longest(&turn(100)), 31);
        assert!(cache.evict_one(&HashSet::new()));
        assert_eq!(cache.live_nodes().count(), 1, "only the root is left");
        assert_eq!(cache.caches().count(), 0);
    }

    /// The rules the tree implements, as a list of entries, oldest first.
    #[derive(Default)]
    struct Naive(Vec<Vec<u32>>);

    impl Naive {
        fn insert(&mut self, tokens: &[u32]) {
            if self.0.iter().any(|e| e.starts_with(tokens)) {
                return;
            }
            self.0.retain(|e| !tokens.starts_with(e));
            self.0.push(tokens.to_vec());
        }

        fn longest(&self, tokens: &[u32]) -> usize {
            self.0.iter().map(|e| common_prefix(e, tokens)).max().unwrap_or(0)
        }
    }

    #[test]
    fn the_tree_holds_the_entries_and_finds_the_prefixes_a_list_would() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // Few distinct tokens, so that prompts share prefixes often and diverge anywhere.
        let prompt = |rng: &mut ChaCha8Rng| -> Vec<u32> {
            let len = rng.random_range(1..70);
            (0..len).map(|_| rng.random_range(0..3)).collect()
        };
        let mut cache = PrefixCache::default();
        let mut naive = Naive::default();
        for round in 0..2000 {
            let tokens = prompt(&mut rng);
            if round % 7 == 6 && !naive.0.is_empty() {
                // Without lookups, the least recently used entry is the oldest insert.
                assert!(cache.evict_one(&HashSet::new()));
                naive.0.remove(0);
            }
            assert_eq!(cache.longest(&tokens), naive.longest(&tokens), "round {round}: {tokens:?}");
            cache.insert(&tokens, kv(tokens.len()), None);
            naive.insert(&tokens);
            assert_eq!(cache.len(), naive.0.len(), "round {round}");
        }
    }
}
