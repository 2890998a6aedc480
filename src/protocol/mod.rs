//! The memcached text protocol, and the few meta commands a bulk write uses, as pure functions
//! on bytes: no sockets, no clocks.
//!
//! Requests are appended to a caller's buffer so one allocation serves every command on a
//! connection; replies are read by [`ReplyReader`], which is fed whatever bytes have arrived and
//! yields one [`Event`] at a time, so a reply split at any byte boundary parses the same.
#![forbid(unsafe_code)]

mod reply;
mod request;

pub use reply::{
    parse_u64, Event, EventOf, MetaCode, ProtoError, Reply, ReplyOf, ReplyReader, Span,
    MAX_LINE_LEN, MAX_VALUE_LEN,
};
pub use request::{
    encode_arith, encode_delete, encode_get, encode_meta_delete, encode_meta_store,
    encode_meta_touch, encode_simple, encode_store, encode_store_header, encode_touch, StoreCmd,
};
