//! agg_probe: an aggregate module (ABI 1.1) written with the Rust SDK, for the cross-language
//! aggregation test (transforms/validate_price/crosslang/agg_test.go). It behaves exactly like
//! sdk/c/testdata/agg_probe.c, which describes the behaviour.
use sluice::json::{self, Kind};
use sluice::{Aggregate, Emitter, Output, Record, Slot, State};

struct Probe;

/// Reads a state blob {u64 count, f64 sum}: empty is a new slot, anything but 16 bytes is an error.
fn get_state(b: &[u8]) -> Result<(u64, f64), String> {
    match b.len() {
        0 => Ok((0, 0.0)),
        16 => Ok((
            u64::from_le_bytes(b[0..8].try_into().unwrap()),
            f64::from_le_bytes(b[8..16].try_into().unwrap()),
        )),
        _ => Err("agg_probe: state is not 16 bytes".into()),
    }
}

fn set_state(state: &mut State<'_>, count: u64, sum: f64) {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&count.to_le_bytes());
    b[8..16].copy_from_slice(&sum.to_le_bytes());
    state.set(&b);
}

/// The sum as the C probe's put_sum writes it.
fn put_sum(b: &mut Vec<u8>, mut x: f64) {
    if !(x > -1e18 && x < 1e18) {
        b.extend_from_slice(b"null");
        return;
    }
    if x < 0.0 {
        b.push(b'-');
        x = -x;
    }
    let ip = x as u64;
    let mut f = x - ip as f64;
    b.extend_from_slice(ip.to_string().as_bytes());
    if f > 0.0 {
        b.push(b'.');
        let mut k = 0;
        while k < 17 && f > 0.0 {
            f *= 10.0;
            let d = f as i32;
            f -= d as f64;
            b.push(b'0' + d as u8);
            k += 1;
        }
    }
}

impl Aggregate for Probe {
    fn init(_config: &[u8]) -> Result<Self, String> {
        Ok(Probe)
    }

    fn accumulate(&mut self, _slot: &Slot<'_>, state: &mut State<'_>, r: &Record<'_>, out: &mut Output) -> Result<(), String> {
        let v = match json::find(r.value, "n") {
            Ok(Some(v)) if v.kind == Kind::Number => v,
            _ => {
                out.reject(2, "n: missing or not a number");
                return Ok(());
            }
        };
        let n = v.number();
        let (count, sum) = get_state(state.get())?;
        set_state(state, count + 1, sum + n);
        if n < 0.0 {
            if v.raw.len() > 72 {
                return Err("agg_probe: number too long".into());
            }
            let mut b = b"{\"neg\":".to_vec();
            b.extend_from_slice(v.raw);
            b.push(b'}');
            out.emit_input(0);
            out.emit(1, &b);
        }
        Ok(())
    }

    fn emit(&mut self, slot: &Slot<'_>, state: &mut State<'_>, out: &mut Emitter) -> Result<(), String> {
        let (count, sum) = get_state(state.get())?;
        let mut b = b"{\"key\":".to_vec();
        match slot.key {
            None => b.extend_from_slice(b"null"),
            Some(k) => {
                if k.len() > 128 {
                    return Err("agg_probe: key over 128 bytes".into());
                }
                b.push(b'"');
                for &c in k {
                    if c == b'"' || c == b'\\' {
                        b.push(b'\\');
                        b.push(c);
                    } else if c < 0x20 {
                        b.extend_from_slice(format!("\\u{:04x}", c).as_bytes());
                    } else {
                        b.push(c);
                    }
                }
                b.push(b'"');
            }
        }
        b.extend_from_slice(
            format!(",\"start\":{},\"end\":{},\"count\":{},\"sum\":", slot.window_start, slot.window_end, count).as_bytes(),
        );
        put_sum(&mut b, sum);
        b.push(b'}');
        out.emit(0, &b);
        Ok(())
    }

    fn merge(&mut self, _slot: &Slot<'_>, state: &mut State<'_>, other: &[u8]) -> Result<(), String> {
        let (c1, s1) = get_state(state.get())?;
        let (c2, s2) = get_state(other)?;
        set_state(state, c1 + c2, s1 + s2);
        Ok(())
    }
}

sluice::export_aggregate!(
    Probe,
    r#"{"name":"agg_probe","version":"0.0.1","abi":"1.1","kinds":["aggregate"],"ports":["main","alerts"],"state_version":1}"#
);
