//! Every function C can call runs inside the panic boundary: `ffi_body!` (src/ffi/mod.rs), the
//! one place where a Rust panic is turned into the function's failure value instead of aborting
//! the C program.
//!
//! The rule, checked on the source text of src/ffi/*.rs for every `extern "C" fn` with a body
//! (whether `#[no_mangle]` or a hook C reaches through a pointer) and every `#[no_mangle] fn`,
//! outside `#[cfg(test)]` code. After comments are dropped, the body is one of:
//!
//! 1. `ffi_body!(FAIL, { ... })` and nothing else, where FAIL (evaluated after a caught panic,
//!    outside the boundary) is a constant as in 2;
//! 2. a constant, which cannot panic: a literal, `-literal`, `()`, a path (`MEMCACHE_VERNUM`),
//!    a literal's `.as_ptr()`, or a call of `global()` (the global context's address),
//!    `null()` or `null_mut()`;
//! 3. a forward, optionally wrapped in `unsafe { }`: one call `path::f(args)` where `f` is a
//!    function of src/ffi that itself passes this rule, and the arguments hold no macro, index
//!    or call other than those of 2 (names, literals, field reads, casts, `&`, `*`, `-`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    /// A string, char or number literal, as written.
    Lit(String),
    Punct(char),
    Lifetime,
}

#[derive(Clone, Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Rust source to tokens; comments (doc comments included) are dropped.
fn lex(src: &str) -> Vec<Token> {
    let c: Vec<char> = src.chars().collect();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut line = 1;
    let mut i = 0;
    while i < c.len() {
        let ch = c[i];
        let start_line = line;
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            while i < c.len() {
                if c[i] == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if c[i] == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += (c[i] == '\n') as usize;
                    i += 1;
                }
            }
        } else if ch == '"' {
            let end = string_end(&c, i, false, 0, &mut line);
            out.push(lit(&c[i..end], start_line));
            i = end;
        } else if ch == '\'' {
            if at(i + 1) == '\\' {
                let mut j = i + 3;
                while j < c.len() && c[j] != '\'' {
                    j += 1;
                }
                out.push(lit(&c[i..=j], line));
                i = j + 1;
            } else if at(i + 2) == '\'' {
                out.push(lit(&c[i..i + 3], line));
                i += 3;
            } else {
                i += 1;
                while at(i).is_alphanumeric() || at(i) == '_' {
                    i += 1;
                }
                out.push(Token {
                    tok: Tok::Lifetime,
                    line,
                });
            }
        } else if ch.is_ascii_digit() {
            let mut j = i;
            while at(j).is_alphanumeric()
                || at(j) == '_'
                || (at(j) == '.' && at(j + 1).is_ascii_digit())
            {
                j += 1;
            }
            out.push(lit(&c[i..j], line));
            i = j;
        } else if ch.is_alphabetic() || ch == '_' {
            let mut j = i;
            while at(j).is_alphanumeric() || at(j) == '_' {
                j += 1;
            }
            let word: String = c[i..j].iter().collect();
            let mut hashes = 0;
            while at(j + hashes) == '#' {
                hashes += 1;
            }
            let raw = matches!(word.as_str(), "r" | "br" | "cr");
            if raw && at(j + hashes) == '"' {
                let end = string_end(&c, j + hashes, true, hashes, &mut line);
                out.push(lit(&c[i..end], start_line));
                i = end;
            } else if matches!(word.as_str(), "b" | "c") && at(j) == '"' {
                let end = string_end(&c, j, false, 0, &mut line);
                out.push(lit(&c[i..end], start_line));
                i = end;
            } else if word == "b" && at(j) == '\'' {
                let mut k = j + 1 + (at(j + 1) == '\\') as usize + 1;
                while k < c.len() && c[k] != '\'' {
                    k += 1;
                }
                out.push(lit(&c[i..=k], line));
                i = k + 1;
            } else if word == "r" && hashes == 1 {
                // A raw identifier: r#name.
                let mut k = j + 1;
                while at(k).is_alphanumeric() || at(k) == '_' {
                    k += 1;
                }
                out.push(Token {
                    tok: Tok::Ident(c[j + 1..k].iter().collect()),
                    line,
                });
                i = k;
            } else {
                out.push(Token {
                    tok: Tok::Ident(word),
                    line,
                });
                i = j;
            }
        } else {
            out.push(Token {
                tok: Tok::Punct(ch),
                line,
            });
            i += 1;
        }
    }
    out
}

/// The index just past the string literal whose opening quote is at `open`: a raw string ends
/// at a quote followed by `hashes` `#` and has no escapes.
fn string_end(c: &[char], open: usize, raw: bool, hashes: usize, line: &mut usize) -> usize {
    let mut i = open + 1;
    while i < c.len() {
        if c[i] == '\\' && !raw {
            i += 1;
        } else if c[i] == '"' && c[i + 1..].iter().take_while(|&&h| h == '#').count() >= hashes {
            return i + 1 + hashes;
        }
        if c.get(i) == Some(&'\n') {
            *line += 1;
        }
        i += 1;
    }
    c.len()
}

fn lit(chars: &[char], line: usize) -> Token {
    Token {
        tok: Tok::Lit(chars.iter().collect()),
        line,
    }
}

fn ident(t: &Tok, name: &str) -> bool {
    matches!(t, Tok::Ident(s) if s == name)
}

/// The index of the bracket closing the one at `open`, counting only that bracket kind.
fn closing(toks: &[Tok], open: usize) -> Option<usize> {
    let (o, c) = match toks[open] {
        Tok::Punct('(') => ('(', ')'),
        Tok::Punct('[') => ('[', ']'),
        Tok::Punct('{') => ('{', '}'),
        _ => return None,
    };
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        if *t == Tok::Punct(o) {
            depth += 1;
        } else if *t == Tok::Punct(c) {
            depth -= 1;
            if depth == 0 {
                return Some(i);
            }
        }
    }
    None
}

/// A function definition found in the source.
#[derive(Debug)]
struct FnDef {
    file: String,
    line: usize,
    name: String,
    /// `extern "C" fn` (or `extern fn`): C can call it, through the symbol or a pointer.
    extern_c: bool,
    /// `#[no_mangle]` or `#[export_name]`.
    exported: bool,
    body: Vec<Tok>,
}

/// Every function with a body in `src`, except those in `#[cfg(test)]` items.
fn functions(file: &str, src: &str) -> Vec<FnDef> {
    let tokens = lex(src);
    let toks: Vec<Tok> = tokens.iter().map(|t| t.tok.clone()).collect();
    let mut test_only: Vec<(usize, usize)> = Vec::new();
    let cfg_test = [
        Tok::Punct('#'),
        Tok::Punct('['),
        Tok::Ident("cfg".into()),
        Tok::Punct('('),
        Tok::Ident("test".into()),
        Tok::Punct(')'),
        Tok::Punct(']'),
    ];
    for i in 0..toks.len() {
        if toks[i..].starts_with(&cfg_test) {
            if let Some(end) = item_end(&toks, i + cfg_test.len()) {
                test_only.push((i, end));
            }
        }
    }
    let mut defs = Vec::new();
    for i in 0..toks.len().saturating_sub(1) {
        let Tok::Ident(name) = &toks[i + 1] else {
            continue;
        };
        if !ident(&toks[i], "fn") || test_only.iter().any(|&(s, e)| s <= i && i <= e) {
            continue;
        }
        let extern_c = i >= 1
            && (ident(&toks[i - 1], "extern")
                || (i >= 2
                    && toks[i - 1] == Tok::Lit("\"C\"".into())
                    && ident(&toks[i - 2], "extern")));
        let Some(open) = body_start(&toks, i + 2) else {
            continue;
        };
        let Some(close) = closing(&toks, open) else {
            panic!("{file}:{}: unbalanced braces in fn {name}", tokens[i].line);
        };
        defs.push(FnDef {
            file: file.to_string(),
            line: tokens[i].line,
            name: name.clone(),
            extern_c,
            exported: exported(&toks, i),
            body: toks[open + 1..close].to_vec(),
        });
    }
    defs
}

/// The last token of the item starting at `from`: its closing brace, or its `;`.
fn item_end(toks: &[Tok], from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for i in from..toks.len() {
        match toks[i] {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct(')' | ']') => depth -= 1,
            Tok::Punct(';') if depth == 0 => return Some(i),
            Tok::Punct('{') if depth == 0 => return closing(toks, i),
            _ => {}
        }
    }
    None
}

/// The `{` opening the body of the fn whose signature continues at `from`; None for a
/// declaration without a body.
fn body_start(toks: &[Tok], from: usize) -> Option<usize> {
    let mut depth = 0i32;
    for (i, t) in toks.iter().enumerate().skip(from) {
        match t {
            Tok::Punct('(' | '[') => depth += 1,
            Tok::Punct(')' | ']') => depth -= 1,
            Tok::Punct(';') if depth == 0 => return None,
            Tok::Punct('{') if depth == 0 => return Some(i),
            _ => {}
        }
    }
    None
}

/// Whether the attributes before the qualifiers of the `fn` at `fn_at` export it unmangled.
fn exported(toks: &[Tok], fn_at: usize) -> bool {
    let mut j = fn_at;
    let qualifier = |t: &Tok| match t {
        Tok::Ident(s) => matches!(s.as_str(), "pub" | "unsafe" | "extern" | "const" | "crate"),
        Tok::Lit(s) => s == "\"C\"",
        Tok::Punct(p) => matches!(p, '(' | ')'),
        Tok::Lifetime => false,
    };
    while j > 0 && qualifier(&toks[j - 1]) {
        j -= 1;
    }
    // Attributes, last first: `# [ ... ]`.
    while j >= 2 && toks[j - 1] == Tok::Punct(']') {
        let mut depth = 0;
        let mut k = j - 1;
        loop {
            match toks[k] {
                Tok::Punct(']') => depth += 1,
                Tok::Punct('[') => depth -= 1,
                _ => {}
            }
            if depth == 0 || k == 0 {
                break;
            }
            k -= 1;
        }
        if k == 0 || toks[k - 1] != Tok::Punct('#') {
            return false;
        }
        if toks[k..j]
            .iter()
            .any(|t| ident(t, "no_mangle") || ident(t, "export_name"))
        {
            return true;
        }
        j = k - 1;
    }
    false
}

/// `toks` without one trailing `;`.
fn trim_semicolon(toks: &[Tok]) -> &[Tok] {
    match toks.split_last() {
        Some((Tok::Punct(';'), rest)) => rest,
        _ => toks,
    }
}

/// The length of the path (`a::b::c`) at the start of `toks`; 0 if there is none.
fn path_len(toks: &[Tok]) -> usize {
    let mut n = 0;
    loop {
        match toks.get(n) {
            Some(Tok::Ident(_)) => n += 1,
            // `a::` without a name after it: the path is `a`.
            _ => return n.saturating_sub(2),
        }
        if toks.get(n) == Some(&Tok::Punct(':')) && toks.get(n + 1) == Some(&Tok::Punct(':')) {
            n += 2;
        } else {
            return n;
        }
    }
}

/// A value that cannot panic: a literal, `-literal`, `()`, a path, a literal's `.as_ptr()`, or
/// a call of `global()` (the global context's address), `null()` or `null_mut()`.
fn is_constant(toks: &[Tok]) -> bool {
    match toks {
        [Tok::Lit(_)] | [Tok::Punct('-'), Tok::Lit(_)] | [Tok::Punct('('), Tok::Punct(')')] => true,
        [Tok::Lit(_), Tok::Punct('.'), Tok::Ident(m), Tok::Punct('('), Tok::Punct(')')] => {
            m == "as_ptr"
        }
        _ => {
            let n = path_len(toks);
            n > 0
                && (n == toks.len()
                    || (CONSTANT_CALLS.iter().any(|f| ident(&toks[n - 1], f))
                        && toks[n..] == [Tok::Punct('('), Tok::Punct(')')]))
        }
    }
}

/// Functions without arguments that only return an address.
const CONSTANT_CALLS: [&str; 3] = ["global", "null", "null_mut"];

/// Forward arguments: names, literals, field reads, casts, `&`/`*`/`-`, and the calls of
/// [`CONSTANT_CALLS`].
fn simple_arguments(toks: &[Tok]) -> Result<(), String> {
    let mut i = 0;
    while i < toks.len() {
        match &toks[i] {
            Tok::Ident(_) | Tok::Lit(_) => {}
            Tok::Punct(':' | '.' | ',' | '*' | '&' | '-') => {}
            Tok::Punct('(')
                if i > 0
                    && CONSTANT_CALLS.iter().any(|f| ident(&toks[i - 1], f))
                    && toks.get(i + 1) == Some(&Tok::Punct(')')) =>
            {
                i += 1;
            }
            other => {
                let what = match other {
                    Tok::Punct('(') if i > 0 => format!("a call of `{}`", show(&toks[i - 1])),
                    t => format!("`{}`", show(t)),
                };
                return Err(format!(
                    "an argument runs code outside the boundary: {what}"
                ));
            }
        }
        i += 1;
    }
    Ok(())
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Ident(s) | Tok::Lit(s) => s.clone(),
        Tok::Punct(p) => p.to_string(),
        Tok::Lifetime => "'_".into(),
    }
}

struct Checker<'a> {
    defs: &'a [FnDef],
    by_name: HashMap<&'a str, Vec<usize>>,
    verdicts: HashMap<usize, Result<(), String>>,
}

impl<'a> Checker<'a> {
    fn new(defs: &'a [FnDef]) -> Checker<'a> {
        let mut by_name: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, d) in defs.iter().enumerate() {
            by_name.entry(d.name.as_str()).or_default().push(i);
        }
        Checker {
            defs,
            by_name,
            verdicts: HashMap::new(),
        }
    }

    /// Ok when the body of `defs[i]` runs inside the boundary, else why not.
    fn check(&mut self, i: usize) -> Result<(), String> {
        if let Some(v) = self.verdicts.get(&i) {
            return v.clone();
        }
        // A cycle of forwards never reaches a boundary.
        self.verdicts
            .insert(i, Err("it is part of a cycle of forwards".into()));
        let v = self.judge(i);
        self.verdicts.insert(i, v.clone());
        v
    }

    fn judge(&mut self, i: usize) -> Result<(), String> {
        let defs = self.defs;
        let body = trim_semicolon(&defs[i].body);
        if body.is_empty() {
            return Err("the body is empty".into());
        }
        // 1. ffi_body!(FAIL, { ... }) and nothing else.
        if body.len() >= 3 && ident(&body[0], "ffi_body") && body[1] == Tok::Punct('!') {
            if closing(body, 2) != Some(body.len() - 1) {
                return Err("code follows `ffi_body!(..)`".into());
            }
            let args = &body[3..body.len() - 1];
            let mut depth = 0;
            let comma = args.iter().position(|t| {
                match t {
                    Tok::Punct('(' | '[' | '{') => depth += 1,
                    Tok::Punct(')' | ']' | '}') => depth -= 1,
                    _ => {}
                }
                depth == 0 && *t == Tok::Punct(',')
            });
            let fail = &args[..comma.unwrap_or(args.len())];
            if !is_constant(fail) {
                return Err(
                    "the failure value of `ffi_body!` (computed outside it) may panic".into(),
                );
            }
            return Ok(());
        }
        // 2. A constant.
        if is_constant(body) {
            return Ok(());
        }
        // 3. A forward, maybe in `unsafe { }`.
        let mut call = body;
        if ident(&call[0], "unsafe")
            && call.get(1) == Some(&Tok::Punct('{'))
            && closing(call, 1) == Some(call.len() - 1)
        {
            call = trim_semicolon(&call[2..call.len() - 1]);
        }
        let n = path_len(call);
        let forward = n > 0
            && call.get(n) == Some(&Tok::Punct('('))
            && closing(call, n) == Some(call.len() - 1);
        if !forward {
            let what = if body.iter().any(|t| ident(t, "ffi_body")) {
                "code runs before `ffi_body!`"
            } else {
                "the body is neither `ffi_body!(..)`, a constant, nor a single forward"
            };
            return Err(what.into());
        }
        simple_arguments(&call[n + 1..call.len() - 1])?;
        let Tok::Ident(target) = &call[n - 1] else {
            unreachable!("a path ends with a name")
        };
        let Some(targets) = self.by_name.get(target.as_str()).cloned() else {
            return Err(format!(
                "it forwards to `{target}`, which is not a function of src/ffi"
            ));
        };
        for t in targets {
            if let Err(why) = self.check(t) {
                let d = &defs[t];
                return Err(format!(
                    "it forwards to `{target}` ({}:{}), which is outside the boundary: {why}",
                    d.file, d.line
                ));
            }
        }
        Ok(())
    }
}

/// The functions C can call, each with its verdict.
fn verdicts(defs: &[FnDef]) -> Vec<(&FnDef, Result<(), String>)> {
    let mut checker = Checker::new(defs);
    (0..defs.len())
        .filter(|&i| defs[i].extern_c || defs[i].exported)
        .map(|i| (&defs[i], checker.check(i)))
        .collect()
}

fn ffi_sources() -> Vec<FnDef> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("read src/ffi")
        .map(|e| e.expect("list src/ffi").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    files
        .iter()
        .flat_map(|p| {
            let src = std::fs::read_to_string(p).expect("read source");
            let name = format!("src/ffi/{}", p.file_name().unwrap().to_string_lossy());
            functions(&name, &src)
        })
        .collect()
}

#[test]
fn every_c_entry_point_runs_inside_the_panic_boundary() {
    let defs = ffi_sources();
    let checked = verdicts(&defs);
    let exported: Vec<&str> = checked
        .iter()
        .filter(|(d, _)| d.exported)
        .map(|(d, _)| d.name.as_str())
        .collect();
    // The parser found the C API at all (memcache.h declares about 180 functions).
    assert!(
        exported.len() >= 170,
        "only {} exported functions found",
        exported.len()
    );
    for name in [
        "mc_new2",
        "mcm_new2",
        "mc_new_private",
        "mcm_buf_to_upper",
        "mc_server_add5",
    ] {
        assert!(
            exported.contains(&name),
            "{name} not found among the exported functions"
        );
    }
    let hooks: BTreeMap<String, &str> = checked
        .iter()
        .filter(|(d, _)| !d.exported)
        .map(|(d, _)| (format!("{}:{}", d.file, d.line), d.name.as_str()))
        .collect();
    for name in [
        "default_err_handler",
        "default_key_valid",
        "default_hash",
        "default_server_find",
    ] {
        assert!(hooks.values().any(|h| *h == name), "hook {name} not found");
    }
    println!(
        "{} exported functions; extern \"C\" functions C reaches through pointers: {:?}",
        exported.len(),
        hooks
    );
    let outside: Vec<String> = checked
        .iter()
        .filter_map(|(d, v)| {
            v.as_ref()
                .err()
                .map(|why| format!("{}:{}: {}: {why}", d.file, d.line, d.name))
        })
        .collect();
    assert!(
        outside.is_empty(),
        "functions C can call whose body is outside `ffi_body!`:\n{}",
        outside.join("\n")
    );
}

/// The checker itself, on made-up source: what passes and what is caught.
#[test]
fn the_rule_accepts_and_rejects() {
    let src = r##"
        /// ffi_body!( in a comment
        #[no_mangle]
        pub unsafe extern "C" fn guarded(p: *mut u8) -> i32 {
            ffi_body!(-1, { helper(p) })
        }
        #[no_mangle]
        pub extern "C" fn guarded_null() -> *mut u8 {
            ffi_body!(std::ptr::null_mut(), { make() })
        }
        #[no_mangle]
        pub extern "C" fn forward(p: *mut u8) -> i32 {
            // SAFETY: forwarded contract.
            unsafe { guarded(global(), p as *mut u8, -1, super::context::global()) }
        }
        #[no_mangle]
        pub extern "C" fn forward_twice(p: *mut u8) -> i32 {
            forward(p)
        }
        #[no_mangle]
        pub extern "C" fn constant() -> u32 {
            VERSION_NUMBER
        }
        #[no_mangle]
        pub extern "C" fn version() -> *const c_char {
            c"1.4".as_ptr()
        }
        #[no_mangle]
        pub extern "C" fn global_context() -> *mut ctxt {
            global()
        }
        #[no_mangle]
        pub extern "C" fn null_arguments() -> i32 {
            guarded(std::ptr::null_mut(), ptr::null())
        }
        pub unsafe extern "C" fn hook(p: *mut u8) -> i32 {
            ffi_body!(0, { helper(p) })
        }
        fn inner() -> i32 {
            ffi_body!(0, { 1 })
        }
        #[no_mangle]
        pub extern "C" fn to_guarded_rust_fn() -> i32 {
            inner()
        }

        #[no_mangle]
        pub extern "C" fn bare(p: *mut u8) -> i32 {
            helper(p)
        }
        #[no_mangle]
        pub extern "C" fn string_only() -> *const u8 {
            let _ = "ffi_body!(0, { 1 })";
            c"1.4".as_ptr()
        }
        #[no_mangle]
        pub extern "C" fn before() -> i32 {
            let x = helper(0);
            ffi_body!(0, { x })
        }
        #[no_mangle]
        pub extern "C" fn after() -> i32 {
            ffi_body!(0, { 1 });
            helper(0)
        }
        #[no_mangle]
        pub extern "C" fn bad_failure() -> i32 {
            ffi_body!(helper(0), { 1 })
        }
        #[no_mangle]
        pub extern "C" fn method_argument(p: *mut u8) -> i32 {
            guarded(p.add(1))
        }
        #[no_mangle]
        pub extern "C" fn call_argument(p: *const c_char) -> i32 {
            unsafe { guarded(p, c_len(p)) }
        }
        #[no_mangle]
        pub extern "C" fn macro_argument() -> i32 {
            guarded(format!("x"))
        }
        #[no_mangle]
        pub extern "C" fn to_bare() -> i32 {
            unsafe { bare(std::ptr::null_mut()) }
        }
        #[no_mangle]
        pub extern "C" fn to_unknown() -> i32 {
            elsewhere::unknown()
        }
        pub extern "C" fn unguarded_hook() {
            helper(0);
        }
        #[no_mangle]
        pub extern "C" fn cycle_a() -> i32 {
            cycle_b()
        }
        #[no_mangle]
        pub extern "C" fn cycle_b() -> i32 {
            cycle_a()
        }
        pub type Hook = Option<unsafe extern "C" fn(p: *mut u8) -> i32>;
        extern "C" {
            fn declared_only(p: *mut u8) -> i32;
        }

        #[cfg(test)]
        mod tests {
            unsafe extern "C" fn test_allocator(n: usize) -> *mut u8 {
                std::ptr::null_mut::<u8>().add(n)
            }
        }
    "##;
    let defs = functions("made_up.rs", src);
    let checked = verdicts(&defs);
    let (pass, fail): (Vec<_>, Vec<_>) = checked.iter().partition(|(_, v)| v.is_ok());
    let names = |v: &[&(&FnDef, Result<(), String>)]| -> Vec<String> {
        let mut n: Vec<String> = v.iter().map(|(d, _)| d.name.clone()).collect();
        n.sort();
        n
    };
    assert_eq!(
        names(&pass),
        [
            "constant",
            "forward",
            "forward_twice",
            "global_context",
            "guarded",
            "guarded_null",
            "hook",
            "null_arguments",
            "to_guarded_rust_fn",
            "version"
        ]
    );
    assert_eq!(
        names(&fail),
        [
            "after",
            "bad_failure",
            "bare",
            "before",
            "call_argument",
            "cycle_a",
            "cycle_b",
            "macro_argument",
            "method_argument",
            "string_only",
            "to_bare",
            "to_unknown",
            "unguarded_hook"
        ]
    );
    let hook = defs.iter().find(|d| d.name == "hook").unwrap();
    assert!(hook.extern_c && !hook.exported);
    let bare = checked.iter().find(|(d, _)| d.name == "bare").unwrap();
    let line = src.lines().position(|l| l.contains("fn bare(")).unwrap() + 1;
    assert_eq!(bare.0.line, line, "line of fn bare");
}
