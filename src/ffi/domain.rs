//! Handles attached to a shared server list (a domain): `mc_new2`, `mc_new_private`, and the
//! check every operation makes for a newer list. The check (the registry's `Follower`) is one
//! atomic load of the segment's published version and a read of the coarse clock, with a look at
//! the segment's name once a second for a segment removed or replaced; only when there is a new
//! list does the handle rebuild `mc->servers`, `mc->num_servers` and `mc->server_list`, keeping
//! the structures (and so the connections) of servers that stay.

use std::ffi::CStr;

use libc::c_char;

use super::context::{global, Alloc};
use super::error::{report, Scope};
use super::handle::new_plain;
use super::server::{free_server, new_server};
use super::state::{self, cstr_lossy, server_slice, DomainLink, HandleInner, HandleState};
use super::types::*;
use crate::address::ServerAddr;
use crate::conn::Security;
use crate::domain_security;
use crate::hash::Distribution;
use crate::registry::{DomainList, DomainName, Notice};

/// The name private handles use: a per-handle list, exactly the 1.4 behaviour.
const PRIVATE: &str = "private";

/// The domain `mc_new()` uses: `$MEMCACHE_DOMAIN`, else `default`.
fn default_domain() -> String {
    std::env::var("MEMCACHE_DOMAIN").unwrap_or_else(|_| "default".to_string())
}

/// Creates a handle attached to `domain` ("private" for a per-handle list).
///
/// # Safety
/// `ctxt` is NULL (libc allocator) or live.
unsafe fn new_attached(
    ctxt: *mut memcache_ctxt,
    domain: &str,
    legacy: bool,
    funcname: &'static CStr,
) -> *mut memcache {
    let report_ctxt = if ctxt.is_null() { global() } else { ctxt };
    let scope = Scope::enter(funcname);
    let link = if domain == PRIVATE {
        None
    } else {
        match DomainName::parse(domain) {
            Ok(name) => Some(DomainLink::new(name, legacy, ctxt)),
            Err(e) => {
                report!(
                    report_ctxt,
                    MCM_ERR_MC_SERV_LIST,
                    MCM_ERR_LVL_ERR,
                    0,
                    format!("domain {domain:?}: {e}")
                );
                scope.deliver(report_ctxt);
                return std::ptr::null_mut();
            }
        }
    };
    // SAFETY: ctxt is NULL or live, as new_plain() needs: the mcm_new*() callers pass the
    // context the C caller gave (NULL or live, their documented argument).
    let mc = unsafe { new_plain(ctxt) };
    if !mc.is_null() {
        if let Some(link) = link {
            let st = state::handle(mc);
            st.set_distribution(Distribution::KetamaMd5);
            let mut inner = st.lock();
            inner.domain = Some(link);
            // SAFETY: mc is a fresh live handle and inner its locked state.
            unsafe { sync(report_ctxt, mc, &st, &mut inner) };
        }
    }
    scope.deliver(report_ctxt);
    mc
}

/// A handle using the server list of `domain`, kept in shared memory and edited with
/// mcadmin(8); "private" gives a per-handle list (the 1.4 behaviour). A domain with no segment
/// yet gives a handle with no servers that picks the list up once the domain is created.
/// NULL for a name that is not 1-64 bytes of `[A-Za-z0-9_.-]` (reported) or allocation
/// failure. Caller owns the handle; release it with mc_free().
///
/// # Safety
/// `ctxt` is NULL or live; `domain` is NULL (the `mc_new()` domain) or a C string.
#[no_mangle]
pub unsafe extern "C" fn mcm_new2(
    ctxt: *mut memcache_ctxt,
    domain: *const c_char,
) -> *mut memcache {
    ffi_body!(std::ptr::null_mut(), {
        let name = if domain.is_null() {
            default_domain()
        } else {
            // SAFETY: domain is non-NULL (tested just above) and a C string, the documented
            // argument.
            unsafe { cstr_lossy(domain) }
        };
        // SAFETY: ctxt is NULL or the live context the C caller passes, as new_attached() needs.
        unsafe { new_attached(ctxt, &name, false, c"mcm_new2") }
    })
}

#[no_mangle]
pub unsafe extern "C" fn mc_new2(domain: *const c_char) -> *mut memcache {
    // SAFETY: forwarded contract.
    unsafe { mcm_new2(global(), domain) }
}

/// A handle with its own server list, exactly as 1.4's mc_new() behaved.
///
/// # Safety
/// `ctxt` is NULL or live.
#[no_mangle]
pub unsafe extern "C" fn mcm_new_private(ctxt: *mut memcache_ctxt) -> *mut memcache {
    ffi_body!(std::ptr::null_mut(), {
        // SAFETY: forwarded contract.
        unsafe { new_attached(ctxt, PRIVATE, false, c"mcm_new_private") }
    })
}

#[no_mangle]
pub extern "C" fn mc_new_private() -> *mut memcache {
    // SAFETY: the global context is live.
    unsafe { mcm_new_private(global()) }
}

/// A new handle with the 1.4 default timeout of 2 s + 600 µs, attached to the domain named by
/// `$MEMCACHE_DOMAIN` (else `default`) until the program adds a server itself, which makes the
/// list private exactly as in 1.4. Caller owns it; release it with mc_free(). NULL if
/// allocation fails.
///
/// # Safety
/// `ctxt` is NULL (libc allocator) or a live context.
#[no_mangle]
pub unsafe extern "C" fn mcm_new(ctxt: *mut memcache_ctxt) -> *mut memcache {
    // SAFETY: forwarded contract.
    ffi_body!(std::ptr::null_mut(), {
        unsafe { new_attached(ctxt, &default_domain(), true, c"mcm_new") }
    })
}

#[no_mangle]
pub extern "C" fn mc_new() -> *mut memcache {
    // SAFETY: the global context is live.
    unsafe { mcm_new(global()) }
}

/// Before an explicit add: a legacy handle detaches (its domain servers are dropped and it
/// becomes private, crc32-modulo); a handle of a shared domain refuses. Returns false to
/// refuse (reported).
///
/// # Safety
/// `ctxt` and `mc` are live; `inner` is `mc`'s locked state.
pub unsafe fn before_explicit_add(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    inner: &mut HandleInner,
) -> bool {
    let Some(link) = &inner.domain else {
        return true;
    };
    if !link.legacy {
        let msg = format!(
            "the server list of domain {} belongs to mcadmin(8)",
            link.name
        );
        report!(ctxt, MCM_ERR_MC_SERV_LIST, MCM_ERR_LVL_ERR, 0, msg);
        return false;
    }
    let owner = link.owner;
    inner.domain = None;
    if !inner.distribution_explicit {
        st.set_distribution(Distribution::Crc32Modulo);
    }
    if !inner.replicas_explicit {
        inner.replicas = 1;
    }
    // SAFETY: the only caller, add3(), passes the ctxt and mc mcm_server_add3() NULL-checked
    // and mc's locked state; owner is the handle's creating context, NULL or live (a context
    // may not be used after mcMemFreeCtxt(), so it outlives its handles). Drops every
    // domain-provided server.
    unsafe { replace_servers(ctxt, owner, mc, st, inner, &[]) };
    true
}

/// The per-operation check ([`Follower::poll`]): one atomic load and a read of the coarse clock
/// in the common case. A new list (a newer version, or the list of a segment that replaced the
/// old one) is applied; each event (a switch to a new segment, a removed segment, a list or
/// segment refused) is reported once as MCM_ERR_MC_SERV_LIST, and the last good list is kept
/// whenever there is no usable new one.
///
/// # Safety
/// `ctxt` and `mc` are live; `inner` is `mc`'s locked state.
#[inline]
pub unsafe fn sync(
    ctxt: *const memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    inner: &mut HandleInner,
) {
    let Some(link) = inner.domain.as_mut() else {
        return;
    };
    let Some(update) = link.follower.poll() else {
        return;
    };
    let owner = link.owner;
    // SAFETY: ctxt, mc and inner come from this function's callers (begin() under mc's lock,
    // new_attached() with a fresh handle); owner is the handle's own creating context.
    unsafe { take_update(ctxt, owner, mc, st, inner, update) };
}

/// Applies and reports what the follower found: off the fast path.
///
/// # Safety
/// As sync(); `owner` is the context the handle was created with (NULL or live).
#[cold]
#[inline(never)]
unsafe fn take_update(
    ctxt: *const memcache_ctxt,
    owner: *mut memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    inner: &mut HandleInner,
    update: crate::registry::Update,
) {
    if let Some(list) = update.list {
        // SAFETY: as sync() above: ctxt and mc are live, inner is mc's locked state, owner NULL or
        // live.
        unsafe { apply(ctxt, owner, mc, st, inner, list) };
    }
    if let Some(notice) = update.notice {
        let level = match notice {
            // News, not a failure: the handle follows the domain as it should.
            Notice::Switched { .. } => MCM_ERR_LVL_NOTICE,
            // The code's own severity (WARN), as for every list that cannot be used.
            _ => 0,
        };
        report!(ctxt, MCM_ERR_MC_SERV_LIST, level, 0, notice.to_string());
    }
}

/// # Safety
/// As sync().
unsafe fn apply(
    ctxt: *const memcache_ctxt,
    owner: *mut memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    inner: &mut HandleInner,
    list: DomainList,
) {
    if !inner.distribution_explicit {
        st.set_distribution(list.distribution);
    }
    // SAFETY: as sync() above: ctxt and mc are live, inner is mc's locked state, owner NULL or
    // live.
    unsafe { replace_servers(ctxt, owner, mc, st, inner, &list.servers) };
    if !inner.replicas_explicit {
        inner.replicas = list.replicas.max(1);
    }
    // SAFETY: the array was just made consistent under the lock.
    unsafe { st.rebuild_selector(mc, inner) };
    if !inner.security_explicit {
        // SAFETY: ctxt is live, as in sync() above; only reports are sent to it.
        unsafe { follow_security(ctxt, inner) };
    }
}

/// Reads the domain's TLS and login settings again (`crate::domain_security`) with each new list,
/// which is how `mcadmin config` reaches running programs: it bumps the version. Settings that
/// changed (or files they name whose contents changed) are applied and the open connections
/// closed, so every later command runs over a connection made with them; unchanged ones keep
/// the connections and their TLS sessions. Settings that cannot be used (an untrusted file, a
/// credentials file others can read, a CA that cannot be read) are reported once per version
/// and not used: the handle keeps the settings it had.
///
/// # Safety
/// `ctxt` is live.
unsafe fn follow_security(ctxt: *const memcache_ctxt, inner: &mut HandleInner) {
    let Some(link) = inner.domain.as_mut() else {
        return;
    };
    let loaded = domain_security::read_from_env(&link.name)
        .and_then(|settings| settings.map(|s| s.load()).transpose());
    let next = match loaded {
        Ok(next) => next,
        Err(why) => {
            let msg = format!(
                "domain {}: {why}; the domain's TLS and login settings are not used",
                link.name
            );
            report!(ctxt, MCM_ERR_MC_SERV_LIST, MCM_ERR_LVL_ERR, 0, msg);
            return;
        }
    };
    let same = match (&link.security, &next) {
        (None, None) => true,
        (Some(now), Some(next)) => now.same_as(next),
        _ => false,
    };
    if same {
        return;
    }
    let security = next
        .as_ref()
        .map_or_else(Security::default, |l| l.security().clone());
    link.security = next;
    inner.install_security(security);
    inner.close_connections();
}

/// Makes the handle's servers exactly `wanted`, in that order, reusing the
/// structure of every server that stays so its connection survives. Structures and strings are
/// made and freed with `owner`'s allocator (the handle's context); reports go to `ctxt`.
///
/// # Safety
/// As sync(); `owner` is the context the handle was created with (NULL or live).
unsafe fn replace_servers(
    ctxt: *const memcache_ctxt,
    owner: *mut memcache_ctxt,
    mc: *mut memcache,
    st: &HandleState,
    inner: &mut HandleInner,
    wanted: &[ServerAddr],
) {
    let _ = st;
    // SAFETY: owner is NULL or the live context the handle was created with (see sync()); only
    // its allocator fields are read.
    let alloc = unsafe { Alloc::of(owner) };
    // SAFETY: as above.
    let mut old: Vec<Option<*mut memcache_server>> = unsafe { server_slice(mc) }
        .iter()
        .map(|&m| Some(m))
        .collect();
    // Allocate everything new first, so a failure leaves the old list intact.
    let array = alloc.block((wanted.len() + 1) * std::mem::size_of::<*mut memcache_server>())
        as *mut *mut memcache_server;
    if array.is_null() {
        report!(ctxt, MCM_ERR_MEM_MALLOC, 0, libc::ENOMEM, "server array");
        return;
    }
    let mut next: Vec<*mut memcache_server> = Vec::with_capacity(wanted.len());
    for server in wanted {
        // The 1.4 structure keeps the port as text, "0" for a socket path.
        let (host, port) = (&server.host, server.port.to_string());
        let kept = old.iter_mut().find(|m| {
            m.is_some_and(|ms| {
                // SAFETY: the handle's live servers.
                let (h, p) = unsafe { (cstr_lossy((*ms).hostname), cstr_lossy((*ms).port)) };
                &h == host && p == port
            })
        });
        let ms = match kept.and_then(Option::take) {
            Some(ms) => ms,
            None => {
                // Not mcm_server_new(): that delivers its report at once, and a handler must
                // not run while the handle is locked; a failure is queued below instead.
                let ms = new_server(&alloc);
                let (h, p) = (
                    alloc.cstring(host.as_bytes()),
                    alloc.cstring(port.as_bytes()),
                );
                if ms.is_null() || h.is_null() || p.is_null() {
                    alloc.free(h);
                    alloc.free(p);
                    alloc.free(ms);
                    report!(ctxt, MCM_ERR_MEM_MALLOC, 0, libc::ENOMEM, "domain server");
                    continue;
                }
                // SAFETY: ms is fresh; mc is live.
                unsafe {
                    (*ms).hostname = h;
                    (*ms).port = p;
                    (*ms).tv = (*mc).tv;
                }
                state::set_owner(ms, mc);
                ms
            }
        };
        let side = inner.side(ms);
        side.weight = server.weight.max(1);
        if side.tls != server.tls {
            // Switched to or from TLS: the open connection speaks the other way.
            side.tls = server.tls;
            side.slot.close();
            // SAFETY: ms is live.
            unsafe { (*ms).fd = -1 };
        }
        next.push(ms);
    }
    // Servers that left: their connections close, their structures are freed.
    for ms in old.into_iter().flatten() {
        inner.servers.retain(|s| s.ms != ms);
        state::forget_owner(ms);
        // SAFETY: no longer referenced by the handle.
        unsafe { free_server(&alloc, ms) };
    }
    // SAFETY: mc is live; array has room for every server and the NULL.
    unsafe {
        let m = &mut *mc;
        for (i, &ms) in next.iter().enumerate() {
            *array.add(i) = ms;
        }
        *array.add(next.len()) = std::ptr::null_mut();
        alloc.free(m.servers);
        m.servers = array;
        m.num_servers = next.len() as u32;
        m.server_list.tqh_first = std::ptr::null_mut();
        m.server_list.tqh_last = &raw mut m.server_list.tqh_first;
        for &ms in &next {
            (*ms).entries.tqe_next = std::ptr::null_mut();
            (*ms).entries.tqe_prev = m.server_list.tqh_last;
            *m.server_list.tqh_last = ms;
            m.server_list.tqh_last = &raw mut (*ms).entries.tqe_next;
        }
    }
}
