//! What `make install` puts under the prefix is stripped, as a distribution ships it: the
//! shared library without debug info, linked by `.gnu_debuglink` to its debug file in
//! `lib/.debug/`, and the static library without debug info.

mod support;

use std::path::Path;

use support::prefix;

/// The installed shared library is well under this (2.3 MB since it speaks TLS, issue 17), and
/// an unstripped one far above it (about 21 MB with its debug info).
const MAX_SHARED_SIZE: u64 = 3 * 1024 * 1024;

/// A section of an ELF file.
struct Section {
    name: String,
    offset: usize,
    size: usize,
}

fn u16_at(b: &[u8], at: usize) -> usize {
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap()) as usize
}

fn u32_at(b: &[u8], at: usize) -> usize {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) as usize
}

fn u64_at(b: &[u8], at: usize) -> usize {
    u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) as usize
}

/// The sections of a 64-bit little-endian ELF file; None if `elf` is not one.
fn sections(elf: &[u8]) -> Option<Vec<Section>> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return None;
    }
    let (shoff, shentsize, shnum, shstrndx) = (
        u64_at(elf, 0x28),
        u16_at(elf, 0x3a),
        u16_at(elf, 0x3c),
        u16_at(elf, 0x3e),
    );
    let header = |i: usize| {
        let h = shoff + i * shentsize;
        (u32_at(elf, h), u64_at(elf, h + 0x18), u64_at(elf, h + 0x20))
    };
    let (_, names_at, _) = header(shstrndx);
    let name = |off: usize| {
        let s = &elf[names_at + off..];
        String::from_utf8_lossy(&s[..s.iter().position(|&b| b == 0).unwrap()]).into_owned()
    };
    Some(
        (0..shnum)
            .map(|i| {
                let (name_off, offset, size) = header(i);
                Section {
                    name: name(name_off),
                    offset,
                    size,
                }
            })
            .collect(),
    )
}

fn debug_sections(sections: &[Section]) -> Vec<&str> {
    sections
        .iter()
        .map(|s| s.name.as_str())
        .filter(|n| n.starts_with(".debug_") || n.starts_with(".zdebug_"))
        .collect()
}

/// The CRC-32 (IEEE, as zlib) that `.gnu_debuglink` records of the debug file.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xedb8_8320 & (crc & 1).wrapping_neg());
        }
    }
    !crc
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn shared_library_is_stripped_with_a_debug_link() {
    let lib = prefix().join("lib");
    let so = lib.join("libmemcache.so.0.4.0");
    let elf = read(&so);
    let secs = sections(&elf).expect("libmemcache.so.0.4.0 is a 64-bit little-endian ELF file");
    let size = elf.len() as u64;
    println!("installed {}: {size} bytes", so.display());
    assert!(
        size < MAX_SHARED_SIZE,
        "{} is {size} bytes, not under {MAX_SHARED_SIZE}: is it stripped?",
        so.display()
    );
    let debug = debug_sections(&secs);
    assert!(
        debug.is_empty(),
        "{} keeps debug sections {debug:?}",
        so.display()
    );
    assert!(
        !secs.iter().any(|s| s.name == ".symtab"),
        "{} keeps its .symtab (not stripped of unneeded symbols)",
        so.display()
    );
    for needed in [".dynsym", ".note.gnu.build-id"] {
        assert!(
            secs.iter().any(|s| s.name == needed),
            "{} lost {needed}",
            so.display()
        );
    }

    // .gnu_debuglink: the debug file's name, NUL, padding to 4 bytes, its CRC-32.
    let link = secs
        .iter()
        .find(|s| s.name == ".gnu_debuglink")
        .unwrap_or_else(|| panic!("{} has no .gnu_debuglink", so.display()));
    let data = &elf[link.offset..link.offset + link.size];
    let name_len = data
        .iter()
        .position(|&b| b == 0)
        .expect("NUL-terminated name");
    let name = std::str::from_utf8(&data[..name_len]).expect("UTF-8 name");
    let crc = u32::from_le_bytes(data[data.len() - 4..].try_into().unwrap());
    assert_eq!(name, "libmemcache.so.0.4.0.debug");
    // The first place gdb, valgrind and Rust backtraces look after the library's own directory.
    let debug_file = lib.join(".debug").join(name);
    let debug_elf = read(&debug_file);
    assert_eq!(
        crc32(&debug_elf),
        crc,
        "{} does not match the CRC in the library's .gnu_debuglink",
        debug_file.display()
    );
    let debug_secs = sections(&debug_elf).expect("the debug file is an ELF file");
    assert!(
        debug_secs
            .iter()
            .any(|s| s.name == ".debug_info" && s.size > 0),
        "{} has no .debug_info",
        debug_file.display()
    );
    println!(
        "installed {}: {} bytes",
        debug_file.display(),
        debug_elf.len()
    );
}

#[test]
fn static_library_has_no_debug_info() {
    let path = prefix().join("lib/libmemcache.a");
    let ar = read(&path);
    println!("installed {}: {} bytes", path.display(), ar.len());
    assert!(
        ar.starts_with(b"!<arch>\n"),
        "{} is not an ar archive",
        path.display()
    );
    // Members: a 60-byte header (size in decimal at 48..58), the data, padding to 2 bytes.
    let mut at = 8;
    let mut objects = 0;
    let mut with_debug = Vec::new();
    while at + 60 <= ar.len() {
        let header = &ar[at..at + 60];
        let size: usize = std::str::from_utf8(&header[48..58])
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or_else(|| panic!("bad member header at {at} in {}", path.display()));
        let data = &ar[at + 60..at + 60 + size];
        if let Some(secs) = sections(data) {
            objects += 1;
            let debug = debug_sections(&secs);
            if !debug.is_empty() {
                let member = String::from_utf8_lossy(&header[..16]).trim().to_string();
                with_debug.push(format!("{member} {debug:?}"));
            }
        }
        at += 60 + size + size % 2;
    }
    assert!(objects > 0, "no object files in {}", path.display());
    assert!(
        with_debug.is_empty(),
        "{} keeps debug sections in {} of {objects} objects, e.g. {}",
        path.display(),
        with_debug.len(),
        with_debug[0]
    );
}
