//! The libmemcache 1.4 C ABI, one file per C concept. Every exported function is written out in
//! full (so cbindgen sees it) and its body runs inside [`ffi_body!`], the single place where a
//! Rust panic is stopped before it can cross into C. Pointer checks are early returns sharing the
//! function's failure value.
#![allow(non_snake_case)]
// parameter names are those of memcache.h
// Each `mc_*` twin's contract is that of its `mcm_*` form, documented there.
#![allow(clippy::missing_safety_doc)]
// `check_null!((); p)` in functions returning void.
#![allow(clippy::unused_unit)]

/// Runs an exported function's body, turning a panic into the function's failure value.
macro_rules! ffi_body {
    ($fail:expr, $body:block) => {
        match ::std::panic::catch_unwind(::std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $fail,
        }
    };
}

/// Returns `$fail` from the enclosing function when any of the pointers is NULL.
macro_rules! check_null {
    ($fail:expr; $($p:expr),+) => {
        if $($p.is_null())||+ {
            return $fail;
        }
    };
}

// The files form layers, lowest first; each uses only files of lower layers, so there is no
// import cycle (tests/module_graph.rs keeps it so):
//   types, fork (process id, fork generation) | lock | state, repeats | error | hooks, atfork
//   | context, route | server, buffer, strings | handle | domain | operation
//   | server_list, fetch, store, stats, bulk, security | beyond
mod atfork;
pub mod beyond;
pub mod buffer;
pub mod bulk;
pub mod context;
pub mod domain;
pub mod error;
pub mod fetch;
mod fork;
pub mod handle;
pub mod hooks;
mod lock;
pub mod operation;
mod repeats;
pub mod route;
pub mod security;
pub mod server;
pub mod server_list;
mod state;
pub mod stats;
pub mod store;
pub mod strings;
pub mod types;
