// validate_price, AssemblyScript version: passes JSON objects with a valid commodity, price and ts
// and rejects everything else with the codes and reasons of ../SPEC.md (byte for byte the same as
// the Go, Rust and C versions). Build: make wasm-guests (see mk/wasm-guests.mk).
// Nothing here allocates per record: reasons are UTF-8 encoded once, values are read in place.

import {
  Record, Output, register, reason,
  JsonValue, JsonIter, JsonObjectScan, jsonValidate, jsonRoot, jsonMembers, jsonNext, jsonStringIs, jsonStringDecode,
  jsonNumber, JSON_MAX_DEPTH, JSON_OBJECT, JSON_NULL, JSON_STRING, JSON_NUMBER,
  CODE_INVALID_INPUT, CODE_SCHEMA, CODE_RANGE,
} from "../../../sdk/assemblyscript/assembly/index";
export {
  tf_abi_version, tf_meta, tf_reserve, tf_init, tf_process, tf_last_error,
} from "../../../sdk/assemblyscript/assembly/index";

const META = '{"name":"validate_price","version":"1.0.0","abi":"1.0","kinds":["validate"],"ports":["main"],' +
  '"config_schema":{"type":"object","properties":{"max_price":{"type":"number","exclusiveMinimum":0}},' +
  '"additionalProperties":false}}';

const R_NOT_JSON = reason("not valid JSON");
const R_NOT_OBJECT = reason("not a JSON object");
const R_COMMODITY_MISSING = reason("commodity: missing");
const R_COMMODITY_DUP = reason("commodity: duplicate key");
const R_COMMODITY_TYPE = reason("commodity: must be a non-empty string");
const R_PRICE_MISSING = reason("price: missing");
const R_PRICE_DUP = reason("price: duplicate key");
const R_PRICE_TYPE = reason("price: must be a number");
const R_PRICE_POSITIVE = reason("price: must be greater than 0");
const R_TS_MISSING = reason("ts: missing");
const R_TS_DUP = reason("ts: duplicate key");
const R_TS_INVALID = reason("ts: must be an RFC 3339 string or epoch milliseconds");

const N_COMMODITY = reason("commodity");
const N_PRICE = reason("price");
const N_TS = reason("ts");
const N_MAX_PRICE = reason("max_price");

const MAX_PREFIX = "price: must be at most ";

let maxPrice: f64 = 1e9;
// "price: must be at most " + MAXTEXT (the config's number token, verbatim), UTF-8.
let maxReason: ArrayBuffer = reason(MAX_PREFIX + "1000000000");

const root = new JsonValue();
const name = new JsonValue();
const value = new JsonValue();
const commodity = new JsonValue();
const price = new JsonValue();
const ts = new JsonValue();
const iter = new JsonIter();
const scan = new JsonObjectScan();
const tsBuf = heap.alloc(40);

/** SPEC section 1. */
function init(ptr: usize, len: u32): string | null {
  maxPrice = 1e9;
  maxReason = reason(MAX_PREFIX + "1000000000");
  let allWs = true;
  for (let i: u32 = 0; i < len; i++) {
    const c = load<u8>(ptr + i);
    if (c != 0x20 && c != 0x09 && c != 0x0A && c != 0x0D) { allWs = false; break; }
  }
  if (allWs) return null;
  if (!jsonValidate(ptr, len, JSON_MAX_DEPTH)) return "config: not valid JSON";
  jsonRoot(ptr, len, root);
  if (root.kind == JSON_NULL) return null;
  if (root.kind != JSON_OBJECT) return "config: must be a JSON object";
  jsonMembers(iter, root);
  while (jsonNext(iter, name, value)) {
    if (!jsonStringIs(name, N_MAX_PRICE)) return "config: unknown key (the only key is max_price)";
    if (value.kind != JSON_NUMBER) return "config: max_price must be a number";
    const m = jsonNumber(value);
    if (!(m > 0) || !isFinite(m)) return "config: max_price must be a finite number greater than 0";
    maxPrice = m;
    const prefix = String.UTF8.encode(MAX_PREFIX);
    const r = new ArrayBuffer(prefix.byteLength + <i32>value.len);
    memory.copy(changetype<usize>(r), changetype<usize>(prefix), prefix.byteLength);
    memory.copy(changetype<usize>(r) + prefix.byteLength, value.ptr, value.len);
    maxReason = r;
  }
  return null;
}

function daysIn(year: i32, month: i32): i32 {
  if (month == 2) return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28;
  if (month == 4 || month == 6 || month == 9 || month == 11) return 30;
  return 31;
}

// n ASCII digits at p as a number, or -1.
function digits(p: usize, n: i32): i32 {
  let v = 0;
  for (let i = 0; i < n; i++) {
    const c = <i32>load<u8>(p + i) - 0x30;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** SPEC section 5, on a string value. */
function rfc3339(v: JsonValue): bool {
  let s = v.ptr + 1;
  let n = v.len - 2;
  if (v.escaped) { // decode first
    n = jsonStringDecode(v, tsBuf, 40);
    s = tsBuf;
  }
  if (n < 20 || n > 35) return false;
  for (let i: u32 = 0; i < n; i++) if (load<u8>(s + i) >= 0x80) return false;
  const year = digits(s, 4), month = digits(s + 5, 2), day = digits(s + 8, 2);
  const hour = digits(s + 11, 2), minute = digits(s + 14, 2), sec = digits(s + 17, 2);
  if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || sec < 0) return false;
  const t = load<u8>(s, 10);
  if (load<u8>(s, 4) != 0x2D || load<u8>(s, 7) != 0x2D || (t != 0x54 && t != 0x74) ||
      load<u8>(s, 13) != 0x3A || load<u8>(s, 16) != 0x3A) return false;
  if (month < 1 || month > 12 || day < 1 || day > daysIn(year, month) || hour > 23 || minute > 59 || sec > 59) return false;
  let r = s + 19;
  const e = s + n;
  if (load<u8>(r) == 0x2E) {
    r++;
    const d = r;
    while (r < e && load<u8>(r) >= 0x30 && load<u8>(r) <= 0x39) r++;
    if (r == d || r - d > 9) return false;
  }
  const rest = e - r;
  if (rest == 1) return load<u8>(r) == 0x5A || load<u8>(r) == 0x7A;
  if (rest == 6 && (load<u8>(r) == 0x2B || load<u8>(r) == 0x2D) && load<u8>(r, 3) == 0x3A) {
    const oh = digits(r + 1, 2), om = digits(r + 4, 2);
    return oh >= 0 && om >= 0 && oh <= 23 && om <= 59;
  }
  return false;
}

/** SPEC section 6, on a number token. */
function epochMillis(v: JsonValue): bool {
  let p = v.ptr;
  const e = v.ptr + v.len;
  const neg = load<u8>(p) == 0x2D;
  if (neg) p++;
  if (e - p > 15) return false;
  let x: u64 = 0;
  while (p < e) {
    const c = <u32>load<u8>(p) - 0x30;
    if (c > 9) return false;
    x = x * 10 + c;
    p++;
  }
  if (neg && x != 0) return false;
  return x <= 253402300799999;
}

/** SPEC section 2. */
function check(rec: Record, out: Output): void {
  let nc = 0, np = 0, nt = 0;
  scan.begin(rec.valuePtr, rec.valueLen, JSON_MAX_DEPTH);
  while (scan.next(name, value)) {
    if (jsonStringIs(name, N_COMMODITY)) { nc++; copy(commodity, value); }
    else if (jsonStringIs(name, N_PRICE)) { np++; copy(price, value); }
    else if (jsonStringIs(name, N_TS)) { nt++; copy(ts, value); }
  }
  if (scan.status == 0) { out.reject(CODE_INVALID_INPUT, R_NOT_JSON); return; }
  if (scan.status < 0) { out.reject(CODE_INVALID_INPUT, R_NOT_OBJECT); return; }
  if (nc == 0) { out.reject(CODE_SCHEMA, R_COMMODITY_MISSING); return; }
  if (nc > 1) { out.reject(CODE_SCHEMA, R_COMMODITY_DUP); return; }
  if (commodity.kind != JSON_STRING || commodity.len == 2) { out.reject(CODE_SCHEMA, R_COMMODITY_TYPE); return; }
  if (np == 0) { out.reject(CODE_SCHEMA, R_PRICE_MISSING); return; }
  if (np > 1) { out.reject(CODE_SCHEMA, R_PRICE_DUP); return; }
  if (price.kind != JSON_NUMBER) { out.reject(CODE_SCHEMA, R_PRICE_TYPE); return; }
  const x = jsonNumber(price);
  if (!(x > 0)) { out.reject(CODE_RANGE, R_PRICE_POSITIVE); return; }
  if (!(x <= maxPrice)) { out.reject(CODE_RANGE, maxReason); return; }
  if (nt == 0) { out.reject(CODE_SCHEMA, R_TS_MISSING); return; }
  if (nt > 1) { out.reject(CODE_SCHEMA, R_TS_DUP); return; }
  const ok = (ts.kind == JSON_NUMBER && epochMillis(ts)) || (ts.kind == JSON_STRING && rfc3339(ts));
  if (!ok) out.reject(CODE_SCHEMA, R_TS_INVALID);
}

@inline function copy(dst: JsonValue, src: JsonValue): void {
  dst.kind = src.kind;
  dst.ptr = src.ptr;
  dst.len = src.len;
  dst.escaped = src.escaped;
}

register(META, init, check);
