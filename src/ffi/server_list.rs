//! A handle's own server list (`mc->servers`, `mc->server_list`): adding servers to it (spec
//! §7.1, D3; a handle that follows a domain detaches first or refuses, see `domain.rs`) and
//! finding the server for a hash (§8.2).

use std::ffi::CStr;

use libc::{c_char, c_int, c_void, size_t};

use super::context::{global, Alloc};
use super::error::{report, Scope};
use super::hooks::{find, key_bytes};
use super::server::{free_server, new_server};
use super::state::{self, cstr_lossy};
use super::types::*;
use crate::{address, conn};

/// `strlen(s)`, 0 for NULL (the entry points that take C strings pass a NULL on to the
/// checks of their length-taking forms).
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
pub unsafe fn c_len(s: *const c_char) -> usize {
    if s.is_null() {
        0
    } else {
        // SAFETY: s is non-NULL (tested above) and NUL-terminated: every caller passes a string
        // argument memcache.h documents as NULL or a C string.
        unsafe { libc::strlen(s) }
    }
}

// ---- exported: adding servers ----

/// Adds `hostname` (`hostname_len` bytes, need not be NUL-terminated; NULL or 0 means
/// "localhost") and `port` (likewise; NULL or 0 means "11211"). A hostname starting with `/`
/// is a unix socket. Returns 0, -1 (allocation), -2/-3 (copies), -4 (unresolvable host, not
/// added) or -5 (array growth).
///
/// # Safety
/// `mc` is a live handle; the strings are NULL or readable for their lengths.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add2(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostname: *const c_char,
    hostname_len: size_t,
    port: *const c_char,
    port_len: size_t,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: ctxt and mc were NULL-checked above and are live (the documented arguments);
        // hostname and port are NULL or readable for their lengths, as add_parts() needs.
        unsafe {
            add_parts(
                ctxt,
                mc,
                hostname,
                hostname_len,
                port,
                port_len,
                c"mcm_server_add2",
            )
        }
    })
}

/// mcm_server_add2()'s work, reported under `funcname`.
///
/// # Safety
/// As mcm_server_add2(), with `ctxt` and `mc` checked.
unsafe fn add_parts(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostname: *const c_char,
    hostname_len: size_t,
    port: *const c_char,
    port_len: size_t,
    funcname: &'static CStr,
) -> c_int {
    // SAFETY: key_bytes() gives an empty slice for NULL or 0; else hostname and port are
    // readable for their lengths: mcm_server_add2()'s documented arguments, or mcm_server_add()'s
    // C strings with their strlen().
    let (host, port) = unsafe { (key_bytes(hostname, hostname_len), key_bytes(port, port_len)) };
    let host: &[u8] = if host.is_empty() {
        address::DEFAULT_HOST.as_bytes()
    } else {
        host
    };
    let port = port_text(host, (!port.is_empty()).then_some(port));
    // SAFETY: ctxt and mc were NULL-checked by the exported caller and are live.
    unsafe { add_host_port(ctxt, mc, host, &port, funcname) }
}

/// The port string stored for `host`: "0" for a unix socket path, so that host + ":" + port
/// round-trips; memcached's port when none is written, as in 1.4; else the text as given
/// (resolution refuses one that is not a port).
fn port_text(host: &[u8], port: Option<&[u8]>) -> Vec<u8> {
    match port {
        _ if host.starts_with(b"/") => address::UNIX_PORT.to_string().into_bytes(),
        None => address::DEFAULT_PORT.to_string().into_bytes(),
        Some(text) => text.to_vec(),
    }
}

/// mcm_server_add5()'s work, reported under `funcname`.
///
/// # Safety
/// As mcm_server_add5(), with `ctxt` and `mc` checked.
unsafe fn add_spec(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostport: *const c_char,
    hostlen: size_t,
    funcname: &'static CStr,
) -> c_int {
    // SAFETY: key_bytes() gives an empty slice for NULL or 0; else hostport is readable for
    // hostlen bytes: mcm_server_add5()'s documented argument, or mcm_server_add4()'s C string
    // with its strlen().
    let spec = unsafe { key_bytes(hostport, hostlen) };
    // `tls://` is ASCII: a text that is not UTF-8 is not cut, and has no scheme.
    let (tls, spec) = match std::str::from_utf8(spec) {
        Ok(text) => {
            let (tls, rest) = address::strip_tls(text);
            (tls, rest.as_bytes())
        }
        Err(_) => (false, spec),
    };
    let (host, port) = address::split_host_port(spec);
    // SAFETY: ctxt and mc were NULL-checked by the exported caller and are live.
    let rc = unsafe { add_host_port(ctxt, mc, host, &port_text(host, port), funcname) };
    if rc == 0 && tls {
        let st = state::handle(mc);
        let mut inner = st.lock();
        // SAFETY: the server just added is the last of the array.
        let ms = unsafe { *state::server_slice(mc).last().expect("just added") };
        inner.side(ms).tls = true;
    }
    rc
}

/// Builds a server for `host` and `port` and appends it, under one report scope named after
/// the C function the program called.
///
/// # Safety
/// `ctxt` and `mc` are live.
unsafe fn add_host_port(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    host: &[u8],
    port: &[u8],
    funcname: &'static CStr,
) -> c_int {
    let scope = Scope::enter(funcname);
    // SAFETY: ctxt and mc are live: every exported caller NULL-checks them.
    let rc = unsafe { build_and_add(ctxt, mc, host, port) };
    state::handle(mc).set_last_error(if rc != 0 { scope.last() } else { None });
    scope.deliver(ctxt).ret(rc)
}

/// # Safety
/// As add_host_port().
unsafe fn build_and_add(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    host: &[u8],
    port: &[u8],
) -> c_int {
    // SAFETY: ctxt is non-NULL (every exported caller NULL-checks it); only its allocator
    // fields are read.
    let alloc = unsafe { Alloc::of(ctxt) };
    let ms = new_server(&alloc);
    if ms.is_null() {
        super::context::report_oom(ctxt, "struct memcache_server");
        return -1;
    }
    let h = alloc.cstring(host);
    if h.is_null() {
        alloc.free(ms);
        super::context::report_oom(ctxt, "server hostname");
        return -2;
    }
    let p = alloc.cstring(port);
    if p.is_null() {
        alloc.free(h);
        alloc.free(ms);
        super::context::report_oom(ctxt, "server port");
        return -3;
    }
    // SAFETY: ms is a fresh server; the strings are ours to hand over.
    unsafe {
        (*ms).hostname = h;
        (*ms).port = p;
        add3(ctxt, mc, ms)
    }
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add2(
    mc: *mut memcache,
    hostname: *const c_char,
    hostname_len: size_t,
    port: *const c_char,
    port_len: size_t,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add2(global(), mc, hostname, hostname_len, port, port_len) }
}

/// NUL-terminated form of mc_server_add2().
///
/// # Safety
/// `mc` is a live handle; the strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostname: *const c_char,
    port: *const c_char,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let (hlen, plen) = (c_len(hostname), c_len(port));
        // SAFETY: ctxt and mc were NULL-checked above; hostname and port are NULL or C strings
        // (the documented arguments), so readable for the lengths c_len() just measured.
        unsafe { add_parts(ctxt, mc, hostname, hlen, port, plen, c"mcm_server_add") }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add(
    mc: *mut memcache,
    hostname: *const c_char,
    port: *const c_char,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add(global(), mc, hostname, port) }
}

/// Adds `"host:port"` (`hostlen` bytes): no port means 11211, `[v6]:port` and bare IPv6
/// literals work, a path starting with `/` is a unix socket (D3). Results as mc_server_add2().
///
/// # Safety
/// `mc` is a live handle; `hostport` is NULL or `hostlen` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add5(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostport: *const c_char,
    hostlen: size_t,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        // SAFETY: ctxt and mc were NULL-checked above; hostport is NULL or readable for hostlen
        // bytes (the documented argument).
        unsafe { add_spec(ctxt, mc, hostport, hostlen, c"mcm_server_add5") }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add5(
    mc: *mut memcache,
    hostport: *const c_char,
    hostlen: size_t,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add5(global(), mc, hostport, hostlen) }
}

/// NUL-terminated form of mc_server_add5().
///
/// # Safety
/// `mc` is a live handle; `hostport` is NULL or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add4(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    hostport: *const c_char,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let len = c_len(hostport);
        // SAFETY: ctxt and mc were NULL-checked above; hostport is NULL or a C string (the
        // documented argument), so readable for the length c_len() just measured.
        unsafe { add_spec(ctxt, mc, hostport, len, c"mcm_server_add4") }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add4(mc: *mut memcache, hostport: *const c_char) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add4(global(), mc, hostport) }
}

/// Resolves `ms->hostname`/`ms->port` now and appends the server to the handle, which then
/// owns it. 0 on success; -1 for NULL arguments. When the server is not added it is freed:
/// -4 the host does not resolve; -5 the array cannot grow; -6 the handle follows a shared
/// domain, whose list belongs to mcadmin(8). The strings must come from the context's
/// allocator.
///
/// # Safety
/// `mc` is a live handle; `ms` a server from mc_server_new() not yet added anywhere.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_add3(
    ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    ms: *mut memcache_server,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc, ms);
        let scope = Scope::enter(c"mcm_server_add3");
        // SAFETY: ctxt, mc and ms were NULL-checked above; ms is a server from mcm_server_new()
        // not yet added anywhere (the documented argument), so add3() may take it over.
        let rc = unsafe { add3(ctxt, mc, ms) };
        let st = state::handle(mc);
        st.set_last_error(if rc != 0 { scope.last() } else { None });
        scope.deliver(ctxt).ret(rc)
    })
}

/// # Safety
/// As mcm_server_add3().
unsafe fn add3(ctxt: *mut memcache_ctxt, mc: *mut memcache, ms: *mut memcache_server) -> c_int {
    // SAFETY: ctxt is non-NULL: mcm_server_add3() NULL-checks it, and build_and_add() has it
    // from exported callers that do; only its allocator fields are read.
    let alloc = unsafe { Alloc::of(ctxt) };
    // SAFETY: ms is live; hostname and port are NULL or C strings.
    let (host, port) = unsafe { (cstr_lossy((*ms).hostname), cstr_lossy((*ms).port)) };
    let endpoint = match conn::resolve(&host, &port) {
        Ok(ep) => ep,
        Err(e) => {
            report!(
                ctxt,
                MCM_ERR_NET_HOST,
                0,
                0,
                format!("{host}:{port}: {}", e.message())
            );
            // SAFETY: the server is not added; 1.4 frees it here.
            unsafe { free_server(&alloc, ms) };
            return -4;
        }
    };
    let st = state::handle(mc);
    let mut inner = st.lock();
    // SAFETY: mc is live and inner its locked state.
    if !unsafe { super::domain::before_explicit_add(ctxt, mc, &st, &mut inner) } {
        // SAFETY: not added; freed like an unresolvable server.
        unsafe { free_server(&alloc, ms) };
        return -6;
    }
    // SAFETY: mc and ms are live; the array is only changed under the handle's lock.
    unsafe {
        let m = &mut *mc;
        let n = m.num_servers as usize;
        let grown = alloc.realloc(
            m.servers as *mut c_void,
            (n + 2) * std::mem::size_of::<*mut memcache_server>(),
        ) as *mut *mut memcache_server;
        if grown.is_null() {
            report!(
                ctxt,
                MCM_ERR_MEM_REALLOC,
                0,
                libc::ENOMEM,
                "growing the server array"
            );
            // Not added: freed like a server that does not resolve.
            free_server(&alloc, ms);
            return -5;
        }
        *grown.add(n) = ms;
        *grown.add(n + 1) = std::ptr::null_mut();
        m.servers = grown;
        m.num_servers += 1;
        let s = &mut *ms;
        if s.tv.tv_sec == 0 && s.tv.tv_usec == 0 {
            s.tv = m.tv;
        }
        s.num_addrs = match &endpoint {
            conn::Endpoint::Tcp(a) => a.len() as u32,
            conn::Endpoint::Unix(_) => 1,
        };
        // TAILQ_INSERT_TAIL(&mc->server_list, ms, entries)
        if m.server_list.tqh_last.is_null() {
            m.server_list.tqh_last = &raw mut m.server_list.tqh_first;
        }
        s.entries.tqe_next = std::ptr::null_mut();
        s.entries.tqe_prev = m.server_list.tqh_last;
        *m.server_list.tqh_last = ms;
        m.server_list.tqh_last = &raw mut s.entries.tqe_next;
    }
    inner.side(ms).slot.set_endpoint(endpoint);
    state::set_owner(ms, mc);
    // SAFETY: mc is live and its array was just made consistent.
    unsafe { st.rebuild_selector(mc, &inner) };
    0
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_add3(mc: *mut memcache, ms: *mut memcache_server) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_add3(global(), mc, ms) }
}

// ---- exported: finding ----

/// `ctxt->mcServerFind(ctxt, mc, hash)`: the server for a hash, or NULL. Borrowed: owned by
/// the handle.
///
/// # Safety
/// `ctxt` and `mc` are live.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_find(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    hash: u32,
) -> *mut memcache_server {
    ffi_body!(std::ptr::null_mut(), {
        check_null!(std::ptr::null_mut(); ctxt, mc);
        let scope = Scope::enter(c"mcm_server_find");
        // SAFETY: ctxt and mc were NULL-checked above and are live (the documented arguments).
        unsafe { super::operation::sync_handle(ctxt, mc) };
        let st = state::handle(mc);
        // Another thread's call may replace mc->servers and free the servers that left: the
        // default finder walks the array under the handle's lock (find() releases it for a
        // program's own finder, which may call the library).
        let mut inner = st.lock();
        // SAFETY: ctxt and mc were NULL-checked above and are live; st is mc's state and inner
        // its locked state.
        let ms = unsafe { find(ctxt, mc, &st, &mut inner, hash) };
        drop(inner);
        scope.deliver(ctxt);
        ms
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_find(mc: *mut memcache, hash: u32) -> *mut memcache_server {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_find(global(), mc, hash) }
}
