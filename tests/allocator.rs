//! The allocator contract (spec §5.2) proved from C: `capi-tests/allocator.c` installs strict
//! allocators that abort on realloc(NULL), free(NULL) or a pointer they never returned, runs every
//! function group on the global context and on a private one, and checks that nothing allocated
//! through a context is left behind. Each run gets three memcached servers, one on a unix socket,
//! a dead loopback port, and a shared-memory namespace of its own for the domain that `mcadmin`
//! changes while the program follows it.

mod support;

use support::*;

/// Starts the servers and the namespace (`tag` names it), then runs `allocator` with
/// `ALLOC_ORDER=order`; it must exit 0 with stdout empty.
fn run_allocator(order: &str, tag: &str) {
    let (a, b, c) = (Memcached::start(), Memcached::start(), Memcached::start());
    let dir = temp_dir(&format!("allocator-{tag}"));
    let unix = Memcached::start_unix(&dir.join("mc.sock"));
    let dead = DeadPort::new();
    let shm = ShmPrefix::new(tag);
    let domain = "alloc".to_string();
    let (shm_name, shm_value) = shm.env();
    let env = vec![
        ("MC_PORT", a.port().to_string()),
        ("MC_PORT2", b.port().to_string()),
        ("MC_PORT3", c.port().to_string()),
        ("MC_SOCK", unix.socket_path().to_string_lossy().into_owned()),
        ("MC_DEAD_PORT", dead.port().to_string()),
        ("MCADMIN", env!("CARGO_BIN_EXE_mcadmin").to_string()),
        ("MC_DOMAIN", domain.clone()),
        ("MEMCACHE_DOMAIN", domain),
        ("ALLOC_ORDER", order.to_string()),
        (shm_name, shm_value),
    ];
    let bin = compile_capi("allocator", &["-lpthread"]);
    let out = spawn_c_with(&[], &bin, &env, RUN_TIMEOUT).wait();
    // A program aborted by its strict allocator shows the broken rule as the last stderr lines.
    out.assert_success().assert_stdout_empty();
}

/// mcMemSetup() first, the mc_* forms on the global context, then mcm_* on a private context.
#[test]
fn allocator_global_then_private() {
    run_allocator("global-first", "allocg");
}

/// A private context without a mallocAtomic first (strings then come from its malloc), then the
/// global context with the strict allocator installed after the library was already in use.
#[test]
fn allocator_private_then_global() {
    run_allocator("private-first", "allocp");
}

/// Every allocation of a private context refused in turn (the 1st, the 2nd, ...): each failure
/// path must free what it already allocated.
#[test]
fn allocator_failures() {
    run_allocator("failures", "allocf");
}
