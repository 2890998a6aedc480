//! Request encoding. Keys must already be valid ([`crate::key::check`]): nothing here escapes.

/// The storage commands; `Cas` carries the unique value from a `gets`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreCmd {
    Set,
    Add,
    Replace,
    Append,
    Prepend,
    Cas(u64),
}

impl StoreCmd {
    pub fn verb(self) -> &'static [u8] {
        match self {
            StoreCmd::Set => b"set",
            StoreCmd::Add => b"add",
            StoreCmd::Replace => b"replace",
            StoreCmd::Append => b"append",
            StoreCmd::Prepend => b"prepend",
            StoreCmd::Cas(_) => b"cas",
        }
    }
}

/// Appends the decimal digits of `n` without going through `fmt` (this is on every request).
fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

fn push_arg(out: &mut Vec<u8>, n: u64) {
    out.push(b' ');
    push_u64(out, n);
}

/// `<verb> <key> <flags> <exptime> <bytes>[ <cas>]\r\n<value>\r\n`. The expiry is printed as an
/// unsigned number, as 1.4 did (a negative `time_t` becomes a huge value).
pub fn encode_store(
    out: &mut Vec<u8>,
    cmd: StoreCmd,
    key: &[u8],
    flags: u32,
    exptime: u64,
    value: &[u8],
) {
    out.reserve(key.len() + value.len() + 64);
    encode_store_header(out, cmd, key, flags, exptime, value.len());
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The command line of a storage command alone, for sending a large value from where it is:
/// the caller sends `value` and `\r\n` after it.
pub fn encode_store_header(
    out: &mut Vec<u8>,
    cmd: StoreCmd,
    key: &[u8],
    flags: u32,
    exptime: u64,
    value_len: usize,
) {
    out.extend_from_slice(cmd.verb());
    out.push(b' ');
    out.extend_from_slice(key);
    push_arg(out, flags as u64);
    push_arg(out, exptime);
    push_arg(out, value_len as u64);
    if let StoreCmd::Cas(unique) = cmd {
        push_arg(out, unique);
    }
    out.extend_from_slice(b"\r\n");
}

/// `get k1 k2 ...\r\n` (or `gets` when the caller wants cas values).
pub fn encode_get<'k>(out: &mut Vec<u8>, keys: impl IntoIterator<Item = &'k [u8]>, cas: bool) {
    out.extend_from_slice(if cas { b"gets" } else { b"get" });
    for key in keys {
        out.push(b' ');
        out.extend_from_slice(key);
    }
    out.extend_from_slice(b"\r\n");
}

/// `delete <key>\r\n`: memcached 1.4+ refuses a hold time, so none is ever sent.
pub fn encode_delete(out: &mut Vec<u8>, key: &[u8]) {
    out.extend_from_slice(b"delete ");
    out.extend_from_slice(key);
    out.extend_from_slice(b"\r\n");
}

/// `incr <key> <delta>\r\n` or `decr ...`.
pub fn encode_arith(out: &mut Vec<u8>, incr: bool, key: &[u8], delta: u64) {
    out.extend_from_slice(if incr { b"incr " } else { b"decr " });
    out.extend_from_slice(key);
    push_arg(out, delta);
    out.extend_from_slice(b"\r\n");
}

/// `touch <key> <exptime>\r\n`.
pub fn encode_touch(out: &mut Vec<u8>, key: &[u8], exptime: u64) {
    out.extend_from_slice(b"touch ");
    out.extend_from_slice(key);
    push_arg(out, exptime);
    out.extend_from_slice(b"\r\n");
}

/// The meta protocol's (memcached 1.6) quiet storage command for a bulk write:
/// `ms <key> <bytes>[ F<flags>][ T<exptime>] O<opaque> q[ M<mode>]\r\n<value>\r\n`. Quiet: the
/// server answers only a failure (`NS`, `EX`, `NF`), which `O` names. Not for `Cas`.
pub fn encode_meta_store(
    out: &mut Vec<u8>,
    cmd: StoreCmd,
    key: &[u8],
    flags: u32,
    exptime: u64,
    value: &[u8],
    opaque: u64,
) {
    out.extend_from_slice(b"ms ");
    out.extend_from_slice(key);
    push_arg(out, value.len() as u64);
    push_meta_flag(out, b'F', flags as u64);
    push_meta_flag(out, b'T', exptime);
    out.extend_from_slice(b" O");
    push_u64(out, opaque);
    out.extend_from_slice(match cmd {
        StoreCmd::Set | StoreCmd::Cas(_) => b" q\r\n",
        StoreCmd::Add => b" q ME\r\n",
        StoreCmd::Replace => b" q MR\r\n",
        StoreCmd::Append => b" q MA\r\n",
        StoreCmd::Prepend => b" q MP\r\n",
    });
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// `md <key> O<opaque> q\r\n`: a quiet delete, answered only when the key is not there (`NF`).
pub fn encode_meta_delete(out: &mut Vec<u8>, key: &[u8], opaque: u64) {
    out.extend_from_slice(b"md ");
    out.extend_from_slice(key);
    out.extend_from_slice(b" O");
    push_u64(out, opaque);
    out.extend_from_slice(b" q\r\n");
}

/// `mg <key> T<exptime> O<opaque> q\r\n`: a touch as a quiet meta get without the value,
/// answered only when the key is there (`HD`); a miss is silent.
pub fn encode_meta_touch(out: &mut Vec<u8>, key: &[u8], exptime: u64, opaque: u64) {
    out.extend_from_slice(b"mg ");
    out.extend_from_slice(key);
    out.extend_from_slice(b" T");
    push_u64(out, exptime);
    out.extend_from_slice(b" O");
    push_u64(out, opaque);
    out.extend_from_slice(b" q\r\n");
}

/// ` <flag><n>`, left out when `n` is 0 (the server's default for F and T).
fn push_meta_flag(out: &mut Vec<u8>, flag: u8, n: u64) {
    if n != 0 {
        out.push(b' ');
        out.push(flag);
        push_u64(out, n);
    }
}

/// A command with no arguments: `stats`, `flush_all`, `version`, `stats conns`, `mn` (the meta
/// no-op, which ends a quiet batch).
pub fn encode_simple(out: &mut Vec<u8>, command: &[u8]) {
    out.extend_from_slice(command);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut out = Vec::new();
        f(&mut out);
        out
    }

    #[test]
    fn storage_lines() {
        assert_eq!(
            encoded(|o| encode_store(o, StoreCmd::Set, b"foo", 5, 0, b"bar")),
            b"set foo 5 0 3\r\nbar\r\n"
        );
        assert_eq!(
            encoded(|o| encode_store(o, StoreCmd::Add, b"k", 65535, u64::MAX, b"")),
            b"add k 65535 18446744073709551615 0\r\n\r\n"
        );
        assert_eq!(
            encoded(|o| encode_store(o, StoreCmd::Cas(987654321), b"k", 0, 10, b"\0\r\n")),
            b"cas k 0 10 3 987654321\r\n\0\r\n\r\n"
        );
        assert_eq!(
            encoded(|o| encode_store(o, StoreCmd::Prepend, b"k", 1, 2, b"x")),
            b"prepend k 1 2 1\r\nx\r\n"
        );
    }

    #[test]
    fn quiet_meta_commands() {
        assert_eq!(
            encoded(|o| encode_meta_store(o, StoreCmd::Set, b"k", 0, 0, b"hi", 7)),
            b"ms k 2 O7 q\r\nhi\r\n"
        );
        assert_eq!(
            encoded(|o| encode_meta_store(o, StoreCmd::Add, b"k", 5, 30, b"", 0)),
            b"ms k 0 F5 T30 O0 q ME\r\n\r\n"
        );
        assert_eq!(
            encoded(|o| encode_meta_store(o, StoreCmd::Prepend, b"k", 0, 1, b"x", 1)),
            b"ms k 1 T1 O1 q MP\r\nx\r\n"
        );
        assert_eq!(
            encoded(|o| encode_meta_delete(o, b"k", 12)),
            b"md k O12 q\r\n"
        );
        assert_eq!(
            encoded(|o| encode_meta_touch(o, b"k", 0, 3)),
            b"mg k T0 O3 q\r\n"
        );
    }

    #[test]
    fn retrieval_and_others() {
        let keys: [&[u8]; 3] = [b"a", b"bb", b"ccc"];
        assert_eq!(encoded(|o| encode_get(o, keys, false)), b"get a bb ccc\r\n");
        assert_eq!(encoded(|o| encode_get(o, [&b"a"[..]], true)), b"gets a\r\n");
        assert_eq!(encoded(|o| encode_delete(o, b"k")), b"delete k\r\n");
        assert_eq!(encoded(|o| encode_arith(o, true, b"n", 0)), b"incr n 0\r\n");
        assert_eq!(
            encoded(|o| encode_arith(o, false, b"n", 42)),
            b"decr n 42\r\n"
        );
        assert_eq!(encoded(|o| encode_touch(o, b"t", 300)), b"touch t 300\r\n");
        assert_eq!(
            encoded(|o| encode_simple(o, b"flush_all")),
            b"flush_all\r\n"
        );
    }
}
