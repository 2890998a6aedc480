//! libmemcache: a binary drop-in for libmemcache 1.4.0.rc2 (`libmemcache.so.0`), rebuilt in Rust.
//!
//! Data flows one way: a C call enters [`ffi`], which checks pointers and converts arguments, the
//! safe core ([`key`], [`hash`], [`protocol`], [`conn`]) does the work, and the result goes back
//! through the 1.4 conventions, and the one engine ([`engine`]) runs every operation for both
//! front ends (the C ABI and the Rust [`client`]).
//!
//! `unsafe` code lives in [`ffi`] (the C ABI: raw pointers, C callbacks, `pthread_atfork`) and in
//! [`registry`]'s shared-memory segment (`segment.rs`, `layout.rs`: `mmap` and the segment's
//! atomics), each block with a `// SAFETY:` comment; `mcadmin` installs a signal handler. The
//! safe core is `#![forbid(unsafe_code)]`: [`engine`], [`conn`], [`client`], [`command`],
//! [`protocol`], [`hash`], [`key`], [`address`], [`propagate`], [`status`], [`exit_code`],
//! [`process`].

pub mod address;
pub mod client;
pub mod command;
pub mod conn;
pub mod domain_file;
pub mod domain_security;
pub mod engine;
pub mod exit_code;
pub mod ffi;
pub mod hash;
pub mod key;
pub mod process;
pub mod propagate;
pub mod protocol;
pub mod registry;
pub mod source;
pub mod state_dir;
pub mod status;
