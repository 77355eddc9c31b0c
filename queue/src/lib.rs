//! towerpost's durable, sharded mail queue.
//!
//! The queue is split into shards, each an embedded [redb] database file
//! owned by one task that alone writes to it, so shards never contend. A
//! message is stored — content and envelope in one transaction — before
//! [`Queue::enqueue`] returns, and concurrent messages of a shard share one
//! commit (group commit): the fsync, not the CPU, is what a durable queue
//! pays for, and a batch pays for it once.
//!
//! Durability contract: when `enqueue` returns `Ok`, the message survives a
//! crash of the process or the machine at any later instant. A crash before
//! that leaves no trace of it (a redb transaction is all or nothing). A
//! large message keeps its first [`INLINE_CONTENT_LIMIT`] octets in its
//! record and the rest in a content file that is durable before the record
//! naming it is committed ([`Queue::enqueue_spooled`]); a file no record
//! names is removed when the queue opens.
//!
//! [redb]: https://docs.rs/redb

mod content;
mod content_file;
mod delivery;
pub mod dsn;
mod error;
mod fault;
mod id;
mod manager;
mod message;
mod overlay;
mod queue;
mod record;
mod salvage;
mod scan;
mod shard;
mod store;

pub use content::{Content, ContentReader};
pub use content_file::{ContentWriter, INLINE_CONTENT_LIMIT, SpooledContent};
pub use delivery::{DeliveryRecipient, DeliveryReport, DeliveryRequest, DeliveryService, Outcome};
pub use error::QueueError;
pub use id::{QueueId, QueueIdParseError};
pub use manager::{
    Agent, DestinationIndex, FlushScope, Flusher, ManagerSettings, MemoryIndex, Pacing,
    QueueManager, QueueStats, Router, Transport,
};
pub use message::{Envelope, QueueEntry, QueueState, Recipient, RecipientStatus, SpooledPart};
pub use queue::{Quarantined, Queue, QueueSettings};
pub use salvage::{
    CORRUPT_DIR, SalvageReport, ShardHealth, check_queue, check_shard, salvage_shard,
};
pub use scan::{QueueScan, SCAN_PAGE};
