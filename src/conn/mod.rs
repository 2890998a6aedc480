//! Sockets to memcached servers: resolution, timeouts, and a buffered stream that
//! the protocol reader walks over. No `unsafe`: socket2 and rustix do the system calls.
#![forbid(unsafe_code)]

mod resolve;
mod stream;

pub use resolve::{resolve, Endpoint, ResolveError};
pub use stream::{errno_of, later, wait_readable, Conn, Fail, Lent};
