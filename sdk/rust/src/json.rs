//! A strict, allocation-free JSON scanner for validators: [`validate`] checks a whole text
//! against RFC 8259 (well-formed UTF-8, strict numbers, literals and escapes, bounded nesting),
//! then [`root`], [`Value::members`] and [`Value::elements`] walk it as zero-copy spans.

use std::convert::TryInto;

/// The kind of a JSON value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `{...}`
    Object,
    /// `[...]`
    Array,
    /// `"..."`
    String,
    /// A number.
    Number,
    /// `true`
    True,
    /// `false`
    False,
    /// `null`
    Null,
}

/// A span of a validated JSON text: the whole token, strings with their quotes, containers
/// with their brackets.
#[derive(Clone, Copy, Debug)]
pub struct Value<'a> {
    /// The kind of the value.
    pub kind: Kind,
    /// The raw bytes of the token.
    pub raw: &'a [u8],
    /// Strings: whether the token holds an escape (its raw bytes differ from the decoded ones).
    /// Values from the scanner set it; set it to true when building a string value by hand
    /// unless the raw text has no backslash.
    pub escaped: bool,
}

/// Default nesting limit of [`validate`] (containers; the top-level one is level 1).
pub const MAX_DEPTH: usize = 64;

#[inline]
fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\n' || c == b'\r' || c == b'\t'
}

#[inline]
fn ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_ws(s[i]) {
        i += 1;
    }
    i
}

fn hex(c: u8) -> Option<u32> {
    match c {
        b'0'..=b'9' => Some((c - b'0') as u32),
        b'a'..=b'f' => Some((c - b'a' + 10) as u32),
        b'A'..=b'F' => Some((c - b'A' + 10) as u32),
        _ => None,
    }
}

/// Bytes that need no attention inside a string: printable ASCII but the quote and backslash.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0x20;
    while c < 0x80 {
        t[c] = c != b'"' as usize && c != b'\\' as usize;
        c += 1;
    }
    t
};

/// i is after the opening quote; returns the position after the closing quote.
#[inline]
fn v_string(s: &[u8], i: usize) -> Option<usize> {
    v_string_esc(s, i).map(|(e, _)| e)
}

/// Like v_string, and also reports whether the string holds an escape.
fn v_string_esc(s: &[u8], mut i: usize) -> Option<(usize, bool)> {
    let mut escaped = false;
    while i < s.len() {
        // Eight bytes at a time while none is a quote, a backslash, a control byte or non-ASCII.
        while s.len() - i >= 8 {
            let x = u64::from_le_bytes(s[i..i + 8].try_into().unwrap());
            const ONES: u64 = 0x0101_0101_0101_0101;
            let q = x ^ (ONES * b'"' as u64);
            let b = x ^ (ONES * b'\\' as u64);
            let m = (x.wrapping_sub(ONES * 0x20) & !x) | (q.wrapping_sub(ONES) & !q) | (b.wrapping_sub(ONES) & !b) | x;
            let m = m & (ONES * 0x80);
            if m != 0 {
                // The lowest flagged byte is a real one (false positives only sit above it).
                i += (m.trailing_zeros() / 8) as usize;
                break;
            }
            i += 8;
        }
        while i < s.len() && PLAIN[s[i] as usize] {
            i += 1;
        }
        if i >= s.len() {
            return None;
        }
        let c = s[i];
        if c == b'"' {
            return Some((i + 1, escaped));
        }
        if c < 0x20 {
            return None;
        }
        if c == b'\\' {
            escaped = true;
            i += 1;
            match *s.get(i)? {
                b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 1,
                b'u' => {
                    if s.len() - i < 5 || !s[i + 1..i + 5].iter().all(|&h| hex(h).is_some()) {
                        return None;
                    }
                    i += 5;
                }
                _ => return None,
            }
            continue;
        }
        if c < 0x80 {
            i += 1;
            continue;
        }
        let (need, lo, hi) = match c {
            0xC2..=0xDF => (1, 0x80, 0xBF),
            0xE0 => (2, 0xA0, 0xBF),
            0xE1..=0xEC | 0xEE | 0xEF => (2, 0x80, 0xBF),
            0xED => (2, 0x80, 0x9F),
            0xF0 => (3, 0x90, 0xBF),
            0xF1..=0xF3 => (3, 0x80, 0xBF),
            0xF4 => (3, 0x80, 0x8F),
            _ => return None,
        };
        if s.len() - i < need + 1 || s[i + 1] < lo || s[i + 1] > hi {
            return None;
        }
        for k in 2..=need {
            if !(0x80..=0xBF).contains(&s[i + k]) {
                return None;
            }
        }
        i += need + 1;
    }
    None
}

fn digits(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_digit() {
        i += 1;
    }
    i
}

fn v_number(s: &[u8], mut i: usize) -> Option<usize> {
    if i < s.len() && s[i] == b'-' {
        i += 1;
    }
    match s.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => i = digits(s, i),
        _ => return None,
    }
    if i < s.len() && s[i] == b'.' {
        let d = i + 1;
        i = digits(s, d);
        if i == d {
            return None;
        }
    }
    if i < s.len() && (s[i] == b'e' || s[i] == b'E') {
        i += 1;
        if i < s.len() && (s[i] == b'+' || s[i] == b'-') {
            i += 1;
        }
        let d = i;
        i = digits(s, d);
        if i == d {
            return None;
        }
    }
    Some(i)
}

fn v_value(s: &[u8], i: usize, depth: usize, max: usize) -> Option<usize> {
    match *s.get(i)? {
        open @ (b'{' | b'[') => {
            if depth + 1 > max {
                return None;
            }
            let close = if open == b'{' { b'}' } else { b']' };
            let mut i = ws(s, i + 1);
            if i < s.len() && s[i] == close {
                return Some(i + 1);
            }
            loop {
                if open == b'{' {
                    if i >= s.len() || s[i] != b'"' {
                        return None;
                    }
                    i = ws(s, v_string(s, i + 1)?);
                    if i >= s.len() || s[i] != b':' {
                        return None;
                    }
                    i = ws(s, i + 1);
                }
                i = ws(s, v_value(s, i, depth + 1, max)?);
                match s.get(i) {
                    Some(b',') => i = ws(s, i + 1),
                    Some(&c) if c == close => return Some(i + 1),
                    _ => return None,
                }
            }
        }
        b'"' => v_string(s, i + 1),
        b't' => lit(s, i, b"true"),
        b'f' => lit(s, i, b"false"),
        b'n' => lit(s, i, b"null"),
        _ => v_number(s, i),
    }
}

fn lit(s: &[u8], i: usize, w: &[u8]) -> Option<usize> {
    if s.len() - i >= w.len() && &s[i..i + w.len()] == w {
        Some(i + w.len())
    } else {
        None
    }
}

/// Reports whether `s` is exactly one RFC 8259 JSON text with containers nested at most
/// `max_depth` levels and nothing but whitespace around the value.
pub fn validate(s: &[u8], max_depth: usize) -> bool {
    match v_value(s, ws(s, 0), 0, max_depth) {
        Some(i) => ws(s, i) == s.len(),
        None => false,
    }
}

fn kind_of(c: u8) -> Kind {
    match c {
        b'{' => Kind::Object,
        b'[' => Kind::Array,
        b'"' => Kind::String,
        b't' => Kind::True,
        b'f' => Kind::False,
        b'n' => Kind::Null,
        _ => Kind::Number,
    }
}

/// Skips one value of a validated text starting at i.
fn skip(s: &[u8], mut i: usize) -> usize {
    match s[i] {
        b'"' => {
            i += 1;
            while s[i] != b'"' {
                i += if s[i] == b'\\' { 2 } else { 1 };
            }
            i + 1
        }
        b'{' | b'[' => {
            let mut depth = 0usize;
            while i < s.len() {
                match s[i] {
                    b'"' => {
                        i += 1;
                        while s[i] != b'"' {
                            i += if s[i] == b'\\' { 2 } else { 1 };
                        }
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            i
        }
        _ => {
            while i < s.len() && !matches!(s[i], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') {
                i += 1;
            }
            i
        }
    }
}

fn span(s: &[u8], i: usize) -> Value<'_> {
    let end = skip(s, i);
    let raw = &s[i..end];
    let kind = kind_of(s[i]);
    Value { kind, raw, escaped: kind == Kind::String && raw.contains(&b'\\') }
}

/// The top-level value of a text that [`validate`] accepted.
pub fn root(s: &[u8]) -> Value<'_> {
    span(s, ws(s, 0))
}

/// Iterator over an object's members, from [`Value::members`].
pub struct Members<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (Value<'a>, Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let mut i = ws(s, self.i);
        if i < s.len() && s[i] == b',' {
            i = ws(s, i + 1);
        }
        if i >= s.len() || s[i] != b'"' {
            return None;
        }
        let name = span(s, i);
        i = ws(s, ws(s, i + name.raw.len()) + 1);
        let value = span(s, i);
        self.i = i + value.raw.len();
        Some((name, value))
    }
}

/// Iterator over an array's elements, from [`Value::elements`].
pub struct Elements<'a> {
    s: &'a [u8],
    i: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = Value<'a>;
    fn next(&mut self) -> Option<Self::Item> {
        let s = self.s;
        let mut i = ws(s, self.i);
        if i < s.len() && s[i] == b',' {
            i = ws(s, i + 1);
        }
        if i >= s.len() || s[i] == b']' {
            return None;
        }
        let v = span(s, i);
        self.i = i + v.raw.len();
        Some(v)
    }
}

/// Decodes the escape whose letter is at s[*i]; lone surrogates stay as 0xD800..0xDFFF.
fn unescape(s: &[u8], i: &mut usize) -> u32 {
    let c = s[*i];
    *i += 1;
    match c {
        b'b' => 8,
        b'f' => 12,
        b'n' => 10,
        b'r' => 13,
        b't' => 9,
        b'u' => {
            let h = |k: usize| hex(s[k]).unwrap_or(0);
            let mut cp = h(*i) << 12 | h(*i + 1) << 8 | h(*i + 2) << 4 | h(*i + 3);
            *i += 4;
            if (0xD800..=0xDBFF).contains(&cp) && s.len() - *i >= 6 && s[*i] == b'\\' && s[*i + 1] == b'u' {
                let lo = h(*i + 2) << 12 | h(*i + 3) << 8 | h(*i + 4) << 4 | h(*i + 5);
                if (0xDC00..=0xDFFF).contains(&lo) {
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    *i += 6;
                }
            }
            cp
        }
        other => other as u32,
    }
}

impl<'a> Value<'a> {
    /// The members of an object value (nothing for other kinds).
    pub fn members(&self) -> Members<'a> {
        match self.kind {
            Kind::Object => Members { s: &self.raw[..self.raw.len() - 1], i: 1 },
            _ => Members { s: &[], i: 0 },
        }
    }

    /// The elements of an array value (nothing for other kinds).
    pub fn elements(&self) -> Elements<'a> {
        match self.kind {
            Kind::Array => Elements { s: self.raw, i: 1 },
            _ => Elements { s: &[], i: 0 },
        }
    }

    /// Reports whether a string value decodes (escapes included) to exactly `name`. A lone
    /// surrogate escape matches nothing.
    pub fn string_is(&self, name: &str) -> bool {
        if self.kind != Kind::String {
            return false;
        }
        if !self.escaped {
            return &self.raw[1..self.raw.len() - 1] == name.as_bytes();
        }
        let s = &self.raw[..self.raw.len() - 1];
        let n = name.as_bytes();
        let (mut i, mut j) = (1, 0);
        while i < s.len() {
            if s[i] != b'\\' {
                if j >= n.len() || n[j] != s[i] {
                    return false;
                }
                i += 1;
                j += 1;
                continue;
            }
            i += 1;
            let cp = unescape(s, &mut i);
            let ch = match char::from_u32(cp) {
                Some(ch) => ch,
                None => return false,
            };
            let mut buf = [0u8; 4];
            let enc = ch.encode_utf8(&mut buf).as_bytes();
            if n.len() - j < enc.len() || &n[j..j + enc.len()] != enc {
                return false;
            }
            j += enc.len();
        }
        j == n.len()
    }

    /// Decodes a string value into `dst` (cleared first); lone surrogates become U+FFFD.
    pub fn decode_string(&self, dst: &mut Vec<u8>) {
        dst.clear();
        if self.kind != Kind::String {
            return;
        }
        let s = &self.raw[..self.raw.len() - 1];
        let mut i = 1;
        while i < s.len() {
            if s[i] != b'\\' {
                dst.push(s[i]);
                i += 1;
                continue;
            }
            i += 1;
            let ch = char::from_u32(unescape(s, &mut i)).unwrap_or('\u{FFFD}');
            let mut buf = [0u8; 4];
            dst.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
        }
    }

    /// Decodes a string value into a fixed buffer without allocating; returns the decoded
    /// length, which may exceed `dst.len()` (then `dst` holds the first bytes).
    pub fn decode_string_into(&self, dst: &mut [u8]) -> usize {
        if self.kind != Kind::String {
            return 0;
        }
        let s = &self.raw[..self.raw.len() - 1];
        let (mut i, mut n) = (1, 0);
        let mut put = |b: u8, n: &mut usize| {
            if *n < dst.len() {
                dst[*n] = b;
            }
            *n += 1;
        };
        while i < s.len() {
            if s[i] != b'\\' {
                put(s[i], &mut n);
                i += 1;
                continue;
            }
            i += 1;
            let ch = char::from_u32(unescape(s, &mut i)).unwrap_or('\u{FFFD}');
            let mut buf = [0u8; 4];
            for &b in ch.encode_utf8(&mut buf).as_bytes() {
                put(b, &mut n);
            }
        }
        n
    }

    /// The nearest double to a number value (correctly rounded; overflow gives ±inf), NaN for
    /// other kinds.
    pub fn number(&self) -> f64 {
        if self.kind != Kind::Number {
            return f64::NAN;
        }
        // A validated number token is ASCII.
        unsafe { std::str::from_utf8_unchecked(self.raw) }.parse::<f64>().unwrap_or(f64::NAN)
    }
}

/// One-pass scan of a text that should be a JSON object, from [`scan_object`]: an iterator over
/// its top-level members (name, value) that validates the text as it goes. Act on the members only
/// once the iteration has ended and [`ObjectScan::status`] is [`ScanStatus::Object`].
pub struct ObjectScan<'a> {
    s: &'a [u8],
    i: usize,
    max: usize,
    done: bool,
    status: ScanStatus,
}

/// The verdict of an [`ObjectScan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanStatus {
    /// A valid JSON text whose value is an object.
    Object,
    /// A valid JSON text whose value is not an object.
    NotObject,
    /// Not a valid JSON text.
    Invalid,
}

/// Starts a one-pass scan of `s` (see [`ObjectScan`]), with containers nested at most
/// `max_depth` levels.
pub fn scan_object(s: &[u8], max_depth: usize) -> ObjectScan<'_> {
    let mut sc = ObjectScan { s, i: 0, max: max_depth, done: true, status: ScanStatus::Invalid };
    let i = ws(s, 0);
    if i >= s.len() || s[i] != b'{' {
        if validate(s, max_depth) {
            sc.status = ScanStatus::NotObject;
        }
        return sc;
    }
    if max_depth < 1 {
        return sc;
    }
    let i = ws(s, i + 1);
    if i < s.len() && s[i] == b'}' {
        if ws(s, i + 1) == s.len() {
            sc.status = ScanStatus::Object;
        }
        return sc;
    }
    sc.i = i;
    sc.done = false;
    sc
}

impl<'a> ObjectScan<'a> {
    /// The verdict; final once the iteration has returned `None`.
    pub fn status(&self) -> ScanStatus {
        self.status
    }
}

impl<'a> Iterator for ObjectScan<'a> {
    type Item = (Value<'a>, Value<'a>);
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        self.done = true;
        let s = self.s;
        let mut i = self.i;
        if i >= s.len() || s[i] != b'"' {
            return None;
        }
        let (q, escaped) = v_string_esc(s, i + 1)?;
        let name = Value { kind: Kind::String, raw: &s[i..q], escaped };
        i = ws(s, q);
        if i >= s.len() || s[i] != b':' {
            return None;
        }
        i = ws(s, i + 1);
        let (q, escaped) = if i < s.len() && s[i] == b'"' { v_string_esc(s, i + 1)? } else { (v_value(s, i, 1, self.max)?, false) };
        let value = Value { kind: kind_of(s[i]), raw: &s[i..q], escaped };
        i = ws(s, q);
        match s.get(i) {
            Some(b',') => {
                self.i = ws(s, i + 1);
                self.done = false;
            }
            Some(b'}') => {
                if ws(s, i + 1) == s.len() {
                    self.status = ScanStatus::Object;
                }
            }
            _ => return None,
        }
        Some((name, value))
    }
}

/// Validates `s` and looks up a top-level member of the object: `Ok(Some(value))` (first
/// occurrence), `Ok(None)` (no such member) or `Err(())` (not valid JSON or not an object).
pub fn find<'a>(s: &'a [u8], name: &str) -> Result<Option<Value<'a>>, ()> {
    let mut sc = scan_object(s, MAX_DEPTH);
    let mut found = None;
    for (k, v) in &mut sc {
        if found.is_none() && k.string_is(name) {
            found = Some(v);
        }
    }
    match sc.status() {
        ScanStatus::Object => Ok(found),
        _ => Err(()),
    }
}
