//! validate_price, Rust version: passes JSON objects with a valid commodity, price and ts and
//! rejects everything else with the codes and reasons of ../SPEC.md (byte for byte the same as
//! the Go, C and AssemblyScript versions). Build: make wasm-guests (see mk/wasm-guests.mk).

use sluice::json::{self, Kind, ScanStatus, Value};
use sluice::{Record, Reject, Validator};

const META: &str = concat!(
    r#"{"name":"validate_price","version":"1.0.0","abi":"1.0","kinds":["validate"],"ports":["main"],"#,
    r#""config_schema":{"type":"object","properties":{"max_price":{"type":"number","exclusiveMinimum":0}},"#,
    r#""additionalProperties":false}}"#
);

const MAX_PREFIX: &str = "price: must be at most ";

struct ValidatePrice {
    max: f64,
    /// "price: must be at most " + MAXTEXT (the config's number token, verbatim).
    max_reason: String,
}

sluice::export_validator!(ValidatePrice, META);

impl Validator for ValidatePrice {
    /// SPEC section 1.
    fn init(cfg: &[u8]) -> Result<Self, String> {
        let mut v = ValidatePrice { max: 1e9, max_reason: String::from(MAX_PREFIX) + "1000000000" };
        if cfg.iter().all(|&c| c == b' ' || c == b'\t' || c == b'\n' || c == b'\r') {
            return Ok(v);
        }
        if !json::validate(cfg, json::MAX_DEPTH) {
            return Err("config: not valid JSON".into());
        }
        let root = json::root(cfg);
        match root.kind {
            Kind::Null => return Ok(v),
            Kind::Object => {}
            _ => return Err("config: must be a JSON object".into()),
        }
        for (k, val) in root.members() {
            if !k.string_is("max_price") {
                return Err("config: unknown key (the only key is max_price)".into());
            }
            if val.kind != Kind::Number {
                return Err("config: max_price must be a number".into());
            }
            let m = val.number();
            if !(m > 0.0) || m.is_infinite() {
                return Err("config: max_price must be a finite number greater than 0".into());
            }
            v.max = m;
            // A number token is ASCII.
            v.max_reason = String::from(MAX_PREFIX) + std::str::from_utf8(val.raw).unwrap_or("");
        }
        Ok(v)
    }

    /// SPEC section 2.
    fn validate<'s>(&'s self, rec: &Record<'_>) -> Result<(), Reject<'s>> {
        let mut scan = json::scan_object(rec.value, json::MAX_DEPTH);
        let mut found: [(u32, Option<Value<'_>>); 3] = [(0, None), (0, None), (0, None)];
        for (k, v) in &mut scan {
            let slot = if k.string_is("commodity") {
                0
            } else if k.string_is("price") {
                1
            } else if k.string_is("ts") {
                2
            } else {
                continue;
            };
            found[slot].0 += 1;
            found[slot].1 = Some(v);
        }
        match scan.status() {
            ScanStatus::Object => {}
            ScanStatus::Invalid => return Err(Reject::invalid("not valid JSON")),
            ScanStatus::NotObject => return Err(Reject::invalid("not a JSON object")),
        }
        let [commodity, price, ts] = found;

        let commodity = match commodity {
            (0, _) => return Err(Reject::schema("commodity: missing")),
            (1, Some(v)) => v,
            _ => return Err(Reject::schema("commodity: duplicate key")),
        };
        if commodity.kind != Kind::String || commodity.raw.len() == 2 {
            return Err(Reject::schema("commodity: must be a non-empty string"));
        }

        let price = match price {
            (0, _) => return Err(Reject::schema("price: missing")),
            (1, Some(v)) => v,
            _ => return Err(Reject::schema("price: duplicate key")),
        };
        if price.kind != Kind::Number {
            return Err(Reject::schema("price: must be a number"));
        }
        let x = price.number();
        if !(x > 0.0) {
            return Err(Reject::range("price: must be greater than 0"));
        }
        if !(x <= self.max) {
            return Err(Reject::range(&self.max_reason));
        }

        let ts = match ts {
            (0, _) => return Err(Reject::schema("ts: missing")),
            (1, Some(v)) => v,
            _ => return Err(Reject::schema("ts: duplicate key")),
        };
        let ok = match ts.kind {
            Kind::Number => epoch_millis(ts.raw),
            Kind::String => rfc3339(&ts),
            _ => false,
        };
        if !ok {
            return Err(Reject::schema("ts: must be an RFC 3339 string or epoch milliseconds"));
        }
        Ok(())
    }
}

/// SPEC section 6, on a number token.
fn epoch_millis(tok: &[u8]) -> bool {
    let (neg, digits) = match tok.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, tok),
    };
    if digits.len() > 15 {
        return false;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return false;
        }
        v = v * 10 + (c - b'0') as u64;
    }
    !(neg && v != 0) && v <= 253_402_300_799_999
}

fn days_in(year: u32, month: u32) -> u32 {
    match month {
        2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn num(s: &[u8]) -> Option<u32> {
    let mut v = 0;
    for &c in s {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

/// SPEC section 5, on a string value.
fn rfc3339(tok: &Value<'_>) -> bool {
    let mut buf = [0u8; 40];
    let raw = &tok.raw[1..tok.raw.len() - 1];
    let s = if tok.escaped {
        let n = tok.decode_string_into(&mut buf);
        &buf[..n.min(buf.len())]
    } else {
        raw
    };
    if !(20..=35).contains(&s.len()) {
        return false;
    }
    if !s.is_ascii() {
        return false;
    }
    let (year, month, day, hour, minute, sec) =
        match (num(&s[0..4]), num(&s[5..7]), num(&s[8..10]), num(&s[11..13]), num(&s[14..16]), num(&s[17..19])) {
            (Some(a), Some(b), Some(c), Some(d), Some(e), Some(f)) => (a, b, c, d, e, f),
            _ => return false,
        };
    if s[4] != b'-' || s[7] != b'-' || (s[10] != b'T' && s[10] != b't') || s[13] != b':' || s[16] != b':' {
        return false;
    }
    if !(1..=12).contains(&month) || day < 1 || day > days_in(year, month) || hour > 23 || minute > 59 || sec > 59 {
        return false;
    }
    let mut r = &s[19..];
    if r[0] == b'.' {
        let d = r[1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if d == 0 || d > 9 {
            return false;
        }
        r = &r[1 + d..];
    }
    match r {
        [b'Z'] | [b'z'] => true,
        [sign, h1, h2, b':', m1, m2] if *sign == b'+' || *sign == b'-' => match (num(&[*h1, *h2]), num(&[*m1, *m2])) {
            (Some(oh), Some(om)) => oh <= 23 && om <= 59,
            _ => false,
        },
        _ => false,
    }
}
