//! The one engine under every front end: the C ABI ([`crate::ffi`]), the Rust [`crate::client`],
//! `mclient`, `mcadmin` and propagation all route, fail over, keep copies and decide a
//! connection's fate here, so those rules exist once.
//!
//! - [`Health`]: whether a server is up, down until its retry time, or put down by the user.
//! - [`Slot`]: one server's connection and health, and the connection rules: a connection is
//!   checked idle before reuse, any unsolicited byte or failure closes it, a timeout or a refused
//!   connect marks the server down, nothing is re-sent.
//! - [`Servers`] and the algorithms over it ([`route`], [`connect_copies`], [`on_copies`]): the
//!   distribution's pick with failover, and the servers holding a key's copies. A front end says
//!   how it picks (the Selector, or a C program's finder hook) and how it reports.
//! - [`pipelined`]: callers sharing a front end send on one connection without waiting for
//!   each other's replies, and take turns reading them in order (no thread of our own).
//! - [`multi_get`]: many keys, one `get` per server, the replies read as they arrive, and the
//!   keys still missing asked of their next copy; the front end says where values go
//!   ([`Wanted`]).
//!
//! - [`bulk`]: many writes with an answer per key, each server's share written in one go
//!   (memcached 1.6's quiet meta commands where the server speaks them, pipelined text
//!   elsewhere), to every server before any reply is read.
//!
//! Each operation is bounded by twice its timeout ([`crate::conn::Conn`]) and values grow as
//! their bytes arrive ([`crate::command::PREALLOC_LIMIT`]).
#![forbid(unsafe_code)]

mod bulk;
mod health;
mod multi_get;
mod pipe;
mod route;
mod slot;

use std::time::Duration;

pub use bulk::{bulk, Answer, Bulk, BulkItems, BulkOp, Dialect};
pub use health::Health;
pub use multi_get::{multi_get, MultiGet, Wanted};
pub use pipe::{pipelined, Shared};
pub use route::{connect_copies, on_copies, route, RouteError, Servers};
pub use slot::{ConnectError, Fate, Slot};

/// libmemcache's default timeout for every wait on a server: 2 s + 600 µs.
pub const DEFAULT_TIMEOUT: Duration = Duration::new(2, 600_000);

/// How long a server that failed is left out of placement before it is tried again.
pub const DEFAULT_RETRY: Duration = Duration::from_secs(5);
