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

/// The index in memory, for every operation a cost of what the one domain
/// or one message involves, never the size of the queue; and small per
/// message, since a parked queue can hold millions: a domain's name is
/// kept per domain, not per message, and numbered, and a message keeps its
/// first domain's number inline (the rare message with recipients in
/// several domains keeps the others aside).
#[derive(Debug, Default)]
pub struct MemoryIndex {
    /// Each domain with messages, by name: its number.
    numbers: HashMap<String, u32>,
    /// By number: the domain and its messages (`None`: free, in `free`).
    domains: Vec<Option<Domain>>,
    free: Vec<u32>,
    /// Each message's first domain.
    first: HashMap<QueueId, u32>,
    /// The other domains of messages with more than one.
    more: HashMap<QueueId, Vec<u32>>,
}

#[derive(Debug)]
struct Domain {
    name: String,
    ids: HashSet<QueueId>,
}

impl MemoryIndex {
    /// The number of `domain`, given one if it has none.
    fn number(&mut self, domain: &str) -> u32 {
        if let Some(&n) = self.numbers.get(domain) {
            return n;
        }
        let slot = Some(Domain {
            name: domain.to_owned(),
            ids: HashSet::new(),
        });
        let n = match self.free.pop() {
            Some(n) => {
                self.domains[n as usize] = slot;
                n
            }
            None => {
                // More than u32::MAX domains would need more than that
                // many messages' worth of memory first.
                let n = u32::try_from(self.domains.len()).unwrap_or(u32::MAX);
                self.domains.push(slot);
                n
            }
        };
        self.numbers.insert(domain.to_owned(), n);
        n
    }

    fn domain(&self, name: &str) -> Option<&Domain> {
        let n = *self.numbers.get(name)?;
        self.domains.get(n as usize)?.as_ref()
    }

    /// Takes `id` out of domain `n`, freeing the number when it was the
    /// domain's last message.
    fn leave(&mut self, n: u32, id: QueueId) {
        let Some(slot) = self.domains.get_mut(n as usize) else {
            return;
        };
        if let Some(domain) = slot {
            domain.ids.remove(&id);
            if domain.ids.is_empty() {
                self.numbers.remove(&domain.name);
                *slot = None;
                self.free.push(n);
            }
        }
    }
}

impl DestinationIndex for MemoryIndex {
    fn add(&mut self, domain: &str, id: QueueId) {
        let n = self.number(domain);
        match self.first.get(&id) {
            None => {
                self.first.insert(id, n);
            }
            Some(&first) if first == n => return,
            Some(_) => {
                let more = self.more.entry(id).or_default();
                if more.contains(&n) {
                    return;
                }
                more.push(n);
            }
        }
        if let Some(Some(d)) = self.domains.get_mut(n as usize) {
            d.ids.insert(id);
        }
    }

    fn remove(&mut self, id: QueueId) {
        let Some(first) = self.first.remove(&id) else {
            return;
        };
        self.leave(first, id);
        for n in self.more.remove(&id).unwrap_or_default() {
            self.leave(n, id);
        }
    }

    fn ids(&self, domain: &str) -> Vec<QueueId> {
        self.domain(domain)
            .map(|d| d.ids.iter().copied().collect())
            .unwrap_or_default()
    }

    fn count(&self, domain: &str) -> usize {
        self.domain(domain).map_or(0, |d| d.ids.len())
    }

    /// One pass over the domains keeping the `n` largest: the cost is the
    /// number of domains, never the number of messages.
    fn largest(&self, n: usize) -> Vec<(String, usize)> {
        use std::cmp::Reverse;
        use std::collections::BinaryHeap;
        let mut heap: BinaryHeap<Reverse<(usize, &str)>> = BinaryHeap::new();
        for d in self.domains.iter().flatten() {
            heap.push(Reverse((d.ids.len(), d.name.as_str())));
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

    /// Random adds and removals against a plain map of sets: numbers freed
    /// by a domain's last message and given to another domain never carry
    /// messages over, and nothing is left behind once all are removed.
    #[test]
    fn agrees_with_a_plain_model() {
        let mut rng = fastrand::Rng::with_seed(14);
        let mut index = MemoryIndex::default();
        let mut model: HashMap<u64, HashSet<String>> = HashMap::new();
        for _ in 0..20_000 {
            let id = rng.u64(0..200);
            if rng.u8(0..3) == 0 {
                index.remove(QueueId::from_u64(id));
                model.remove(&id);
            } else {
                let domain = format!("d{}.test", rng.u8(0..30));
                index.add(&domain, QueueId::from_u64(id));
                model.entry(id).or_default().insert(domain);
            }
        }
        for d in 0..30 {
            let domain = format!("d{d}.test");
            let mut got: Vec<u64> = index.ids(&domain).iter().map(|i| i.as_u64()).collect();
            got.sort_unstable();
            let mut want: Vec<u64> = model
                .iter()
                .filter(|(_, ds)| ds.contains(&domain))
                .map(|(id, _)| *id)
                .collect();
            want.sort_unstable();
            assert_eq!(got, want, "{domain}");
            assert_eq!(index.count(&domain), want.len());
        }
        for id in 0..200 {
            index.remove(QueueId::from_u64(id));
        }
        assert!(index.numbers.is_empty() && index.first.is_empty() && index.more.is_empty());
        assert!(index.domains.iter().all(Option::is_none));
    }
}
