//! JSON for the programs' `--json` output (mclient and mcadmin): strings escaped as RFC 8259
//! asks, objects built field by field, bytes that are not UTF-8 as base64. Written here once
//! and included by each program with `#[path]`, so that the library carries none of it; each
//! program uses a part.
#![allow(dead_code)]

use std::fmt::Write as _;

/// One JSON object on one line, built field by field.
pub struct JsonLine(String);

impl JsonLine {
    pub fn new() -> JsonLine {
        JsonLine(String::from("{"))
    }

    fn name(&mut self, name: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        push_json_string(&mut self.0, name);
        self.0.push(':');
    }

    pub fn str(mut self, name: &str, value: &str) -> JsonLine {
        self.name(name);
        push_json_string(&mut self.0, value);
        self
    }

    /// Bytes as the string `name` when they are UTF-8, else as `name_base64` (standard
    /// alphabet, padded): a reader looks for one field or the other.
    pub fn bytes(mut self, name: &str, value: &[u8]) -> JsonLine {
        match std::str::from_utf8(value) {
            Ok(text) => self.str(name, text),
            Err(_) => {
                self.name(&format!("{name}_base64"));
                self.0.push('"');
                self.0.push_str(&base64(value));
                self.0.push('"');
                self
            }
        }
    }

    /// A number or a literal (`true`, `null`) as it is written.
    pub fn raw(mut self, name: &str, json: impl std::fmt::Display) -> JsonLine {
        self.name(name);
        let _ = write!(self.0, "{json}");
        self
    }

    pub fn line(mut self) -> Vec<u8> {
        self.0.push_str("}\n");
        self.0.into_bytes()
    }

    /// The object as a value to nest (no newline).
    pub fn object(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

/// `s` as a JSON string.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    push_json_string(&mut out, s);
    out
}

/// `s` as a JSON string: quotes, backslashes and control characters escaped.
fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// RFC 4648 base64, standard alphabet, with padding (the `base64` crate, which mcadmin's etcd
/// source also uses).
pub fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_of_rfc4648_vectors() {
        for (plain, coded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), coded);
        }
        assert_eq!(base64(&[0xff, 0xfe, 0x80]), "//6A");
    }

    #[test]
    fn json_lines() {
        let line = JsonLine::new()
            .str("k", "a\"b\\c\n\u{1}é")
            .bytes("v", &[0xff, b'x'])
            .raw("n", 7)
            .raw("t", true)
            .line();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "{\"k\":\"a\\\"b\\\\c\\n\\u0001é\",\"v_base64\":\"/3g=\",\"n\":7,\"t\":true}\n"
        );
    }

    #[test]
    fn strings() {
        assert_eq!(
            json_string("a\"b\\\u{7f}\u{1f}"),
            "\"a\\\"b\\\\\u{7f}\\u001f\""
        );
    }
}
