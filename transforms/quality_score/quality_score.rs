//! quality_score: scores each JSON object record by weighted checks of its fields, adds the score
//! as a field, rejects a record whose score is below the threshold or that fails a required
//! check, with every failed check in the reason. README.md says what each check does.
//! Build: make wasm-guests (see mk/wasm-guests.mk).

use sluice::json::{self, Kind, ScanStatus, Value};
use sluice::{Output, Record, Transform};

const META: &str = concat!(
    r#"{"name":"quality_score","version":"1.0.0","abi":"1.0","kinds":["validate","map"],"ports":["main"],"#,
    r#""config_schema":{"type":"object","required":["checks"],"properties":{"#,
    r#""threshold":{"type":"number","minimum":0,"maximum":1},"#,
    r#""output":{"type":"string","minLength":1},"#,
    r#""decimal":{"enum":[".",","]},"#,
    r#""checks":{"type":"array","minItems":1,"items":{"type":"object","required":["field"],"properties":{"#,
    r#""field":{"type":"string","minLength":1},"check":{"enum":["present","text","number"]},"#,
    r#""weight":{"type":"number","exclusiveMinimum":0},"required":{"type":"boolean"},"#,
    r#""min":{"type":"number"},"max":{"type":"number"},"#,
    r#""min_length":{"type":"integer","minimum":0},"max_length":{"type":"integer","minimum":0}},"#,
    r#""additionalProperties":false}}},"additionalProperties":false}}"#
);

#[derive(Clone, Copy, PartialEq)]
enum CheckKind {
    Present,
    Text,
    Number,
}

struct Check {
    field: String,
    kind: CheckKind,
    weight: f64,
    required: bool,
    min: f64,
    max: f64,
    min_len: usize,
    max_len: usize,
}

struct QualityScore {
    checks: Vec<Check>,
    threshold: f64,
    output: String,
    /// The decimal separator of numbers written in text.
    decimal: u8,
    total: f64,
    // Per-record scratch, kept to avoid allocating per record.
    found: Vec<(u32, Option<(usize, usize)>)>,
    out: Vec<u8>,
    reason: String,
    text: Vec<u8>,
}

sluice::export_transform!(QualityScore, META);

fn cfg_number(v: &Value<'_>, what: &str) -> Result<f64, String> {
    if v.kind != Kind::Number {
        return Err(format!("config: {} must be a number", what));
    }
    let x = v.number();
    if !x.is_finite() {
        return Err(format!("config: {} must be a finite number", what));
    }
    Ok(x)
}

fn cfg_string(v: &Value<'_>, what: &str) -> Result<String, String> {
    if v.kind != Kind::String {
        return Err(format!("config: {} must be a string", what));
    }
    let mut b = Vec::new();
    v.decode_string(&mut b);
    String::from_utf8(b).map_err(|_| format!("config: {} is not valid UTF-8", what))
}

fn parse_check(v: &Value<'_>, i: usize) -> Result<Check, String> {
    if v.kind != Kind::Object {
        return Err(format!("config: checks[{}] must be an object", i));
    }
    let mut c = Check {
        field: String::new(),
        kind: CheckKind::Present,
        weight: 1.0,
        required: false,
        min: f64::NEG_INFINITY,
        max: f64::INFINITY,
        min_len: 0,
        max_len: usize::MAX,
    };
    let mut has_bounds = false;
    let mut has_lengths = false;
    for (k, val) in v.members() {
        let name = cfg_string(&k, "a key")?;
        let what = format!("checks[{}].{}", i, name);
        match name.as_str() {
            "field" => c.field = cfg_string(&val, &what)?,
            "check" => {
                c.kind = match cfg_string(&val, &what)?.as_str() {
                    "present" => CheckKind::Present,
                    "text" => CheckKind::Text,
                    "number" => CheckKind::Number,
                    _ => return Err(format!("config: {} must be present, text or number", what)),
                }
            }
            "weight" => {
                c.weight = cfg_number(&val, &what)?;
                if !(c.weight > 0.0) {
                    return Err(format!("config: {} must be greater than 0", what));
                }
            }
            "required" => {
                c.required = match val.kind {
                    Kind::True => true,
                    Kind::False => false,
                    _ => return Err(format!("config: {} must be true or false", what)),
                }
            }
            "min" => {
                c.min = cfg_number(&val, &what)?;
                has_bounds = true;
            }
            "max" => {
                c.max = cfg_number(&val, &what)?;
                has_bounds = true;
            }
            "min_length" | "max_length" => {
                let x = cfg_number(&val, &what)?;
                if !(x >= 0.0) || x.fract() != 0.0 || x > 1e9 {
                    return Err(format!("config: {} must be a whole number of at least 0", what));
                }
                if name == "min_length" {
                    c.min_len = x as usize;
                } else {
                    c.max_len = x as usize;
                }
                has_lengths = true;
            }
            _ => {
                return Err(format!(
                    "config: unknown key {} (the keys of a check are field, check, weight, required, min, max, min_length, max_length)",
                    what
                ))
            }
        }
    }
    if c.field.is_empty() {
        return Err(format!("config: checks[{}].field is missing or empty", i));
    }
    if has_bounds && c.kind != CheckKind::Number {
        return Err(format!("config: checks[{}] ({}): min and max need check: number", i, c.field));
    }
    if has_lengths && c.kind != CheckKind::Text {
        return Err(format!("config: checks[{}] ({}): min_length and max_length need check: text", i, c.field));
    }
    if c.min > c.max {
        return Err(format!("config: checks[{}] ({}): min is above max", i, c.field));
    }
    if c.min_len > c.max_len {
        return Err(format!("config: checks[{}] ({}): min_length is above max_length", i, c.field));
    }
    Ok(c)
}

impl Transform for QualityScore {
    fn init(cfg: &[u8]) -> Result<Self, String> {
        let mut q = QualityScore {
            checks: Vec::new(),
            threshold: 0.0,
            output: String::from("quality"),
            decimal: b'.',
            total: 0.0,
            found: Vec::new(),
            out: Vec::new(),
            reason: String::new(),
            text: Vec::new(),
        };
        if !json::validate(cfg, json::MAX_DEPTH) {
            return Err("config: not valid JSON (it needs at least checks: [{field: ...}])".into());
        }
        let root = json::root(cfg);
        if root.kind != Kind::Object {
            return Err("config: must be a JSON object with checks: [{field: ...}]".into());
        }
        let mut seen_checks = false;
        for (k, val) in root.members() {
            let name = cfg_string(&k, "a key")?;
            match name.as_str() {
                "threshold" => {
                    q.threshold = cfg_number(&val, "threshold")?;
                    if !(0.0..=1.0).contains(&q.threshold) {
                        return Err("config: threshold must be between 0 and 1".into());
                    }
                }
                "output" => {
                    q.output = cfg_string(&val, "output")?;
                    if q.output.is_empty() {
                        return Err("config: output must not be empty".into());
                    }
                }
                "decimal" => {
                    q.decimal = match cfg_string(&val, "decimal")?.as_str() {
                        "." => b'.',
                        "," => b',',
                        _ => return Err("config: decimal must be \".\" or \",\"".into()),
                    }
                }
                "checks" => {
                    if val.kind != Kind::Array {
                        return Err("config: checks must be a list of {field, check, ...}".into());
                    }
                    for (i, c) in val.elements().enumerate() {
                        q.checks.push(parse_check(&c, i)?);
                    }
                    seen_checks = true;
                }
                _ => {
                    return Err(format!(
                        "config: unknown key {} (the keys are checks, threshold, output, decimal)",
                        name
                    ))
                }
            }
        }
        if !seen_checks || q.checks.is_empty() {
            return Err("config: checks is missing or empty: list the fields to score, like checks: [{field: price, check: number, min: 1}]".into());
        }
        for (i, c) in q.checks.iter().enumerate() {
            if c.field == q.output {
                return Err(format!("config: checks[{}] scores the output field {}", i, q.output));
            }
        }
        q.total = q.checks.iter().map(|c| c.weight).sum();
        Ok(q)
    }

    fn process(&mut self, rec: &Record<'_>, out: &mut Output) {
        let base = rec.value.as_ptr() as usize;
        let span = |v: &Value<'_>| {
            let start = v.raw.as_ptr() as usize - base;
            (start, start + v.raw.len())
        };
        self.found.clear();
        self.found.resize(self.checks.len() + 1, (0, None));
        let mut scan = json::scan_object(rec.value, json::MAX_DEPTH);
        let mut members = 0;
        for (k, v) in &mut scan {
            members += 1;
            if k.string_is(&self.output) {
                let n = self.checks.len();
                self.found[n].0 += 1;
                self.found[n].1 = Some(span(&v));
                continue;
            }
            for (i, c) in self.checks.iter().enumerate() {
                if k.string_is(&c.field) {
                    self.found[i].0 += 1;
                    self.found[i].1 = Some(span(&v));
                }
            }
        }
        match scan.status() {
            ScanStatus::Object => {}
            ScanStatus::Invalid => return out.reject(1, "not valid JSON"),
            ScanStatus::NotObject => return out.reject(1, "not a JSON object"),
        }
        if self.found[self.checks.len()].0 > 1 {
            let r = format!("{}: duplicate key", self.output);
            return out.reject(2, &r);
        }

        // Each check: passed, or the reason it failed; numbers found in text are rewritten.
        self.reason.clear();
        let mut required_failed = false;
        let mut score = 0.0;
        // (start, end, replacement) of the values rewritten as numbers, in member order.
        let mut rewrites: Vec<(usize, usize, String)> = Vec::new();
        for i in 0..self.checks.len() {
            let c = &self.checks[i];
            let verdict = match self.found[i] {
                (0, _) => Err(String::from("missing")),
                (1, Some((s, e))) => {
                    let v = value_at(rec.value, s, e);
                    check(c, &v, self.decimal, &mut self.text).map(|rw| {
                        if let Some(n) = rw {
                            rewrites.push((s, e, n));
                        }
                    })
                }
                _ => Err(String::from("duplicate key")),
            };
            match verdict {
                Ok(()) => score += c.weight,
                Err(why) => {
                    if c.required {
                        required_failed = true;
                    }
                    if !self.reason.is_empty() {
                        self.reason.push_str("; ");
                    }
                    self.reason.push_str(&c.field);
                    self.reason.push_str(": ");
                    self.reason.push_str(&why);
                    if c.required {
                        self.reason.push_str(" (required)");
                    }
                }
            }
        }
        let score = (score / self.total * 1000.0).round() / 1000.0;
        let score_text = format_score(score);
        if required_failed {
            let r = format!("quality {}: {}", score_text, self.reason);
            return out.reject(2, &r);
        }
        if score < self.threshold {
            let r = format!("quality {} below {}: {}", score_text, format_score(self.threshold), self.reason);
            return out.reject(3, &r);
        }

        // The record with its rewritten numbers and the score.
        let v = rec.value;
        self.out.clear();
        let mut at = 0;
        if let (_, Some((s, e))) = self.found[self.checks.len()] {
            rewrites.push((s, e, score_text.clone()));
        }
        rewrites.sort_by_key(|r| r.0); // checks come in config order, members in record order
        for (s, e, n) in &rewrites {
            self.out.extend_from_slice(&v[at..*s]);
            self.out.extend_from_slice(n.as_bytes());
            at = *e;
        }
        if self.found[self.checks.len()].0 == 1 {
            self.out.extend_from_slice(&v[at..]);
        } else {
            let close = v.iter().rposition(|&b| b == b'}').unwrap_or(v.len());
            self.out.extend_from_slice(&v[at..close]);
            if members > 0 {
                self.out.push(b',');
            }
            self.out.push(b'"');
            push_escaped(&mut self.out, &self.output);
            self.out.extend_from_slice(b"\":");
            self.out.extend_from_slice(score_text.as_bytes());
            self.out.extend_from_slice(&v[close..]);
        }
        out.emit(0, &self.out);
    }
}

/// The value spanning value[s..e], re-scanned (a member value found by the object scan).
fn value_at(value: &[u8], s: usize, e: usize) -> Value<'_> {
    let raw = &value[s..e];
    let kind = match raw[0] {
        b'{' => Kind::Object,
        b'[' => Kind::Array,
        b'"' => Kind::String,
        b't' => Kind::True,
        b'f' => Kind::False,
        b'n' => Kind::Null,
        _ => Kind::Number,
    };
    Value { kind, raw, escaped: kind == Kind::String && raw.contains(&b'\\') }
}

/// Runs one check on a value: Ok with the number text to write in place of a string holding a
/// number, or the reason it failed.
fn check(c: &Check, v: &Value<'_>, decimal: u8, text: &mut Vec<u8>) -> Result<Option<String>, String> {
    match v.kind {
        Kind::Null => return Err("missing".into()),
        Kind::String => {
            v.decode_string(text);
            if text.iter().all(|b| b.is_ascii_whitespace()) {
                return Err("empty".into());
            }
        }
        _ => {}
    }
    match c.kind {
        CheckKind::Present => Ok(None),
        CheckKind::Text => {
            if v.kind != Kind::String {
                return Err("must be text".into());
            }
            let s = std::str::from_utf8(text).unwrap_or("");
            let n = s.trim().chars().count();
            if n < c.min_len {
                return Err(format!("shorter than {} characters", c.min_len));
            }
            if n > c.max_len {
                return Err(format!("longer than {} characters", c.max_len));
            }
            Ok(None)
        }
        CheckKind::Number => {
            let (x, rewrite) = match v.kind {
                Kind::Number => (v.number(), None),
                Kind::String => match number_in_text(text, decimal) {
                    Some(tok) => (tok.parse::<f64>().unwrap_or(f64::NAN), Some(tok)),
                    None => return Err("no number in the text".into()),
                },
                _ => return Err("must be a number".into()),
            };
            if !x.is_finite() {
                return Err("out of the range of a double".into());
            }
            if x < c.min {
                return Err(format!("below {}", format_bound(c.min)));
            }
            if x > c.max {
                return Err(format!("above {}", format_bound(c.max)));
            }
            Ok(rewrite)
        }
    }
}

/// The first number written in text (`€1,250/month`, `65.5 m²`, `3 rooms`, `-2`) as a JSON
/// number token: digits with group separators (`,` `'` and spaces, or `.` `'` and spaces when the
/// decimal separator is `,`) left out, and the decimal separator as `.`.
fn number_in_text(text: &[u8], decimal: u8) -> Option<String> {
    let first = text.iter().position(|b| b.is_ascii_digit())?;
    let group = if decimal == b'.' { b',' } else { b'.' };
    let mut int = String::new();
    let mut frac = String::new();
    let mut in_frac = false;
    let mut i = first;
    while i < text.len() {
        let b = text[i];
        let next_digit = i + 1 < text.len() && text[i + 1].is_ascii_digit();
        if b.is_ascii_digit() {
            if in_frac {
                frac.push(b as char);
            } else {
                int.push(b as char);
            }
        } else if (b == group || b == b'\'' || b == b' ') && !in_frac && next_digit {
            // a group separator between digits
        } else if b == decimal && !in_frac && next_digit {
            in_frac = true;
        } else {
            break;
        }
        i += 1;
    }
    let int = int.trim_start_matches('0');
    let mut tok = String::new();
    if first > 0 && text[first - 1] == b'-' {
        tok.push('-');
    }
    tok.push_str(if int.is_empty() { "0" } else { int });
    let frac = frac.trim_end_matches('0');
    if !frac.is_empty() {
        tok.push('.');
        tok.push_str(frac);
    }
    if tok == "-0" {
        tok = String::from("0");
    }
    Some(tok)
}

/// A score in [0, 1] with at most three decimals, shortest form: 1, 0.9, 0.625.
fn format_score(x: f64) -> String {
    let m = (x * 1000.0).round() as i64;
    if m >= 1000 {
        return String::from("1");
    }
    if m <= 0 {
        return String::from("0");
    }
    let mut s = format!("0.{:03}", m);
    while s.ends_with('0') {
        s.pop();
    }
    s
}

/// A bound from the config as written in a reason: whole numbers without decimals.
fn format_bound(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{}", x)
    }
}

fn push_escaped(out: &mut Vec<u8>, s: &str) {
    for ch in s.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
}
