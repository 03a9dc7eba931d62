// agg_probe: an aggregate module (ABI 1.1) written with the AssemblyScript SDK, for the
// cross-language aggregation test (transforms/validate_price/crosslang/agg_test.go). It behaves
// exactly like sdk/c/testdata/agg_probe.c, which describes the behaviour. It allocates nothing
// per call (the build uses the stub runtime, which never frees).
import { Record, Output, reason, JsonValue, jsonFind, jsonNumber, JSON_NUMBER, CODE_SCHEMA } from "../assembly/index";
import { aggregate, Slot, State, Emitter } from "../assembly/aggregate";
export {
  tf_abi_version, tf_meta, tf_reserve, tf_init, tf_process, tf_last_error, tf_agg_step, tf_agg_emit, tf_agg_merge,
} from "../assembly/aggregate";

const N = reason("n"), NOT_NUMBER = reason("n: missing or not a number");
const v = new JsonValue();
const buf = heap.alloc(1024); // emitted values
const stateBuf = heap.alloc(16);

@inline function p(b: ArrayBuffer): usize { return changetype<usize>(b); }

function putText(at: usize, s: ArrayBuffer): usize {
  memory.copy(at, p(s), s.byteLength);
  return at + s.byteLength;
}

function putU64(at: usize, x: u64): usize {
  const start = at;
  do {
    store<u8>(at++, 0x30 + <u8>(x % 10));
    x /= 10;
  } while (x);
  for (let i = start, j = at - 1; i < j; i++, j--) {
    const t = load<u8>(i);
    store<u8>(i, load<u8>(j));
    store<u8>(j, t);
  }
  return at;
}

function putI64(at: usize, x: i64): usize {
  if (x < 0) {
    store<u8>(at++, 0x2D);
    return putU64(at, <u64>0 - <u64>x);
  }
  return putU64(at, <u64>x);
}

const NULL_TEXT = reason("null");

/** The sum as the C probe's put_sum writes it. */
function putSum(at: usize, x: f64): usize {
  if (!(x > -1e18 && x < 1e18)) return putText(at, NULL_TEXT);
  if (x < 0) {
    store<u8>(at++, 0x2D);
    x = -x;
  }
  const ip = <u64>x;
  let f = x - <f64>ip;
  at = putU64(at, ip);
  if (f > 0) {
    store<u8>(at++, 0x2E);
    for (let k = 0; k < 17 && f > 0; k++) {
      f *= 10;
      const d = <i32>f;
      f -= <f64>d;
      store<u8>(at++, <u8>(0x30 + d));
    }
  }
  return at;
}

// The state {u64 count, f64 sum} of the last getState call; false for a bad state.
let count: u64 = 0;
let sum: f64 = 0;

function getState(ptr: usize, len: u32): bool {
  count = 0;
  sum = 0;
  if (len == 0) return true;
  if (len != 16) return false;
  count = load<u64>(ptr);
  sum = load<f64>(ptr, 8);
  return true;
}

function setState(st: State, c: u64, s: f64): void {
  store<u64>(stateBuf, c);
  store<f64>(stateBuf, s, 8);
  st.set(stateBuf, 16);
}

const NEG = reason('{"neg":');

function accumulate(slot: Slot, st: State, r: Record, out: Output): string | null {
  if (jsonFind(r.valuePtr, r.valueLen, N, v) != 1 || v.kind != JSON_NUMBER) {
    out.reject(CODE_SCHEMA, NOT_NUMBER);
    return null;
  }
  const n = jsonNumber(v);
  if (!getState(st.ptr, st.len)) return "agg_probe: state is not 16 bytes";
  setState(st, count + 1, sum + n);
  if (n < 0) {
    if (v.len > 72) return "agg_probe: number too long";
    let at = putText(buf, NEG);
    memory.copy(at, v.ptr, v.len);
    at += v.len;
    store<u8>(at++, 0x7D);
    out.emitInput(0);
    out.emit(1, buf, <u32>(at - buf));
  }
  return null;
}

const KEY = reason('{"key":'), START = reason(',"start":'), END = reason(',"end":');
const COUNT = reason(',"count":'), SUM = reason(',"sum":'), HEX = reason("0123456789abcdef");

function emit(slot: Slot, st: State, out: Emitter): string | null {
  if (!getState(st.ptr, st.len)) return "agg_probe: state is not 16 bytes";
  let at = putText(buf, KEY);
  if (slot.keyIsNull) {
    at = putText(at, NULL_TEXT);
  } else {
    if (slot.keyLen > 128) return "agg_probe: key over 128 bytes";
    store<u8>(at++, 0x22);
    for (let i: u32 = 0; i < slot.keyLen; i++) {
      const c = load<u8>(slot.keyPtr + i);
      if (c == 0x22 || c == 0x5C) {
        store<u8>(at++, 0x5C);
        store<u8>(at++, c);
      } else if (c < 0x20) {
        store<u8>(at++, 0x5C);
        store<u8>(at++, 0x75);
        store<u8>(at++, 0x30);
        store<u8>(at++, 0x30);
        store<u8>(at++, load<u8>(p(HEX) + (c >> 4)));
        store<u8>(at++, load<u8>(p(HEX) + (c & 15)));
      } else {
        store<u8>(at++, c);
      }
    }
    store<u8>(at++, 0x22);
  }
  at = putI64(putText(at, START), slot.windowStart);
  at = putI64(putText(at, END), slot.windowEnd);
  at = putU64(putText(at, COUNT), count);
  at = putSum(putText(at, SUM), sum);
  store<u8>(at++, 0x7D);
  out.emit(0, buf, <u32>(at - buf));
  return null;
}

function merge(slot: Slot, st: State, otherPtr: usize, otherLen: u32): string | null {
  if (!getState(st.ptr, st.len)) return "agg_probe: state is not 16 bytes";
  const c1 = count, s1 = sum;
  if (!getState(otherPtr, otherLen)) return "agg_probe: state is not 16 bytes";
  setState(st, c1 + count, s1 + sum);
  return null;
}

aggregate('{"name":"agg_probe","version":"0.0.1","abi":"1.1","kinds":["aggregate"],"ports":["main","alerts"],"state_version":1}',
  null, accumulate, emit, merge);
