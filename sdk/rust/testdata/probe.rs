//! probe: exercises every disposition of the Rust SDK for the cross-language SDK conformance
//! test (transforms/validate_price/crosslang). The record value is a command; see the Go test.
use sluice::{Output, Record, Transform};

struct Probe {
    fail: bool,
}

impl Transform for Probe {
    fn init(cfg: &[u8]) -> Result<Self, String> {
        match sluice::json::find(cfg, "fail") {
            Ok(Some(_)) => Err("probe: fail requested".into()),
            _ => Ok(Probe { fail: false }),
        }
    }

    fn end_batch(&mut self) -> Result<(), String> {
        if std::mem::replace(&mut self.fail, false) {
            return Err("probe: batch failed".into());
        }
        Ok(())
    }

    fn process(&mut self, r: &Record<'_>, out: &mut Output) {
        match r.value {
            b"pass" => {}
            b"failbatch" => self.fail = true,
            b"drop" => out.drop_record(),
            b"reject" => out.reject(7, "probe reject"),
            b"undo" => {
                out.reject(7, "x");
                out.pass();
            }
            b"emit" => {
                out.emit(0, b"one");
                out.emit(1, b"two");
            }
            b"key" => out.emit_record(0, Some(Some(b"k1")), b"keyed", Some(1234)),
            b"nullkey" => out.emit_record(0, Some(None), b"nokey", None),
            b"empty" => out.emit(0, b""),
            b"big" => out.emit(0, &vec![b'x'; 100_000]),
            b"time" => out.emit(0, r.ts_ms.unwrap_or(i64::MIN).to_string().as_bytes()),
            b"keyecho" => out.emit(0, r.key.unwrap_or(b"<null>")),
            b"headers" => {
                for (k, v) in r.headers() {
                    let mut b = k.to_vec();
                    b.push(b'=');
                    b.extend_from_slice(v);
                    out.emit(0, &b);
                }
            }
            v if v.len() > 4 && &v[..4] == b"num:" => {
                // the bits of the double nearest to the number token after "num:", in hex
                let x = sluice::json::Value { kind: sluice::json::Kind::Number, raw: &v[4..], escaped: false }.number();
                let bits = x.to_bits();
                let hex: Vec<u8> = (0..16).map(|i| b"0123456789abcdef"[((bits >> (60 - 4 * i)) & 15) as usize]).collect();
                out.emit(0, &hex);
            }
            _ => out.reject(8, "unknown command"),
        }
    }
}

sluice::export_transform!(
    Probe,
    r#"{"name":"probe","version":"0.0.1","abi":"1.0","kinds":["filter","flatmap","route"],"ports":["main","alerts"]}"#
);
