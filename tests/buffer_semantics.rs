//! Runs `capi-tests/buffer_semantics.c`, the buffer API's observable 1.4 semantics (spec §4.4),
//! against the installed library (`LIBMEMCACHE_PREFIX`, set by `make test`). No memcached is
//! needed. The program must exit with status 0 and leave stdout empty (spec D10).

mod support;

use std::time::Duration;

use support::*;

#[test]
fn buffer_semantics() {
    let bin = compile_capi("buffer_semantics", &[]);
    run_c(&bin, &[]).assert_success().assert_stdout_empty();
}

/// The same program under valgrind: shrinking, truncating and lengthening buffers must stay
/// inside their blocks, and every block is released.
#[test]
fn buffer_semantics_under_valgrind() {
    let bin = compile_capi("buffer_semantics", &[]);
    let valgrind = [
        "valgrind",
        "--error-exitcode=99",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite",
        "--show-leak-kinds=definite",
        "--num-callers=30",
    ];
    spawn_c_with(&valgrind, &bin, &[], Duration::from_secs(180))
        .wait()
        .assert_success()
        .assert_stdout_empty();
}
