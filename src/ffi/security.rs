//! Beyond 1.4: TLS and memcached's text-protocol login for a handle's connections. Each call
//! applies from the next connect on, and closes the handle's open connections so that every
//! later command runs over a connection made with the new settings. A handle whose program made
//! one of these calls no longer takes the TLS and login settings of its domain (`mcadmin
//! config`): the program's own choice wins, whole. mc_tls_resumption() is the exception: it
//! says how to reconnect, not what to connect with, so it keeps the open connections and
//! applies to the domain's settings as well as to the program's.

use std::ffi::CStr;
use std::path::PathBuf;

use libc::{c_char, c_int};

use super::context::global;
use super::error::{report, Scope};
use super::state::{self, cstr_lossy, HandleInner};
use super::types::*;
use crate::conn::{Credentials, Security, TlsOptions};

/// Runs `change` on the locked handle under a report scope named `funcname`: 0 when it is
/// accepted (the open connections are then closed), -1 with one report when it is not.
///
/// # Safety
/// `mc` is a live handle.
unsafe fn change(
    mc: *mut memcache,
    funcname: &'static CStr,
    change: impl FnOnce(&mut HandleInner) -> Result<(), String>,
) -> c_int {
    let ctxt = global();
    let scope = Scope::enter(funcname);
    let st = state::handle(mc);
    let rc = {
        let mut inner = st.lock();
        // The first call of the program starts from nothing, not from the domain's settings.
        let from_domain =
            !inner.security_explicit && inner.domain.as_ref().is_some_and(|d| d.security.is_some());
        let domain_settings = from_domain.then(|| inner.install_security(Security::default()));
        match change(&mut inner) {
            Ok(()) => {
                inner.security_explicit = true;
                if let Some(link) = &mut inner.domain {
                    link.security = None;
                }
                inner.close_connections();
                0
            }
            Err(why) => {
                if let Some(kept) = domain_settings {
                    inner.security = kept;
                }
                report!(ctxt, MCM_ERR_ASSERT, MCM_ERR_LVL_ERR, 0, why);
                -1
            }
        }
    };
    st.set_last_error(if rc != 0 { scope.last() } else { None });
    scope.deliver(ctxt).ret(rc)
}

/// A C string as a path, None for NULL or "".
///
/// # Safety
/// `s` is NULL or a NUL-terminated string.
unsafe fn path_of(s: *const c_char) -> Option<PathBuf> {
    // SAFETY: s is NULL, which cstr_lossy() reads as "", or NUL-terminated: every caller
    // passes a path argument memcache.h documents as NULL or a C string.
    let text = unsafe { cstr_lossy(s) };
    (!text.is_empty()).then(|| PathBuf::from(text))
}

/// Trusts the CA certificates in the PEM file `path` for the handle's TLS servers instead of
/// the system's (NULL: the system's again). The file is read now: 0, or -1 (reported) when it
/// holds no usable certificate. Beyond 1.4.
///
/// # Safety
/// `mc` is NULL or a live handle; `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mc_tls_ca(mc: *mut memcache, path: *const c_char) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        // SAFETY: path is NULL or a C string (the documented argument), as path_of() needs.
        let ca_file = unsafe { path_of(path) };
        // SAFETY: mc is live.
        unsafe {
            change(mc, c"mc_tls_ca", |inner| {
                let options = TlsOptions {
                    ca_file,
                    ..inner.security.tls_options().clone()
                };
                inner.security.set_tls(options).map_err(|e| e.to_string())
            })
        }
    })
}

/// Presents the certificate chain in the PEM file `cert`, with its private key from `key` (NULL:
/// the same file), to TLS servers that ask for one (mutual TLS). NULL `cert`: none. 0, or -1
/// (reported) when the files cannot be read or the key does not fit. Beyond 1.4.
///
/// # Safety
/// `mc` is NULL or a live handle; `cert` and `key` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn mc_tls_cert(
    mc: *mut memcache,
    cert: *const c_char,
    key: *const c_char,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        // SAFETY: cert and key are NULL or C strings (the documented arguments), as path_of()
        // needs.
        let (cert_file, key_file) = unsafe { (path_of(cert), path_of(key)) };
        // SAFETY: mc is live.
        unsafe {
            change(mc, c"mc_tls_cert", |inner| {
                let options = TlsOptions {
                    key_file: key_file.filter(|_| cert_file.is_some()),
                    cert_file,
                    ..inner.security.tls_options().clone()
                };
                inner.security.set_tls(options).map_err(|e| e.to_string())
            })
        }
    })
}

/// `on` != 0: accepts any certificate from the handle's TLS servers, for any name (the
/// handshake's signatures are still checked). Anyone on the path can then pose as the server:
/// for tests and migrations only, and reported (MCM_ERR_LVL_WARN) each time it is turned on.
/// 0, or -1 for a NULL handle. Beyond 1.4.
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mc_tls_insecure(mc: *mut memcache, on: c_int) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        // SAFETY: mc is live.
        unsafe {
            change(mc, c"mc_tls_insecure", |inner| {
                let options = TlsOptions {
                    insecure: on != 0,
                    ..inner.security.tls_options().clone()
                };
                inner.security.set_tls(options).map_err(|e| e.to_string())?;
                if on != 0 {
                    report!(
                        global(),
                        MCM_ERR_NET_CONNECT,
                        MCM_ERR_LVL_WARN,
                        0,
                        "TLS certificate checks are off for this handle: anyone on the path can pose as its servers"
                    );
                }
                Ok(())
            })
        }
    })
}

/// `on` != 0: every server of the handle is spoken to over TLS, not only those added as
/// `tls://HOST:PORT`; 0: only those. 0, or -1 for a NULL handle. Beyond 1.4.
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mc_tls(mc: *mut memcache, on: c_int) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        // SAFETY: mc is live.
        unsafe {
            change(mc, c"mc_tls", |inner| {
                inner.security.set_all_tls(on != 0);
                Ok(())
            })
        }
    })
}

/// `on` == 0: every new TLS connection of the handle makes a full handshake and the handle
/// keeps no session ticket, for sites whose policy wants every connect fully authenticated
/// (and to measure what resumption saves); != 0, the default: reconnects resume the server's
/// session. Open connections stay; on a domain handle the domain's TLS and login settings stay
/// in force (the other calls here replace them). 0, or -1 for a NULL handle. Beyond 1.4.
///
/// # Safety
/// `mc` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn mc_tls_resumption(mc: *mut memcache, on: c_int) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        let scope = Scope::enter(c"mc_tls_resumption");
        let st = state::handle(mc);
        {
            let mut inner = st.lock();
            inner.resumption = on != 0;
            inner.security.set_resumption(on != 0);
        }
        st.set_last_error(None);
        scope.deliver(global()).ret(0)
    })
}

/// Logs every new connection in as `user` with `password` (memcached -Y, text-protocol
/// authentication) before its first command; NULL `user`: no login. The password is sent as
/// given: use TLS where the path is not trusted. 0, or -1 (reported) for a user or password
/// with a space or a control byte. Beyond 1.4.
///
/// # Safety
/// `mc` is NULL or a live handle; `user` and `password` are NULL or NUL-terminated strings.
#[no_mangle]
pub unsafe extern "C" fn mc_auth(
    mc: *mut memcache,
    user: *const c_char,
    password: *const c_char,
) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        let auth = if user.is_null() {
            None
        } else {
            // SAFETY: user was tested non-NULL above and is a C string; password is NULL (read
            // as "" by cstr_lossy()) or a C string, the documented arguments.
            let (user, password) = unsafe { (cstr_lossy(user), cstr_lossy(password)) };
            Some(Credentials::new(&user, &password))
        };
        // SAFETY: mc is live.
        unsafe {
            change(mc, c"mc_auth", |inner| {
                inner.security.set_auth(auth.transpose()?);
                Ok(())
            })
        }
    })
}

/// mc_auth() with `user:password` read from the first line of the file `path` (memcached's
/// own -Y file format). The file must be a regular file owned by this process's user that
/// neither group nor others can read or write; otherwise it is refused (-1, reported with the
/// reason). NULL: no login. Beyond 1.4.
///
/// # Safety
/// `mc` is NULL or a live handle; `path` is NULL or a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn mc_auth_file(mc: *mut memcache, path: *const c_char) -> c_int {
    ffi_body!(-1, {
        check_null!(-1; mc);
        // SAFETY: path is NULL or a C string (the documented argument), as path_of() needs.
        let auth = unsafe { path_of(path) }.map(|p| Credentials::from_file(&p));
        // SAFETY: mc is live.
        unsafe {
            change(mc, c"mc_auth_file", |inner| {
                inner.security.set_auth(auth.transpose()?);
                Ok(())
            })
        }
    })
}
