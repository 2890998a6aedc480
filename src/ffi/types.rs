//! The structures, callback types and constants of memcache.h 1.4.0.rc2. Declaration order is the
//! ABI: every size and offset is asserted at compile time against spec §3 (x86-64).
#![allow(non_camel_case_types, non_snake_case)]

use libc::{addrinfo, c_char, c_int, c_void, fd_set, pid_t, size_t, time_t, timeval};

// ---- callback types (spec §2.5) ----

pub type mcFreeFunc = Option<unsafe extern "C" fn(mem: *mut c_void)>;
pub type mcMallocFunc = Option<unsafe extern "C" fn(size: size_t) -> *mut c_void>;
pub type mcReallocFunc =
    Option<unsafe extern "C" fn(mem: *mut c_void, size: size_t) -> *mut c_void>;
/// `(const struct memcache_ctxt *, struct memcache_err_ctxt *)` behind `void` pointers.
pub type mcErrFunc = Option<unsafe extern "C" fn(ctxt: *const c_void, ectxt: *mut c_void) -> i32>;
pub type mcKeyValidFunc =
    Option<unsafe extern "C" fn(ctxt: *const c_void, key: *mut c_char, len: size_t) -> i32>;
pub type mcHashKeyFunc = Option<
    unsafe extern "C" fn(
        ctxt: *const c_void,
        mc: *const c_void,
        key: *const c_char,
        len: size_t,
    ) -> u32,
>;
/// Returns a `struct memcache_server *` or NULL.
pub type mcServerFindFunc =
    Option<unsafe extern "C" fn(ctxt: *const c_void, mc: *mut c_void, hash: u32) -> *mut c_void>;
pub type mcResCallback = Option<
    unsafe extern "C" fn(ctxt: *const memcache_ctxt, res: *mut memcache_res, misc: *mut c_void),
>;

// ---- tail queues: `TAILQ_HEAD(name, type)` and `TAILQ_ENTRY(type)` spelled out ----

#[repr(C)]
pub struct memcache_buf_entry {
    pub tqe_next: *mut memcache_buf,
    pub tqe_prev: *mut *mut memcache_buf,
}

#[repr(C)]
pub struct memcache_server_entry {
    pub tqe_next: *mut memcache_server,
    pub tqe_prev: *mut *mut memcache_server,
}

#[repr(C)]
pub struct memcache_res_entry {
    pub tqe_next: *mut memcache_res,
    pub tqe_prev: *mut *mut memcache_res,
}

#[repr(C)]
pub struct memcache_res_cb_entry {
    pub tqe_next: *mut memcache_res_cb,
    pub tqe_prev: *mut *mut memcache_res_cb,
}

#[repr(C)]
pub struct memcache_server_list {
    pub tqh_first: *mut memcache_server,
    pub tqh_last: *mut *mut memcache_server,
}

#[repr(C)]
pub struct memcache_res_list {
    pub tqh_first: *mut memcache_res,
    pub tqh_last: *mut *mut memcache_res,
}

#[repr(C)]
pub struct memcache_res_cb_list {
    pub tqh_first: *mut memcache_res_cb,
    pub tqh_last: *mut *mut memcache_res_cb,
}

// ---- the structures (spec §3) ----

/// A growable, NUL-terminated byte buffer (memcache/_buffer.h).
#[repr(C)]
pub struct memcache_buf {
    pub ptr: *mut c_char,
    pub flags: c_char,
    pub len: size_t,
    pub size: size_t,
    pub off: size_t,
    pub next: memcache_buf_entry,
}

/// What an error handler is shown. Cleared before every report.
#[repr(C)]
pub struct memcache_err_ctxt {
    pub misc: *mut c_void,
    pub funcname: *const c_char,
    pub lineno: u32,
    pub errnum: u32,
    pub errcode: u32,
    pub severity: c_char,
    /// 'y' continue (the default for every severity), 'n' exit(sysexit), 'a' abort().
    pub cont: c_char,
    pub retcode: i32,
    pub sysexit: c_int,
    pub errstr: *const c_char,
    pub errmsg: *const c_char,
    pub errlen: size_t,
    pub ctxt: *const c_void,
}

/// Allocators, hooks and error state shared by the handles that use it.
#[repr(C)]
pub struct memcache_ctxt {
    pub mcFree: mcFreeFunc,
    pub mcMalloc: mcMallocFunc,
    pub mcMallocAtomic: mcMallocFunc,
    pub mcRealloc: mcReallocFunc,
    pub mcErr: mcErrFunc,
    pub mcKeyValid: mcKeyValidFunc,
    pub mcHashKey: mcHashKeyFunc,
    pub mcServerFind: mcServerFindFunc,
    pub errnum: u32,
    pub _rbuf: *mut memcache_buf,
    pub _wbuf: *mut memcache_buf,
    pub _last_hash: u32,
    pub ectxt: *mut memcache_err_ctxt,
    /// The error filter mask; its C name is the `MCM_ERR_MASK` macro.
    pub md5fc9f4e2249ad88de0081136fef04defa: u32,
}

/// One memcached server of a handle (the 256-byte layout, `fds` always present).
#[repr(C)]
pub struct memcache_server {
    pub misc: *mut c_void,
    pub hostname: *mut c_char,
    pub port: *mut c_char,
    pub fd: c_int,
    pub tv: timeval,
    /// 'd' down, 'n' no host, 't' try, 'u' up.
    pub active: c_char,
    pub hostinfo: *mut addrinfo,
    pub num_addrs: u32,
    pub fds: fd_set,
    pub rbuf: *mut memcache_buf,
    pub wbuf: *mut memcache_buf,
    pub _last_hash: u32,
    pub soff: size_t,
    pub startoff: size_t,
    pub entries: memcache_server_entry,
}

#[repr(C)]
pub struct memcache_server_stats {
    pub pid: pid_t,
    pub uptime: time_t,
    pub time: time_t,
    pub version: *mut c_char,
    pub rusage_user: timeval,
    pub rusage_system: timeval,
    pub curr_items: u32,
    pub total_items: u64,
    pub bytes: u64,
    pub curr_connections: u32,
    pub total_connections: u64,
    pub connection_structures: u32,
    pub cmd_get: u64,
    pub cmd_set: u64,
    pub get_hits: u64,
    pub get_misses: u64,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub limit_maxbytes: u64,
}

/// A handle: a list of servers and the default timeout for servers added later.
#[repr(C)]
pub struct memcache {
    pub misc: *mut c_void,
    pub tv: timeval,
    pub num_servers: u32,
    /// `num_servers` entries and a NULL, in the order servers were added; NULL before any add.
    pub servers: *mut *mut memcache_server,
    pub server_list: memcache_server_list,
}

/// One key of a request and, after `mc_get`, its value.
#[repr(C)]
pub struct memcache_res {
    pub misc: *mut c_void,
    pub key: *mut c_char,
    pub len: size_t,
    pub hash: u32,
    pub bytes: size_t,
    pub val: *mut c_void,
    pub size: size_t,
    pub entries: memcache_res_entry,
    pub flags: u16,
    pub _flags: c_char,
}

#[repr(C)]
pub struct memcache_req {
    pub misc: *mut c_void,
    pub query: memcache_res_list,
    pub cb: memcache_res_cb_list,
    pub num_keys: u16,
}

#[repr(C)]
pub struct memcache_res_cb {
    pub misc: *mut c_void,
    pub ctxt: *const memcache_ctxt,
    pub req: *mut memcache_req,
    pub res: *mut memcache_res,
    pub cb: mcResCallback,
    pub entries: memcache_res_cb_entry,
}

// ---- constants (spec §2.2, §6.2) ----

pub const MEMCACHE_VERNUM: u32 = 10400;
pub const MEMCACHE_RELDATE: u32 = 20060220;

pub const MCM_ERR_LVL_NONE: u32 = 0x00;
pub const MCM_ERR_LVL_INFO: u32 = 0x01;
pub const MCM_ERR_LVL_NOTICE: u32 = 0x02;
pub const MCM_ERR_LVL_WARN: u32 = 0x04;
pub const MCM_ERR_LVL_ERR: u32 = 0x08;
pub const MCM_ERR_LVL_FATAL: u32 = 0x10;

pub const MCM_ERR_NONE: u32 = 0;
pub const MCM_ERR_ASSERT: u32 = 1;
pub const MCM_ERR_LIB_SNPRINTF: u32 = 2;
pub const MCM_ERR_LIB_STRTOL: u32 = 3;
pub const MCM_ERR_LIB_STRTOLL: u32 = 4;
pub const MCM_ERR_MC_RECONN: u32 = 5;
pub const MCM_ERR_MC_SEND_CMD: u32 = 6;
pub const MCM_ERR_MC_SERV_LIST: u32 = 7;
pub const MCM_ERR_MC_STORE: u32 = 8;
pub const MCM_ERR_MC_VALID_SERVER: u32 = 9;
pub const MCM_ERR_MEM_MALLOC: u32 = 10;
pub const MCM_ERR_MEM_REALLOC: u32 = 11;
pub const MCM_ERR_NET_CONNECT: u32 = 12;
pub const MCM_ERR_NET_HOST: u32 = 13;
pub const MCM_ERR_PROTO: u32 = 14;
pub const MCM_ERR_SYS_CLOSE: u32 = 16;
pub const MCM_ERR_SYS_CONNECT: u32 = 17;
pub const MCM_ERR_SYS_FCNTL: u32 = 18;
pub const MCM_ERR_SYS_READ: u32 = 19;
pub const MCM_ERR_SYS_SELECT: u32 = 20;
pub const MCM_ERR_SYS_SETSOCKOPT: u32 = 21;
pub const MCM_ERR_SYS_SOCKET: u32 = 22;
pub const MCM_ERR_SYS_WRITEV: u32 = 23;
pub const MCM_ERR_TEST: u32 = 24;
pub const MCM_ERR_TIMEOUT: u32 = 25;
pub const MCM_ERR_TRACE: u32 = 26;
pub const MCM_ERR_UNKNOWN_STAT: u32 = 27;

pub const MCM_RES_FREE_ON_DELETE: u8 = 0x01;
pub const MCM_RES_NO_FREE_ON_DELETE: u8 = 0x02;
pub const MCM_RES_FOUND: u8 = 0x04;
pub const MCM_RES_ATTEMPTED: u8 = 0x08;
pub const MCM_RES_NEED_FREE_KEY: u8 = 0x10;

pub const ERR_FLAG: u32 = 0x1;
pub const WARN_FLAG: u32 = 0x2;
pub const NO_ERRNO_FLAG: u32 = 0x4;

// ---- beyond 1.4 (see the marked section of memcache.h) ----

/// Return values of the modern storage calls, beyond 1.4's 0 stored / 1 not stored.
pub const MC_EXISTS: i32 = 5;
pub const MC_NOT_FOUND: i32 = 6;
/// `mc_distribution()` values.
pub const MC_DIST_CRC32_MODULO: i32 = 0;
pub const MC_DIST_KETAMA_MD5: i32 = 1;

// ---- the ABI, checked at compile time ----

macro_rules! layout {
    ($t:ty, $size:expr $(, $field:ident @ $off:expr)*) => {
        const _: () = assert!(core::mem::size_of::<$t>() == $size);
        $(const _: () = assert!(core::mem::offset_of!($t, $field) == $off);)*
    };
}

layout!(memcache_buf, 56, ptr @ 0, flags @ 8, len @ 16, size @ 24, off @ 32, next @ 40);
layout!(memcache_err_ctxt, 72, misc @ 0, funcname @ 8, lineno @ 16, errnum @ 20, errcode @ 24,
    severity @ 28, cont @ 29, retcode @ 32, sysexit @ 36, errstr @ 40, errmsg @ 48, errlen @ 56,
    ctxt @ 64);
layout!(memcache_ctxt, 112, mcFree @ 0, mcMalloc @ 8, mcMallocAtomic @ 16, mcRealloc @ 24,
    mcErr @ 32, mcKeyValid @ 40, mcHashKey @ 48, mcServerFind @ 56, errnum @ 64, _rbuf @ 72,
    _wbuf @ 80, _last_hash @ 88, ectxt @ 96, md5fc9f4e2249ad88de0081136fef04defa @ 104);
layout!(memcache_server, 256, misc @ 0, hostname @ 8, port @ 16, fd @ 24, tv @ 32, active @ 48,
    hostinfo @ 56, num_addrs @ 64, fds @ 72, rbuf @ 200, wbuf @ 208, _last_hash @ 216, soff @ 224,
    startoff @ 232, entries @ 240);
layout!(memcache_server_stats, 168, pid @ 0, uptime @ 8, time @ 16, version @ 24,
    rusage_user @ 32, rusage_system @ 48, curr_items @ 64, total_items @ 72, bytes @ 80,
    curr_connections @ 88, total_connections @ 96, connection_structures @ 104, cmd_get @ 112,
    cmd_set @ 120, get_hits @ 128, get_misses @ 136, bytes_read @ 144, bytes_written @ 152,
    limit_maxbytes @ 160);
layout!(memcache, 56, misc @ 0, tv @ 8, num_servers @ 24, servers @ 32, server_list @ 40);
layout!(memcache_res, 80, misc @ 0, key @ 8, len @ 16, hash @ 24, bytes @ 32, val @ 40,
    size @ 48, entries @ 56, flags @ 72, _flags @ 74);
layout!(memcache_req, 48, misc @ 0, query @ 8, cb @ 24, num_keys @ 40);
layout!(memcache_res_cb, 56, misc @ 0, ctxt @ 8, req @ 16, res @ 24, cb @ 32, entries @ 40);

/// `memcache_server.active`: up, retry, down, no such host (1.4's states).
pub(crate) const STATE_UP: c_char = b'u' as c_char;
pub(crate) const STATE_TRY: c_char = b't' as c_char;
pub(crate) const STATE_DOWN: c_char = b'd' as c_char;
pub(crate) const STATE_NO_HOST: c_char = b'n' as c_char;
