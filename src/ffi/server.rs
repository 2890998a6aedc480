//! Servers: the `struct memcache_server` a program makes and frees (spec §7.1) and its states
//! (§7.3): activate, deactivate, disconnect, timeout. Adding servers to a handle and finding one
//! for a hash are `server_list.rs`; reaching a server for a command is `route.rs`.

use libc::{c_int, timeval};

use super::context::{global, Alloc};
use super::error::{report, Scope};
use super::hooks::{STATE_DOWN, STATE_NO_HOST, STATE_TRY, STATE_UP};
use super::route::{close, timeout_of};
use super::state::{self, server_slice};
use super::types::*;
use crate::conn;

// ---- exported: creating and adding servers ----

/// A new, unattached server in state 't' with no socket. Caller owns it: add it with
/// mc_server_add3() (the handle then owns it) or release it with mc_server_free().
///
/// # Safety
/// `ctxt` is NULL (libc allocator) or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_new(ctxt: *mut memcache_ctxt) -> *mut memcache_server {
    ffi_body!(std::ptr::null_mut(), {
        let scope = Scope::enter(c"mcm_server_new");
        // SAFETY: ctxt is NULL (libc's allocator) or the live context the C caller passes; only its
        // allocator fields are read.
        let ms = new_server(&unsafe { Alloc::of(ctxt) });
        if ms.is_null() {
            super::context::report_oom(ctxt, "struct memcache_server");
        }
        scope.deliver(if ctxt.is_null() { global() } else { ctxt });
        ms
    })
}

/// A zeroed server from `mcMalloc` in state 't' with no socket, or NULL.
pub fn new_server(alloc: &Alloc) -> *mut memcache_server {
    let ms = alloc.new_zeroed::<memcache_server>();
    // SAFETY: ms is NULL or a fresh zeroed server that nothing else refers to.
    if let Some(m) = unsafe { ms.as_mut() } {
        m.fd = -1;
        m.active = STATE_TRY;
    }
    ms
}

#[no_mangle]
pub extern "C" fn mc_server_new() -> *mut memcache_server {
    // SAFETY: the global context is live.
    unsafe { mcm_server_new(global()) }
}

/// Releases a server that is not part of a handle (a handle frees its own servers in
/// mc_free()): its socket, hostname, port and the structure. NULL is ignored.
///
/// # Safety
/// `ms` is NULL or a server from mc_server_new() not used after this call.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_free(ctxt: *mut memcache_ctxt, ms: *mut memcache_server) {
    ffi_body!((), {
        check_null!((); ms);
        if let Some(mc) = state::owner(ms) {
            let st = state::handle(mc);
            st.lock().servers.retain(|s| s.ms != ms);
            state::forget_owner(ms);
        }
        // SAFETY: ms was NULL-checked above and is a server the caller gives up (the documented
        // argument); an owning handle's side of it was just dropped, so nothing refers to it after
        // this; ctxt is NULL or the context it was made with.
        unsafe { free_server(&Alloc::of(ctxt), ms) };
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_free(ms: *mut memcache_server) {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_free(global(), ms) }
}

/// # Safety
/// `ms` is a live server whose connection state was already dropped.
pub unsafe fn free_server(alloc: &Alloc, ms: *mut memcache_server) {
    // SAFETY: ms is live and used by nobody after this: mcm_server_free() and mcm_free() pass
    // a server their caller gives up, add3() and replace_servers() one that is not (or no
    // longer) in a handle's list; hostname and port are NULL or from alloc, as the adds set
    // them.
    unsafe {
        alloc.free((*ms).hostname);
        alloc.free((*ms).port);
    }
    alloc.free(ms);
}

// ---- exported: states ----

/// Marks a down server ('d') up ('u'): 0. A server with no host ('n'): -1; one in state 't':
/// -2; one already up: -3 (each reported).
///
/// # Safety
/// `ctxt` and `mc` are live; `ms` is a server of `mc`.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_activate(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    ms: *mut memcache_server,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc, ms);
        let scope = Scope::enter(c"mcm_server_activate");
        let st = state::handle(mc);
        let rc = {
            let mut inner = st.lock();
            // SAFETY: ms was NULL-checked above and is a live server of mc (the documented
            // argument); mc's lock is held, so no other thread writes its active field.
            match unsafe { (*ms).active } {
                STATE_DOWN => {
                    inner.side(ms).slot.health.set_user_down(false);
                    // SAFETY: as above.
                    unsafe { (*ms).active = STATE_UP };
                    0
                }
                STATE_NO_HOST => {
                    report!(
                        ctxt,
                        MCM_ERR_ASSERT,
                        0,
                        0,
                        "activating a server with no host"
                    );
                    -1
                }
                STATE_TRY => {
                    report!(
                        ctxt,
                        MCM_ERR_ASSERT,
                        MCM_ERR_LVL_INFO,
                        0,
                        "server is not down"
                    );
                    -2
                }
                _ => {
                    report!(
                        ctxt,
                        MCM_ERR_ASSERT,
                        MCM_ERR_LVL_INFO,
                        0,
                        "server already up"
                    );
                    -3
                }
            }
        };
        scope.deliver(ctxt).ret(rc)
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_activate(mc: *mut memcache, ms: *mut memcache_server) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_activate(global(), mc, ms) }
}

/// Activates every down server of the handle; returns 0.
///
/// # Safety
/// `ctxt` and `mc` are live.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_activate_all(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; ctxt, mc);
        let st = state::handle(mc);
        let mut inner = st.lock();
        // SAFETY: mc was NULL-checked above and is live; its lock is held, so the server array does
        // not change during the walk.
        for &ms in unsafe { server_slice(mc) } {
            // SAFETY: a live server of the handle.
            if unsafe { (*ms).active } == STATE_DOWN {
                inner.side(ms).slot.health.set_user_down(false);
                // SAFETY: as above.
                unsafe { (*ms).active = STATE_UP };
            }
        }
        0
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_activate_all(mc: *mut memcache) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_activate_all(global(), mc) }
}

/// Marks a server down ('d') and disconnects it. It is not retried automatically (D8) until
/// mc_server_activate(); a server with an open connection goes back to 't' as in 1.4.
///
/// # Safety
/// `mc` is live; `ms` is a server of `mc`.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_deactivate(
    _ctxt: *mut memcache_ctxt,
    mc: *mut memcache,
    ms: *mut memcache_server,
) {
    ffi_body!((), {
        check_null!((); mc, ms);
        let st = state::handle(mc);
        let mut inner = st.lock();
        let side = inner.side(ms);
        // SAFETY: ms was NULL-checked above and is a live server of mc (the documented argument);
        // mc's lock is held, so no other thread writes its active field.
        unsafe {
            if matches!((*ms).active, STATE_UP | STATE_TRY) {
                (*ms).active = STATE_DOWN;
            }
        }
        side.slot.health.set_user_down(true);
        close(side);
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_deactivate(mc: *mut memcache, ms: *mut memcache_server) {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_deactivate(global(), mc, ms) }
}

/// Closes the server's connection if open (it goes back to 't'); the next operation
/// reconnects.
///
/// # Safety
/// `ms` is NULL or a live server.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_disconnect(
    _ctxt: *const memcache_ctxt,
    ms: *mut memcache_server,
) {
    ffi_body!((), {
        check_null!((); ms);
        if let Some(mc) = state::owner(ms) {
            let st = state::handle(mc);
            let mut inner = st.lock();
            close(inner.side(ms));
        }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_disconnect(ms: *mut memcache_server) {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_disconnect(global(), ms) }
}

/// Disconnects every server of the handle (down servers stay down).
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_disconnect_all(
    _ctxt: *const memcache_ctxt,
    mc: *const memcache,
) {
    ffi_body!((), {
        check_null!((); mc);
        let st = state::handle(mc);
        let mut inner = st.lock();
        inner.servers.iter_mut().for_each(close);
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_disconnect_all(mc: *const memcache) {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_disconnect_all(global(), mc) }
}

/// Sets the server's I/O timeout (`usec` is microseconds) and applies it to an open socket.
/// 1 on success (also for a server not connected: applied at connect, D1); 0 if the socket
/// refuses it.
///
/// # Safety
/// `ms` is NULL or a live server.
#[no_mangle]
pub unsafe extern "C" fn mcm_server_timeout(
    ctxt: *const memcache_ctxt,
    ms: *mut memcache_server,
    sec: c_int,
    usec: c_int,
) -> c_int {
    ffi_body!(0, {
        check_null!(0; ms);
        let scope = Scope::enter(c"mcm_server_timeout");
        // Another thread's call on the owning handle reads tv when it connects, under the
        // handle's lock: write it under that lock too.
        let st = state::owner(ms).map(state::handle);
        let mut inner = st.as_ref().map(|st| st.lock());
        // SAFETY: ms was NULL-checked above and is a live server (the documented argument); the
        // owning handle's lock, if it has one, is held, so no connect reads tv meanwhile.
        unsafe {
            (*ms).tv = timeval {
                tv_sec: sec.into(),
                tv_usec: usec.into(),
            }
        };
        let mut rc = 1;
        if let Some(inner) = inner.as_mut() {
            let side = inner.side(ms);
            if let Some(c) = side.slot.conn_mut() {
                // SAFETY: ms is live.
                if let Err(e) = c.set_timeout(timeout_of(unsafe { &(*ms).tv })) {
                    report!(ctxt, MCM_ERR_SYS_SETSOCKOPT, 0, conn::errno_of(&e), "");
                    rc = 0;
                }
            }
        }
        drop(inner);
        scope.deliver(ctxt).ret(rc)
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_server_timeout(
    ms: *mut memcache_server,
    sec: c_int,
    usec: c_int,
) -> c_int {
    // SAFETY: forwarded contract.
    unsafe { mcm_server_timeout(global(), ms, sec, usec) }
}
