// probe: exercises every disposition of the AssemblyScript SDK for the cross-language SDK
// conformance test (transforms/validate_price/crosslang). The record value is a command.
import { Record, Output, HeaderIter, register, reason, NO_TS, JsonValue, jsonFind, parseNumber } from "../assembly/index";
export { tf_abi_version, tf_meta, tf_reserve, tf_init, tf_process, tf_last_error } from "../assembly/index";

const FAIL = reason("fail");
const found = new JsonValue();
const big = heap.alloc(100000);
const scratch = heap.alloc(256);
const headers = new HeaderIter();

const C_PASS = reason("pass"), C_DROP = reason("drop"), C_REJECT = reason("reject"), C_UNDO = reason("undo");
const C_EMIT = reason("emit"), C_KEY = reason("key"), C_NULLKEY = reason("nullkey"), C_EMPTY = reason("empty");
const C_BIG = reason("big"), C_TIME = reason("time"), C_KEYECHO = reason("keyecho"), C_HEADERS = reason("headers");
const R_PROBE = reason("probe reject"), R_X = reason("x"), R_UNKNOWN = reason("unknown command");
const ONE = reason("one"), TWO = reason("two"), K1 = reason("k1"), KEYED = reason("keyed");
const NOKEY = reason("nokey"), NULL_TEXT = reason("<null>");
const C_NUM = reason("num:"), HEX = reason("0123456789abcdef");

function is(r: Record, s: ArrayBuffer): bool {
  return r.valueLen == <u32>s.byteLength && memory.compare(r.valuePtr, changetype<usize>(s), r.valueLen) == 0;
}

@inline function p(b: ArrayBuffer): usize { return changetype<usize>(b); }
@inline function n(b: ArrayBuffer): u32 { return <u32>b.byteLength; }

function init(ptr: usize, len: u32): string | null {
  if (len > 0 && jsonFind(ptr, len, FAIL, found) == 1) return "probe: fail requested";
  return null;
}

function process(r: Record, out: Output): void {
  if (is(r, C_PASS)) return;
  if (is(r, C_DROP)) out.drop();
  else if (is(r, C_REJECT)) out.reject(7, R_PROBE);
  else if (is(r, C_UNDO)) { out.reject(7, R_X); out.pass(); }
  else if (is(r, C_EMIT)) { out.emit(0, p(ONE), n(ONE)); out.emit(1, p(TWO), n(TWO)); }
  else if (is(r, C_KEY)) out.emitRecord(0, true, false, p(K1), n(K1), p(KEYED), n(KEYED), 1234);
  else if (is(r, C_NULLKEY)) out.emitRecord(0, true, true, 0, 0, p(NOKEY), n(NOKEY), NO_TS);
  else if (is(r, C_EMPTY)) out.emit(0, 0, 0);
  else if (is(r, C_BIG)) { memory.fill(big, 0x78, 100000); out.emit(0, big, 100000); }
  else if (is(r, C_TIME)) { const t = String.UTF8.encode(r.tsMs.toString()); out.emit(0, p(t), n(t)); }
  else if (is(r, C_KEYECHO)) {
    if (r.keyIsNull) out.emit(0, p(NULL_TEXT), n(NULL_TEXT));
    else out.emit(0, r.keyPtr, r.keyLen);
  } else if (is(r, C_HEADERS)) {
    headers.reset(r);
    while (headers.next()) {
      const kl = headers.keyLen, vl = headers.valueLen;
      if (kl + vl + 1 > 256) continue;
      memory.copy(scratch, headers.keyPtr, kl);
      store<u8>(scratch + kl, 0x3D);
      memory.copy(scratch + kl + 1, headers.valuePtr, vl);
      out.emit(0, scratch, kl + vl + 1);
    }
  } else if (r.valueLen > 4 && memory.compare(r.valuePtr, p(C_NUM), 4) == 0) {
    // the bits of the double nearest to the number token after "num:", in hex
    const bits = reinterpret<u64>(parseNumber(r.valuePtr + 4, r.valueLen - 4));
    for (let i = 0; i < 16; i++) store<u8>(scratch + i, load<u8>(p(HEX) + <usize>((bits >> (60 - 4 * i)) & 15)));
    out.emit(0, scratch, 16);
  } else out.reject(8, R_UNKNOWN);
}

register('{"name":"probe","version":"0.0.1","abi":"1.0","kinds":["filter","flatmap","route"],"ports":["main","alerts"]}', init, process);
