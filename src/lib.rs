//! libmemcache: a binary drop-in for libmemcache 1.4.0.rc2 (`libmemcache.so.0`), rebuilt in Rust.
//!
//! Data flows one way: a C call enters [`ffi`], which checks pointers and converts arguments, the
//! safe core ([`key`], [`hash`], [`protocol`], [`conn`]) does the work, and the result goes back
//! through the 1.4 conventions. Only `ffi` contains `unsafe` code.

pub mod address;
pub mod client;
pub mod command;
pub mod conn;
pub mod engine;
pub mod ffi;
pub mod hash;
pub mod key;
pub mod propagate;
pub mod protocol;
pub mod registry;
