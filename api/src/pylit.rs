//! Python literals, both ways: `repr()`/`str()` of JSON values (Magnum's messages embed Python
//! reprs, e.g. `Value: '{'a': 1}'`) and `ast.literal_eval` for the label strings
//! python-magnumclient sends in PATCH bodies (`"{'kube_tag': 'v1.27.3'}"`).
use serde_json::{Map, Number, Value};

/// Python `repr()` of a JSON value.
pub fn repr(v: &Value) -> String {
    match v {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => number_repr(n),
        Value::String(s) => str_repr(s),
        Value::Array(a) => {
            let items: Vec<String> = a.iter().map(repr).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(m) => {
            let items: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", str_repr(k), repr(v)))
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// Python `str()` of a JSON value: strings raw, everything else as `repr()`.
pub fn str_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python type name as `type(v)` prints it inside Magnum's "Wrong type" messages.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "<class 'NoneType'>",
        Value::Bool(_) => "<class 'bool'>",
        Value::Number(n) if n.is_f64() => "<class 'float'>",
        Value::Number(_) => "<class 'int'>",
        Value::String(_) => "<class 'str'>",
        Value::Array(_) => "<class 'list'>",
        Value::Object(_) => "<class 'dict'>",
    }
}

fn number_repr(n: &Number) -> String {
    match n.as_f64() {
        Some(f) if n.is_f64() => float_repr(f),
        _ => n.to_string(),
    }
}

/// Python's float repr: `2.0`, `1.5`, `1e+16`, `1e-05`.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let s = format!("{f:?}");
    match s.split_once('e') {
        None => s,
        Some((mant, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            let mant = mant.strip_suffix(".0").unwrap_or(mant);
            format!("{mant}e{sign}{digits:0>2}")
        }
    }
}

/// Python's `repr(str)`: single quotes unless the text has `'` and no `"`.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Why `literal_eval` failed, worded like Python's exceptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiteralError(pub String);

impl std::fmt::Display for LiteralError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn syntax() -> LiteralError {
    LiteralError("invalid syntax (<unknown>, line 1)".into())
}

fn malformed() -> LiteralError {
    LiteralError("malformed node or string".into())
}

/// `ast.literal_eval` of strings, numbers, True/False/None, lists, tuples, sets and dicts with
/// string keys, mapped onto JSON (tuples and sets become arrays).
pub fn literal_eval(src: &str) -> Result<Value, LiteralError> {
    let mut p = Parser {
        s: src.as_bytes(),
        i: 0,
        depth: 0,
    };
    p.ws();
    let v = p.value()?;
    p.ws();
    if p.i != p.s.len() {
        return Err(syntax());
    }
    Ok(v)
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
    depth: usize,
}

const MAX_DEPTH: usize = 64;

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.peek() == Some(c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Value, LiteralError> {
        self.ws();
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(LiteralError("too many nested parentheses".into()));
        }
        let r = match self.peek() {
            None => Err(syntax()),
            Some(b'\'' | b'"') => self.string().map(Value::String),
            Some(b'{') => self.dict_or_set(),
            Some(b'[') => {
                self.i += 1;
                self.seq(b']').map(Value::Array)
            }
            Some(b'(') => {
                self.i += 1;
                self.seq(b')').map(Value::Array)
            }
            Some(c) if c == b'-' || c == b'+' || c == b'.' || c.is_ascii_digit() => self.number(),
            Some(c) if c.is_ascii_alphabetic() || c == b'_' => self.name(),
            Some(_) => Err(syntax()),
        };
        self.depth -= 1;
        r
    }

    fn seq(&mut self, close: u8) -> Result<Vec<Value>, LiteralError> {
        let mut out = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(out);
            }
            out.push(self.value()?);
            if self.eat(close) {
                return Ok(out);
            }
            if !self.eat(b',') {
                return Err(syntax());
            }
        }
    }

    fn dict_or_set(&mut self) -> Result<Value, LiteralError> {
        self.i += 1;
        if self.eat(b'}') {
            return Ok(Value::Object(Map::new()));
        }
        let first = self.value()?;
        if !self.eat(b':') {
            // A set literal.
            let mut items = vec![first];
            loop {
                if self.eat(b'}') {
                    return Ok(Value::Array(items));
                }
                if !self.eat(b',') {
                    return Err(syntax());
                }
                if self.eat(b'}') {
                    return Ok(Value::Array(items));
                }
                items.push(self.value()?);
            }
        }
        let mut m = Map::new();
        let mut key = first;
        loop {
            let v = self.value()?;
            match key {
                Value::String(k) => {
                    m.insert(k, v);
                }
                // JSON objects need string keys; Python would build the dict, but Magnum then
                // rejects a non-string key anyway.
                _ => return Err(malformed()),
            }
            if self.eat(b'}') {
                return Ok(Value::Object(m));
            }
            if !self.eat(b',') {
                return Err(syntax());
            }
            if self.eat(b'}') {
                return Ok(Value::Object(m));
            }
            key = self.value()?;
            if !self.eat(b':') {
                return Err(syntax());
            }
        }
    }

    fn name(&mut self) -> Result<Value, LiteralError> {
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.i += 1;
        }
        let word = &self.s[start..self.i];
        // String prefixes (u'', r'', b'' ...) are not worth supporting: magnumclient never
        // sends them.
        match word {
            b"True" => Ok(Value::Bool(true)),
            b"False" => Ok(Value::Bool(false)),
            b"None" => Ok(Value::Null),
            _ => Err(malformed()),
        }
    }

    fn number(&mut self) -> Result<Value, LiteralError> {
        let mut neg = false;
        while let Some(c @ (b'-' | b'+')) = self.peek() {
            if c == b'-' {
                neg = !neg;
            }
            self.i += 1;
            self.ws();
        }
        let start = self.i;
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'.' || c == b'_'
            || ((c == b'+' || c == b'-') && matches!(self.s.get(self.i.wrapping_sub(1)), Some(b'e' | b'E'))))
        {
            self.i += 1;
        }
        let text: String = String::from_utf8_lossy(&self.s[start..self.i]).replace('_', "");
        if text.is_empty() {
            return Err(syntax());
        }
        let is_float = text.contains(['.', 'e', 'E']) && !text.starts_with("0x");
        if !is_float {
            let v: i64 = text.parse().map_err(|_| syntax())?;
            return Ok(Value::from(if neg { -v } else { v }));
        }
        let f: f64 = text.parse().map_err(|_| syntax())?;
        Number::from_f64(if neg { -f } else { f })
            .map(Value::Number)
            .ok_or_else(malformed)
    }

    /// The `n` hex digits of a `\x`, `\u` or `\U` escape, as the character they name.
    fn hex_escape(&mut self, n: usize, form: &str) -> Result<char, LiteralError> {
        let digits = self.s.get(self.i..self.i + n).unwrap_or_default();
        let code = match std::str::from_utf8(digits) {
            Ok(h) if h.len() == n && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
                u32::from_str_radix(h, 16).map_err(|_| syntax())?
            }
            _ => {
                return Err(LiteralError(format!(
                    "(unicode error) 'unicodeescape' codec can't decode bytes: truncated {form} \
                     escape (<unknown>, line 1)"
                )))
            }
        };
        self.i += n;
        // Lone surrogates (which Python allows in a str) have no place in a JSON string.
        char::from_u32(code).ok_or_else(|| {
            LiteralError(
                "(unicode error) 'unicodeescape' codec can't decode bytes: illegal Unicode \
                 character (<unknown>, line 1)"
                    .into(),
            )
        })
    }

    fn string(&mut self) -> Result<String, LiteralError> {
        let mut out = String::new();
        // Adjacent literals concatenate, as in Python.
        loop {
            let Some(q) = self.peek() else {
                return Err(syntax());
            };
            self.i += 1;
            let mut buf: Vec<u8> = Vec::new();
            loop {
                let Some(c) = self.peek() else {
                    return Err(LiteralError(
                        "unterminated string literal (detected at line 1) (<unknown>, line 1)"
                            .into(),
                    ));
                };
                self.i += 1;
                if c == q {
                    break;
                }
                if c == b'\\' {
                    let Some(e) = self.peek() else {
                        return Err(syntax());
                    };
                    self.i += 1;
                    // All of Python's escapes: `repr()` (python-magnumclient's `str(dict)`, and
                    // `str_repr` here) writes control characters as `\xNN`, so a string must
                    // read them back, not keep the backslash. An unknown escape keeps it, as in
                    // Python (`\N{name}` included: not supported).
                    let ch = match e {
                        b'n' => '\n',
                        b't' => '\t',
                        b'r' => '\r',
                        b'a' => '\x07',
                        b'b' => '\x08',
                        b'f' => '\x0c',
                        b'v' => '\x0b',
                        b'\\' | b'\'' | b'"' => char::from(e),
                        b'\n' => continue,
                        b'0'..=b'7' => {
                            // Up to three octal digits (at most 0o777).
                            let mut v = u32::from(e - b'0');
                            for _ in 0..2 {
                                match self.peek() {
                                    Some(d @ b'0'..=b'7') => {
                                        v = v * 8 + u32::from(d - b'0');
                                        self.i += 1;
                                    }
                                    _ => break,
                                }
                            }
                            char::from_u32(v).ok_or_else(syntax)?
                        }
                        b'x' => self.hex_escape(2, "\\xXX")?,
                        b'u' => self.hex_escape(4, "\\uXXXX")?,
                        b'U' => self.hex_escape(8, "\\UXXXXXXXX")?,
                        other => {
                            buf.push(b'\\');
                            buf.push(other);
                            continue;
                        }
                    };
                    buf.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
                    continue;
                }
                buf.push(c);
            }
            out.push_str(&String::from_utf8_lossy(&buf));
            self.ws();
            if !matches!(self.peek(), Some(b'\'' | b'"')) {
                return Ok(out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repr_like_python() {
        assert_eq!(
            repr(&json!({"a": 1, "b": [true, null, "x"]})),
            "{'a': 1, 'b': [True, None, 'x']}"
        );
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(float_repr(2.0), "2.0");
        assert_eq!(float_repr(1e16), "1e+16");
        assert_eq!(float_repr(1e-5), "1e-05");
        assert_eq!(float_repr(1.5), "1.5");
        assert_eq!(str_of(&json!("x")), "x");
    }

    #[test]
    fn literal_eval_magnumclient_shapes() {
        assert_eq!(
            literal_eval("{'kube_tag': 'v1.27.3', 'n': 3, 'f': -1.5, 'b': True}").unwrap(),
            json!({"kube_tag": "v1.27.3", "n": 3, "f": -1.5, "b": true})
        );
        assert_eq!(literal_eval("{\"a\": \"b\",}").unwrap(), json!({"a": "b"}));
        assert_eq!(
            literal_eval("[1, (2, 3), {4}]").unwrap(),
            json!([1, [2, 3], [4]])
        );
        assert_eq!(literal_eval("'a' \"b\"").unwrap(), json!("ab"));
        assert!(literal_eval("{'a': true}").is_err());
        assert!(literal_eval("{'a': 'b'").is_err());
        assert!(literal_eval("__import__('os')").is_err());
        assert!(literal_eval(&"[".repeat(1000)).is_err());
        assert!(literal_eval("").is_err());
    }

    #[test]
    fn string_escapes_like_python() {
        assert_eq!(
            literal_eval(r"'\x41\u00e9\U0001F600\101\0\12\a\b\f\v\q'").unwrap(),
            json!("A\u{e9}\u{1F600}A\0\n\x07\x08\x0c\x0b\\q")
        );
        assert!(literal_eval(r"'\x4'").is_err());
        assert!(literal_eval(r"'\xzz'").is_err());
        assert!(literal_eval(r"'\ud800'").is_err());
        assert!(literal_eval(r"'\U00110000'").is_err());
    }

    /// fuzz/regressions/labels_pylit: a control character came back from `repr` as `\x00`,
    /// which `literal_eval` kept as four characters.
    #[test]
    fn repr_of_any_string_reads_back() {
        for s in [
            "a\0b",
            "\x01\x1f\x7f",
            "tab\there",
            "it's \"q\"",
            "\\x41",
            "\u{e9}\n",
        ] {
            let v = json!({ s: s });
            assert_eq!(literal_eval(&repr(&v)).unwrap(), v, "{s:?}");
        }
        let input = "{'kube_tag': 'v1.27.3', 'availability)z_\09.27.3naile': 'nova'}";
        let v = literal_eval(input).unwrap();
        assert_eq!(literal_eval(&repr(&v)).unwrap(), v);
    }
}
