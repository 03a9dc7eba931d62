// AssemblyScript guest SDK for Sluice WASM transforms, ABI v1.0 and 1.1 (sdk/abi/v1/ABI.md).
//
// A module registers its metadata and callbacks once, at top level, and re-exports the ABI
// functions from its entry file:
//
//   import { Record, Output, reason, validator } from "@sluice/transform/assembly";
//   export { tf_abi_version, tf_meta, tf_reserve, tf_init, tf_process, tf_last_error } from "@sluice/transform/assembly";
//
// Record bytes are never turned into strings: records expose raw pointers and lengths into the
// host's input frame (valid during the current batch) and the JSON helpers in ./json work on them.
// Reasons are UTF-8 bytes encoded once (reason("...") at top level), so rejecting allocates nothing.
// The guest is single-threaded; the SDK keeps its buffers in globals and reuses them.
// Aggregate modules (ABI 1.1) use ./aggregate, and re-export the ABI functions from there.

export * from "./json";

/** Well-known reject codes (ABI.md 10.1); 4..0xEFFF are free for each transform. */
export const CODE_UNSPECIFIED: u16 = 0;
export const CODE_INVALID_INPUT: u16 = 1;
export const CODE_SCHEMA: u16 = 2;
export const CODE_RANGE: u16 = 3;

/** Log levels of log(). */
export const LOG_DEBUG: i32 = 0;
export const LOG_INFO: i32 = 1;
export const LOG_WARN: i32 = 2;
export const LOG_ERROR: i32 = 3;

const ACTION_PASS: u8 = 0;
const ACTION_DROP: u8 = 1;
const ACTION_EMIT: u8 = 2;
const ACTION_REJECT: u8 = 3;

/** Time value meaning "no timestamp" (input) or "inherit the input's" (emit). */
export const NO_TS: i64 = i64.MIN_VALUE;

// @ts-ignore: decorator
@external("tf_host_v1", "log")
declare function hostLog(level: i32, ptr: usize, len: i32): void;

// @ts-ignore: decorator
@external("tf_host_v1", "metric_add")
declare function hostMetricAdd(ptr: usize, len: i32, delta: i64): void;

/** Encodes a reason (or any text) to UTF-8 once; pass the result to Output.reject. */
export function reason(s: string): ArrayBuffer {
  return String.UTF8.encode(s);
}

/** Sends a log line to the host (rate-limited there: log per batch, not per record). */
export function log(level: i32, msg: ArrayBuffer): void {
  hostLog(level, changetype<usize>(msg), msg.byteLength);
}

/** Adds delta to the stage counter `name` (UTF-8, [a-z][a-z0-9_]{0,63}). */
export function metricAdd(name: ArrayBuffer, delta: i64): void {
  hostMetricAdd(changetype<usize>(name), name.byteLength, delta);
}

/** One input record; pointers point into the input frame and are valid during the batch only. */
export class Record {
  index: u32 = 0;
  /** Unix milliseconds, or NO_TS. */
  tsMs: i64 = 0;
  keyIsNull: bool = false;
  keyPtr: usize = 0;
  keyLen: u32 = 0;
  valuePtr: usize = 0;
  valueLen: u32 = 0;
  headersPtr: usize = 0;
  headersLen: u32 = 0;
}

/** Iterates a record's headers in order (names may repeat): reset(rec), then while (next()). */
export class HeaderIter {
  keyPtr: usize = 0;
  keyLen: u32 = 0;
  valuePtr: usize = 0;
  valueLen: u32 = 0;
  private p: usize = 0;
  private end: usize = 0;

  reset(rec: Record): void {
    this.p = rec.headersLen >= 4 ? rec.headersPtr + 4 : 0;
    this.end = rec.headersPtr + rec.headersLen;
  }

  next(): bool {
    const p = this.p;
    const end = <u64>this.end;
    if (!p || <u64>p + 4 > end) return false;
    const kl = load<u32>(p);
    if (<u64>p + 8 + kl > end) return false;
    const vl = load<u32>(p + 4 + kl);
    if (<u64>p + 8 + kl + vl > end) return false;
    this.keyPtr = p + 4;
    this.keyLen = kl;
    this.valuePtr = p + 8 + kl;
    this.valueLen = vl;
    this.p = p + 8 + kl + vl;
    return true;
  }
}

// Growable raw buffers (heap.alloc: unmanaged, no GC involvement).
let inPtr: usize = 0;
let inCap: u32 = 0;
let outPtr: usize = 0;
let outCap: u32 = 0;
let outLen: u32 = 0;
let odPtr: usize = 0;
let odCap: u32 = 0;
let nOd: u32 = 0;
let errPtr: usize = 0;
let errLen: u32 = 0;
let metaBuf: ArrayBuffer = new ArrayBuffer(0);

function outReserve(more: u32): void {
  const need = <u64>outLen + more;
  if (need <= <u64>outCap) return;
  let c: u64 = outCap ? outCap : 4096;
  while (c < need) c <<= 1;
  outPtr = outPtr ? heap.realloc(outPtr, <usize>c) : heap.alloc(<usize>c);
  outCap = <u32>c;
}

function outPut(ptr: usize, len: u32): u32 {
  outReserve(len);
  const off = outLen;
  memory.copy(outPtr + off, ptr, len);
  outLen += len;
  return off;
}

function setError(msg: string): void {
  const b = String.UTF8.encode(msg);
  if (errPtr) heap.free(errPtr);
  errLen = <u32>min(b.byteLength, 1024);
  errPtr = heap.alloc(max(errLen, 1));
  memory.copy(errPtr, changetype<usize>(b), errLen);
}

/** Builds the disposition of the current record; PASS is the default, the last call wins. */
export class Output {
  cur: u32 = 0;

  @inline private set(action: u8, code: u16, a: u32, b: u32): void {
    const d = outPtr + 32 + <usize>this.cur * 12;
    store<u8>(d, action);
    store<u8>(d, 0, 1);
    store<u16>(d, code, 2);
    store<u32>(d, a, 4);
    store<u32>(d, b, 8);
  }

  /** Keeps the record unchanged. */
  pass(): void {
    this.set(ACTION_PASS, 0, 0, 0);
  }

  /** Removes the record. */
  drop(): void {
    this.set(ACTION_DROP, 0, 0, 0);
  }

  /** Rejects the record with a code and a UTF-8 reason from reason(). */
  reject(code: u16, reason: ArrayBuffer): void {
    this.rejectRaw(code, changetype<usize>(reason), reason.byteLength);
  }

  /** Rejects the record with a reason given as raw UTF-8 bytes. */
  rejectRaw(code: u16, ptr: usize, len: u32): void {
    if (len > 1024) len = 1024;
    const off = outPut(ptr, len);
    this.set(ACTION_REJECT, code, off, len);
  }

  /** Emits a record on output port `port` (0 = "main"), inheriting key, headers and time. */
  emit(port: u32, ptr: usize, len: u32): void {
    this.emitRecord(port, false, false, 0, 0, ptr, len, NO_TS);
  }

  /** Emits a record with an explicit key (setKey; keyNull for a null key) and time. */
  emitRecord(port: u32, setKey: bool, keyNull: bool, keyPtr: usize, keyLen: u32,
             ptr: usize, len: u32, tsMs: i64): void {
    const valOff = outPut(ptr, len);
    let kOff: u32 = 0;
    let kLen: u32 = 0xFFFFFFFF;
    let flags: u32 = 0;
    if (setKey) {
      if (keyNull) { kLen = 0; flags = 1; }
      else { kOff = outPut(keyPtr, keyLen); kLen = keyLen; }
    }
    if ((nOd + 1) * 48 > odCap) {
      const c: u32 = odCap ? odCap * 2 : 48 * 64;
      odPtr = odPtr ? heap.realloc(odPtr, c) : heap.alloc(c);
      odCap = c;
    }
    const o = odPtr + <usize>nOd * 48;
    store<i64>(o, tsMs);
    store<u64>(o, <u64>this.cur, 8);
    store<u32>(o, kOff, 16);
    store<u32>(o, kLen, 20);
    store<u32>(o, valOff, 24);
    store<u32>(o, len, 28);
    store<u32>(o, 0, 32);
    store<u32>(o, 0xFFFFFFFF, 36);
    store<u32>(o, port, 40);
    store<u32>(o, flags, 44);
    const d = outPtr + 32 + <usize>this.cur * 12;
    const a = load<u32>(d, 4), b = load<u32>(d, 8);
    if (load<u8>(d) == ACTION_EMIT && a + b == nOd) store<u32>(d, b + 1, 8);
    else this.set(ACTION_EMIT, 0, nOd, 1);
    nOd++;
  }

  /** Aggregate modules, in accumulate: emits the input record itself on output port `port`, with
   * its key, value, headers and time (ABI.md 13.4), e.g. beside an alert on another port. */
  emitInput(port: u32): void {
    __resultOutDesc(NO_TS, this.cur, 0, 0xFFFFFFFF, 0, 0xFFFFFFFF, 0xFFFFFFFF, port, 0);
    const d = outPtr + 32 + <usize>this.cur * 12;
    const a = load<u32>(d, 4), b = load<u32>(d, 8);
    if (load<u8>(d) == ACTION_EMIT && a + b == nOd - 1) store<u32>(d, b + 1, 8);
    else this.set(ACTION_EMIT, 0, nOd - 1, 1);
  }
}

/** init callback: gets the config JSON bytes; returns null on success or an error message. */
export type InitFn = (ptr: usize, len: u32) => string | null;
/** Per-record callback. */
export type ProcessFn = (rec: Record, out: Output) => void;

let initFn: InitFn | null = null;
let processFn: ProcessFn | null = null;
const theRecord = new Record();
const theOutput = new Output();

/** Registers the transform: metadata JSON (ABI.md 8), an optional init and a per-record callback. */
export function register(meta: string, init: InitFn | null, process: ProcessFn): void {
  metaBuf = String.UTF8.encode(meta);
  initFn = init;
  processFn = process;
}

/** Registers a configuration-free transform. */
export function transform(meta: string, process: ProcessFn): void {
  register(meta, null, process);
}

// ---- ABI exports (re-export them from the module's entry file) ----------------------------

export function tf_abi_version(): i32 {
  return 0x00010000;
}

export function tf_meta(): i64 {
  return (<i64>changetype<usize>(metaBuf) << 32) | <i64>metaBuf.byteLength;
}

export function tf_last_error(): i64 {
  return (<i64>errPtr << 32) | <i64>errLen;
}

export function tf_reserve(cap: i32): i32 {
  let c = <u32>cap;
  if (inPtr && c <= inCap) return <i32>inPtr;
  if (c < 4096) c = 4096;
  c = (c + 7) & ~7;
  if (inPtr) heap.free(inPtr);
  inPtr = heap.alloc(c); // 16-byte aligned
  inCap = c;
  return <i32>inPtr;
}

export function tf_init(cfgLen: i32): i32 {
  errLen = 0;
  const f = initFn;
  if (f === null) return 0;
  if (cfgLen > 0 && (!inPtr || <u32>cfgLen > inCap)) {
    setError("init: config is not in the reserved buffer");
    return -1;
  }
  const msg = f(inPtr, <u32>cfgLen);
  if (msg !== null) {
    setError(msg);
    return -1;
  }
  return 0;
}

export function tf_process(inLen: i32): i64 {
  errLen = 0;
  const len = <u32>inLen;
  const f = inPtr;
  if (!f || len < 40 || len > inCap) { setError("frame: bad length"); return -2; }
  const hsize = <u32>load<u16>(f, 8);
  const dsize = <u32>load<u16>(f, 10);
  if (load<u32>(f) != 0x31424654 || load<u16>(f, 4) != 1 || load<u32>(f, 12) != 1 || hsize < 40 || dsize < 48) {
    setError("frame: unsupported magic, version or kind");
    return -2;
  }
  const n = load<u32>(f, 16);
  const doff = load<u32>(f, 24);
  if (<u64>doff + <u64>n * dsize > <u64>len) { setError("frame: descriptors out of range"); return -2; }
  const p = processFn;
  if (p === null) { setError("no transform registered"); return -1; }
  outLen = 0;
  nOd = 0;
  outReserve(32 + n * 12);
  memory.fill(outPtr, 0, 32 + <usize>n * 12);
  outLen = 32 + n * 12;
  const rec = theRecord;
  const out = theOutput;
  for (let i: u32 = 0; i < n; i++) {
    const d = f + doff + <usize>i * dsize;
    const flags = load<u32>(d, 44);
    rec.index = i;
    rec.tsMs = load<i64>(d);
    rec.keyIsNull = (flags & 1) != 0;
    rec.keyPtr = f + load<u32>(d, 16);
    rec.keyLen = load<u32>(d, 20);
    rec.valuePtr = f + load<u32>(d, 24);
    rec.valueLen = load<u32>(d, 28);
    rec.headersPtr = f + load<u32>(d, 32);
    rec.headersLen = load<u32>(d, 36);
    out.cur = i;
    p(rec, out);
  }
  // Pad to 8, append the OutDesc table, write the header.
  outReserve(8 + nOd * 48);
  while (outLen & 7) { store<u8>(outPtr + outLen, 0); outLen++; }
  const odOff = outLen;
  if (nOd) outPut(odPtr, nOd * 48);
  const h = outPtr;
  store<u32>(h, 0x31524654);
  store<u16>(h, 32, 4);
  store<u16>(h, 48, 6);
  store<u32>(h, n, 8);
  store<u32>(h, 32, 12);
  store<u32>(h, nOd, 16);
  store<u32>(h, odOff, 20);
  store<u64>(h, 0, 24);
  return (<i64>outPtr << 32) | <i64>outLen;
}

// ---- Internals shared with ./aggregate (not part of the API) -------------------------------

/** @internal The input buffer (tf_reserve) and its capacity. */
export function __input(): usize { return inPtr; }
/** @internal */
export function __inputCap(): u32 { return inCap; }
/** @internal Sets or clears the message of tf_last_error. */
export function __setError(msg: string | null): void {
  if (msg === null) errLen = 0;
  else setError(msg);
}
/** @internal Registers the metadata and the init callback. */
export function __register(meta: string, init: InitFn | null): void {
  metaBuf = String.UTF8.encode(meta);
  initFn = init;
}
/** @internal Starts a result frame with n dispositions set to `action`. */
export function __resultBegin(n: u32, action: u8): void {
  outLen = 0;
  nOd = 0;
  outReserve(32 + n * 12);
  memory.fill(outPtr, 0, 32 + <usize>n * 12);
  for (let i: u32 = 0; i < n; i++) store<u8>(outPtr + 32 + <usize>i * 12, action);
  outLen = 32 + n * 12;
}
/** @internal Appends bytes to the result frame; returns their offset. */
export function __resultPut(ptr: usize, len: u32): u32 {
  return outPut(ptr, len);
}
/** @internal The action of disposition i. */
export function __resultAction(i: u32): u8 {
  return load<u8>(outPtr + 32 + <usize>i * 12);
}
/** @internal Appends an OutDesc. */
export function __resultOutDesc(tsMs: i64, seq: u32, keyOff: u32, keyLen: u32, valOff: u32, valLen: u32,
                                hdrLen: u32, port: u32, flags: u32): void {
  if ((nOd + 1) * 48 > odCap) {
    const c: u32 = odCap ? odCap * 2 : 48 * 64;
    odPtr = odPtr ? heap.realloc(odPtr, c) : heap.alloc(c);
    odCap = c;
  }
  const o = odPtr + <usize>nOd * 48;
  store<i64>(o, tsMs);
  store<u64>(o, <u64>seq, 8);
  store<u32>(o, keyOff, 16);
  store<u32>(o, keyLen, 20);
  store<u32>(o, valOff, 24);
  store<u32>(o, valLen, 28);
  store<u32>(o, 0, 32);
  store<u32>(o, hdrLen, 36);
  store<u32>(o, port, 40);
  store<u32>(o, flags, 44);
  nOd++;
}
/** @internal Pads the data to 8 bytes, appends the OutDescs and the nState StateOuts at
 * `states`, writes the header and returns the result frame's ptrlen. */
export function __resultFinish(nIn: u32, states: usize, nState: u32): i64 {
  outReserve(8 + nOd * 48 + nState * 16);
  while (outLen & 7) { store<u8>(outPtr + outLen, 0); outLen++; }
  const odOff = outLen;
  if (nOd) outPut(odPtr, nOd * 48);
  const stOff = outLen;
  if (nState) outPut(states, nState * 16);
  const h = outPtr;
  store<u32>(h, 0x31524654);
  store<u16>(h, 32, 4);
  store<u16>(h, 48, 6);
  store<u32>(h, nIn, 8);
  store<u32>(h, 32, 12);
  store<u32>(h, nOd, 16);
  store<u32>(h, odOff, 20);
  store<u32>(h, nState, 24);
  store<u32>(h, stOff, 28);
  return (<i64>outPtr << 32) | <i64>outLen;
}
