//! A walk over the whole queue a page at a time, in id order, holding a
//! few hundred envelopes per shard however large the queue is: how the
//! queue manager loads its schedule at start-up and how `queue list`
//! streams a million messages.
//!
//! Each shard is read in short read transactions, one per batch, from
//! just after the last id it returned; the shards' batches are merged by
//! id. Mail that changes during the walk is seen as `mailq` sees a spool
//! directory that changes under it: a message stored meanwhile is seen if
//! its shard has not been read to its end yet and its id is past that
//! shard's cursor (so it may come after larger ids of other shards), one
//! removed is not seen once past. The server's start-up walks before any
//! listener accepts, when nothing changes. A record whose envelope cannot
//! be decoded is moved to quarantine as it is met, as a whole read of the
//! queue has always done.

use std::collections::VecDeque;

use crate::error::QueueError;
use crate::id::QueueId;
use crate::message::QueueEntry;
use crate::queue::Queue;

/// Envelopes read from one shard at a time.
const SHARD_BATCH: usize = 256;

/// Messages in one [`QueueScan::next_page`].
pub const SCAN_PAGE: usize = 512;

/// Where the walk is in one shard.
#[derive(Debug, Default)]
struct Cursor {
    /// The last id read from this shard.
    after: Option<QueueId>,
    /// Read, not yet returned, in id order.
    buffered: VecDeque<QueueEntry>,
    /// Nothing after `after` was found.
    done: bool,
}

/// Every queued message, in id order, a page at a time (see the module
/// documentation); from [`Queue::scan`]. It holds a handle to the
/// queue: drop it before [`Queue::shutdown`].
#[derive(Debug)]
pub struct QueueScan {
    queue: Queue,
    cursors: Vec<Cursor>,
}

impl QueueScan {
    pub(crate) fn new(queue: Queue, shards: usize) -> Self {
        Self {
            queue,
            cursors: (0..shards).map(|_| Cursor::default()).collect(),
        }
    }

    /// The next messages in id order, at most [`SCAN_PAGE`]; `None` once
    /// the walk is over.
    pub async fn next_page(&mut self) -> Result<Option<Vec<QueueEntry>>, QueueError> {
        let mut page = Vec::with_capacity(SCAN_PAGE);
        while page.len() < SCAN_PAGE {
            self.refill().await?;
            let next = self
                .cursors
                .iter_mut()
                .filter_map(|c| c.buffered.front().map(|e| e.id).zip(Some(c)))
                .min_by_key(|(id, _)| *id);
            let Some((_, cursor)) = next else { break };
            page.extend(cursor.buffered.pop_front());
        }
        Ok((!page.is_empty()).then_some(page))
    }

    /// Reads the next batch of every shard whose buffer is empty, so each
    /// shard's next message is known before the smallest is taken.
    async fn refill(&mut self) -> Result<(), QueueError> {
        for (index, cursor) in self.cursors.iter_mut().enumerate() {
            while cursor.buffered.is_empty() && !cursor.done {
                let after = cursor.after;
                let (entries, damaged) = self
                    .queue
                    .read_shard(index, move |s| s.page(after, SHARD_BATCH))
                    .await?;
                let last = entries
                    .last()
                    .map(|e| e.id)
                    .max(damaged.last().map(|d| d.id));
                for d in damaged {
                    self.queue.quarantine(index, d.id, &d.reason).await?;
                }
                match last {
                    Some(last) => cursor.after = Some(last),
                    None => cursor.done = true,
                }
                cursor.buffered.extend(entries);
            }
        }
        Ok(())
    }
}
