//! Sockets to memcached servers: address forms, resolution, timeouts, and a buffered stream that
//! the protocol reader walks over. No `unsafe`: socket2 and rustix do the system calls.
#![forbid(unsafe_code)]

mod addr;
mod stream;

pub use addr::{resolve, split_host_port, Endpoint, ResolveError, DEFAULT_PORT};
pub use stream::{errno_of, wait_readable, Conn, Fail};
