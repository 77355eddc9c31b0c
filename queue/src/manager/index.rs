//! The per-destination index behind fast flush: recipient domain → the
//! queued messages (all but those on hold) with a recipient there still to
//! deliver.
//!
//! Postfix keeps one append-only logfile per destination and lets it go
//! stale; this index is exact instead: the queue manager adds a message
//! when it is loaded, made due or deferred with a recipient of that domain
//! and drops it when the message leaves the queue, in the same task that makes scheduling decisions, so
//! a flush and a deferral can never pass each other unseen. It is rebuilt
//! from the queue at start-up: the queue is the truth, the index a view.

use std::collections::{HashMap, HashSet};

use crate::id::QueueId;

/// What fast flush needs from an index. A shared store (several nodes
/// serving one domain) can implement it.
pub trait DestinationIndex: Send {
    /// `id` has deferred mail for `domain` (lower-case).
    fn add(&mut self, domain: &str, id: QueueId);
    /// `id` left the queue or has no deferred recipient any more.
    fn remove(&mut self, id: QueueId);
    /// The messages with deferred mail for `domain`.
    fn ids(&self, domain: &str) -> Vec<QueueId>;
    /// How many messages [`ids`](Self::ids) would return.
    fn count(&self, domain: &str) -> usize {
        self.ids(domain).len()
    }
    /// The `n` domains with the most messages, most first (for metrics);
    /// an index that cannot tell returns none.
    fn largest(&self, n: usize) -> Vec<(String, usize)> {
        let _ = n;
        Vec::new()
    }
}

/// The index in memory: two maps, so that every operation costs what the
/// one domain or one message involves, never the size of the queue.
#[derive(Debug, Default)]
pub struct MemoryIndex {
    by_domain: HashMap<String, HashSet<QueueId>>,
    by_id: HashMap<QueueId, Vec<String>>,
}

impl DestinationIndex for MemoryIndex {
    fn add(&mut self, domain: &str, id: QueueId) {
        let domains = self.by_id.entry(id).or_default();
        if domains.iter().any(|d| d == domain) {
            return;
        }
        domains.push(domain.to_owned());
        self.by_domain
            .entry(domain.to_owned())
            .or_default()
            .insert(id);
    }

    fn remove(&mut self, id: QueueId) {
        for domain in self.by_id.remove(&id).unwrap_or_default() {
            if let Some(ids) = self.by_domain.get_mut(&domain) {
                ids.remove(&id);
                if ids.is_empty() {
                    self.by_domain.remove(&domain);
                }
            }
        }
    }

    fn ids(&self, domain: &str) -> Vec<QueueId> {
        self.by_domain
            .get(domain)
            .map(|ids| ids.iter().copied().collect())
            .unwrap_or_default()
    }

    fn count(&self, domain: &str) -> usize {
        self.by_domain.get(domain).map_or(0, HashSet::len)
    }

    /// One pass over the domains keeping the `n` largest: the cost is the
    /// number of domains, never the number of messages.
    fn largest(&self, n: usize) -> Vec<(String, usize)> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut heap: BinaryHeap<Reverse<(usize, &str)>> = BinaryHeap::new();
        for (domain, ids) in &self.by_domain {
            heap.push(Reverse((ids.len(), domain.as_str())));
            if heap.len() > n {
                heap.pop();
            }
        }
        let mut out: Vec<(String, usize)> = heap
            .into_iter()
            .map(|Reverse((count, domain))| (domain.to_owned(), count))
            .collect();
        out.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_largest_domains_come_first() {
        let mut index = MemoryIndex::default();
        let ids: Vec<QueueId> = (1..7u64).map(QueueId::from_u64).collect();
        for id in &ids[..3] {
            index.add("big.test", *id);
        }
        index.add("mid.test", ids[3]);
        index.add("mid.test", ids[4]);
        index.add("small.test", ids[5]);
        assert_eq!(
            index.largest(2),
            [("big.test".to_owned(), 3), ("mid.test".to_owned(), 2)]
        );
        assert_eq!(index.count("small.test"), 1);
        assert_eq!(index.count("none.test"), 0);
        index.remove(ids[0]);
        assert_eq!(index.count("big.test"), 2);
    }

    #[test]
    fn add_remove_and_lookup_per_domain() {
        let mut index = MemoryIndex::default();
        let (a, b) = (QueueId::from_u64(1), QueueId::from_u64(2));
        index.add("customer.test", a);
        index.add("customer.test", a);
        index.add("other.test", a);
        index.add("customer.test", b);
        let mut ids = index.ids("customer.test");
        ids.sort();
        assert_eq!(ids, [a, b]);
        index.remove(a);
        assert_eq!(index.ids("customer.test"), [b]);
        assert!(index.ids("other.test").is_empty());
        assert!(
            index.ids("sub.customer.test").is_empty(),
            "exact domains only"
        );
    }
}
