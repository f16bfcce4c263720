//! Asynchronous calls on a durable queue (NATS JetStream), shared by the lb (which enqueues
//! calls and runs the workers that deliver them) and the control plane (which fires scheduled
//! functions, reports queue depth and serves `fjord calls`).
//!
//! - [`contract`]: the names on the wire: streams, subjects, the record stream, the headers of
//!   a queued message and of the HTTP API (`X-Call-Id`, `X-Callback-Url`, ...), call ids.
//! - [`call`]: the record of one call (state, attempts, status, timings), kept in the state
//!   bucket under its id.
//! - [`retry`]: which answers are retried, the backoff, and what an attempt's end comes to.
//! - [`callback`]: which callback addresses are accepted.
//! - [`connection`]: the queue reached in the background, for daemons that must start without it.
//! - [`queue`]: the client: connect and create the streams, enqueue, records, dead letters,
//!   redrive and cancel, depth.
//!
//! Delivery is at least once: a message leaves the queue only after its function answered and
//! its callback (if any) was delivered or given up; a worker that dies before that leaves it to
//! be delivered again.

pub mod call;
pub mod callback;
pub mod connection;
pub mod contract;
pub mod queue;
pub mod retry;

/// The NATS client, for the workers that take messages from the queue.
pub use async_nats;
pub use call::{CallRecord, CallState};
pub use connection::QueueHandle;
pub use queue::{Queue, QueueError};
