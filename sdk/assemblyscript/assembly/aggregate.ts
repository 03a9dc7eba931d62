// Aggregate modules (ABI 1.1, sdk/abi/v1/ABI.md section 13) for the AssemblyScript SDK.
//
// The host owns keys, windows, timers and state; the module folds records into an opaque state
// blob per slot (one key in one window) and turns a slot's state into records when the host asks.
// A module registers its callbacks once, at top level, and re-exports the ABI functions of this
// file (not those of ./index, whose tf_abi_version and tf_process are a plain transform's):
//
//   import { Record, Output } from "@sluice/transform/assembly";
//   import { aggregate, Slot, State, Emitter } from "@sluice/transform/assembly/aggregate";
//   export { tf_abi_version, tf_meta, tf_reserve, tf_init, tf_process, tf_last_error,
//     tf_agg_step, tf_agg_emit, tf_agg_merge } from "@sluice/transform/assembly/aggregate";
//
//   aggregate('{"name":"count","version":"0.1.0","abi":"1.1","kinds":["aggregate"]}', null,
//     accumulate, emit, merge);
//
// Callbacks return null, or an error message that fails the whole call (tf_last_error).

import { Record, Output, InitFn, NO_TS, __input, __inputCap, __setError, __register, __resultBegin,
  __resultPut, __resultAction, __resultOutDesc, __resultFinish } from "./index";

export { tf_meta, tf_reserve, tf_init, tf_last_error } from "./index";

/** The ABI version of an aggregate module: 1.1. */
export const ABI_VERSION_AGGREGATE: i32 = 0x00010001;

const ACTION_DROP: u8 = 1;
const ACTION_REJECT: u8 = 3;

/** One slot of an aggregation frame: a key in a window. One reused object, valid during the callback. */
export class Slot {
  /** Position of the slot in the frame. */
  index: u32 = 0;
  /** Window start in Unix ms, inclusive; i64.MIN_VALUE when the stage has no window. */
  windowStart: i64 = 0;
  /** Window end in Unix ms, exclusive; i64.MAX_VALUE when the stage has no window. */
  windowEnd: i64 = 0;
  keyIsNull: bool = false;
  keyPtr: usize = 0;
  keyLen: u32 = 0;
  /** Emit: the window closes and the slot is deleted after the call. */
  isFinal: bool = false;
}

// The pending state: what the current callback set.
let pendPtr: usize = 0;
let pendCap: u32 = 0;

/** The state of the current slot: ptr/len are its bytes (len 0: a new slot), valid during the
 * callback. set() or remove() replaces it; a slot whose callback sets nothing keeps its state. */
export class State {
  ptr: usize = 0;
  len: u32 = 0;
  /** Whether the callback set a state. */
  isSet: bool = false;

  /** Replaces the slot's state by a copy of [ptr, ptr+len) (the last call wins); len 0 deletes it. */
  set(ptr: usize, len: u32): void {
    if (len > pendCap) {
      let c: u32 = pendCap ? pendCap : 64;
      while (c < len) c <<= 1;
      const p = heap.alloc(c);
      memory.copy(p, ptr, len); // before the free: ptr may point into the old buffer
      if (pendPtr) heap.free(pendPtr);
      pendPtr = p;
      pendCap = c;
    } else if (len) {
      memory.copy(pendPtr, ptr, len);
    }
    this.ptr = pendPtr;
    this.len = len;
    this.isSet = true;
  }

  /** Replaces the slot's state by a copy of the buffer's bytes. */
  setBuffer(b: ArrayBuffer): void {
    this.set(changetype<usize>(b), <u32>b.byteLength);
  }

  /** Deletes the slot: the host forgets its state. */
  remove(): void {
    this.set(0, 0);
  }
}

/** Writes the records of a slot in emit. */
export class Emitter {
  slot: u32 = 0;

  /** Emits a record on output port `port` (0 = "main") with the slot's key and the time
   * window_end - 1 (the host's clock without a window), no headers. */
  emit(port: u32, ptr: usize, len: u32): void {
    this.emitRecord(port, false, false, 0, 0, ptr, len, NO_TS);
  }

  /** Emits a record with an explicit key (setKey; keyNull for a null key) and time (NO_TS: the slot's). */
  emitRecord(port: u32, setKey: bool, keyNull: bool, keyPtr: usize, keyLen: u32,
             ptr: usize, len: u32, tsMs: i64): void {
    const valOff = __resultPut(ptr, len);
    let kOff: u32 = 0;
    let kLen: u32 = 0xFFFFFFFF;
    let flags: u32 = 0;
    if (setKey) {
      if (keyNull) { kLen = 0; flags = 1; }
      else { kOff = __resultPut(keyPtr, keyLen); kLen = keyLen; }
    }
    __resultOutDesc(tsMs, this.slot, kOff, kLen, valOff, len, 0, port, flags);
  }
}

/** accumulate folds one record into its slot's state. The record's disposition goes through out,
 * DROP (absorbed) by default: pass() forwards it on port main, reject() refuses it (a state set for
 * a rejected record is discarded: it is not folded), emit(), emitRecord() and emitInput() emit
 * records. Records of one call that share a slot are folded in frame order, each seeing the state
 * the previous one set. */
export type AccumulateFn = (slot: Slot, state: State, rec: Record, out: Output) => string | null;
/** emit writes the slot's records (slot.isFinal: the window closes, and a state set is ignored). */
export type EmitFn = (slot: Slot, state: State, out: Emitter) => string | null;
/** merge folds the other state into the slot's and sets the result (session windows). */
export type MergeFn = (slot: Slot, state: State, otherPtr: usize, otherLen: u32) => string | null;

let accumulateFn: AccumulateFn | null = null;
let emitFn: EmitFn | null = null;
let mergeFn: MergeFn | null = null;

/** Registers the aggregate module: metadata JSON ("abi":"1.1", "kinds":["aggregate"], optionally
 * "state_version"), an optional init and the callbacks. Without merge, tf_agg_merge fails (the
 * module cannot be used with session windows; leave tf_agg_merge out of the entry's exports). */
export function aggregate(meta: string, init: InitFn | null, accumulate: AccumulateFn, emit: EmitFn,
                          merge: MergeFn | null = null): void {
  __register(meta, init);
  accumulateFn = accumulate;
  emitFn = emit;
  mergeFn = merge;
}

// The slots of the current call, kept across calls: 32 bytes each, {buf, cap, cur, len,
// frameLen, changed, framePtr}. A slot's state is in the frame (framePtr, frameLen) until a
// callback sets one, then in buf (swapped with the pending buffer).
const E_BUF = 0, E_CAP = 4, E_CUR = 8, E_LEN = 12, E_FRAME_LEN = 16, E_CHANGED = 20, E_FRAME_PTR = 24;
let slotTab: usize = 0;
let slotCap: u32 = 0;
let stateOuts: usize = 0;
let stateOutsCap: u32 = 0;

// The current frame.
let fPtr: usize = 0;
let fN: u32 = 0;
let fDoff: usize = 0;
let fDsize: usize = 0;
let fNs: u32 = 0;
let fSoff: usize = 0;

const theSlot = new Slot();
const theState = new State();
const theRecord = new Record();
const theOutput = new Output();
const theEmitter = new Emitter();

@inline function entry(s: u32): usize {
  return slotTab + <usize>s * 32;
}

/** Checks an aggregation frame of the given kind and prepares the slots and the result frame;
 * returns 0 or a batch error. */
function begin(inLen: i32, kind: u32): i32 {
  __setError(null);
  const len = <u32>inLen;
  const f = __input();
  if (!f || len < 40 || len > __inputCap()) { __setError("frame: bad length"); return -2; }
  const hsize = <u32>load<u16>(f, 8);
  const dsize = <u32>load<u16>(f, 10);
  if (load<u32>(f) != 0x31424654 || load<u16>(f, 4) != 1 || load<u32>(f, 12) != kind || hsize < 40 || dsize < 48) {
    __setError("frame: unsupported magic, version or kind");
    return -2;
  }
  const n = kind == 2 ? load<u32>(f, 16) : 0;
  const ns = load<u32>(f, 20);
  const doff = load<u32>(f, 24);
  const soff = load<u32>(f, 28);
  if (<u64>doff + <u64>n * dsize > <u64>len || <u64>soff + <u64>ns * 48 > <u64>len) {
    __setError("frame: descriptors out of range");
    return -2;
  }
  for (let i: u32 = 0; i < n; i++) {
    if (load<u32>(f + doff + <usize>i * dsize, 40) >= ns) {
      __setError("frame: a record's slot is out of range");
      return -2;
    }
  }
  for (let s: u32 = 0; s < ns; s++) {
    const d = f + soff + <usize>s * 48;
    for (let k = 16; k <= 32; k += 8) { // key, state, other; an empty one's offset is unspecified
      const l = load<u32>(d + k + 4);
      if (l && <u64>load<u32>(d + k) + <u64>l > <u64>len) {
        __setError("frame: a slot's key or state is out of range");
        return -2;
      }
    }
  }
  if (ns > slotCap) {
    const t = heap.alloc(<usize>ns * 32);
    memory.fill(t, 0, <usize>ns * 32);
    if (slotTab) {
      memory.copy(t, slotTab, <usize>slotCap * 32);
      heap.free(slotTab);
    }
    slotTab = t;
    slotCap = ns;
  }
  for (let s: u32 = 0; s < ns; s++) {
    const d = f + soff + <usize>s * 48;
    const e = entry(s);
    const l = load<u32>(d, 28);
    store<u32>(e, l ? <u32>(f + load<u32>(d, 24)) : 0, E_CUR);
    store<u32>(e, l ? <u32>(f + load<u32>(d, 24)) : 0, E_FRAME_PTR);
    store<u32>(e, l, E_LEN);
    store<u32>(e, l, E_FRAME_LEN);
    store<u32>(e, 0, E_CHANGED);
  }
  fPtr = f;
  fN = n;
  fDoff = doff;
  fDsize = dsize;
  fNs = ns;
  fSoff = soff;
  __resultBegin(n, ACTION_DROP);
  return 0;
}

function loadSlot(s: u32): Slot {
  const d = fPtr + fSoff + <usize>s * 48;
  const flags = load<u32>(d, 40);
  const slot = theSlot;
  slot.index = s;
  slot.windowStart = load<i64>(d);
  slot.windowEnd = load<i64>(d, 8);
  slot.keyIsNull = (flags & 2) != 0;
  slot.keyPtr = fPtr + load<u32>(d, 16);
  slot.keyLen = load<u32>(d, 20);
  slot.isFinal = (flags & 1) != 0;
  return slot;
}

function loadState(s: u32): State {
  const e = entry(s);
  const st = theState;
  st.ptr = <usize>load<u32>(e, E_CUR);
  st.len = load<u32>(e, E_LEN);
  st.isSet = false;
  return st;
}

/** Makes the state the callback set the slot's state (swapping the slot's buffer and the pending one). */
function commit(s: u32, st: State): void {
  const e = entry(s);
  const buf = <usize>load<u32>(e, E_BUF), cap = load<u32>(e, E_CAP);
  store<u32>(e, <u32>pendPtr, E_BUF);
  store<u32>(e, pendCap, E_CAP);
  store<u32>(e, <u32>pendPtr, E_CUR);
  store<u32>(e, st.len, E_LEN);
  store<u32>(e, 1, E_CHANGED);
  pendPtr = buf;
  pendCap = cap;
}

/** Writes the new states and the result frame (ABI.md 13.3). In a step or an emit, a slot whose
 * state comes out as it went in gets no StateOut; a merge returns one for every slot its callback
 * set. A new slot that stays empty is not created; a slot emptied by its callback is deleted. */
function finish(kind: u32, nIn: u32): i64 {
  if (fNs * 16 > stateOutsCap) {
    if (stateOuts) heap.free(stateOuts);
    stateOutsCap = fNs * 16;
    stateOuts = heap.alloc(stateOutsCap);
  }
  let nState: u32 = 0;
  for (let s: u32 = 0; s < fNs; s++) {
    const e = entry(s);
    if (!load<u32>(e, E_CHANGED)) continue;
    const l = load<u32>(e, E_LEN);
    if (l == load<u32>(e, E_FRAME_LEN) &&
        (l == 0 || (kind != 3 && memory.compare(<usize>load<u32>(e, E_CUR), <usize>load<u32>(e, E_FRAME_PTR), l) == 0))) continue;
    const o = stateOuts + <usize>nState * 16;
    store<u32>(o, s);
    store<u32>(o, l ? 0 : 1, 4); // 1 = delete
    store<u32>(o, l ? __resultPut(<usize>load<u32>(e, E_CUR), l) : 0, 8);
    store<u32>(o, l, 12);
    nState++;
  }
  return __resultFinish(nIn, stateOuts, nState);
}

function failed(msg: string): i64 {
  __setError(msg);
  return -1;
}

// ---- ABI exports (re-export them from the module's entry file) ----------------------------

export function tf_abi_version(): i32 {
  return ABI_VERSION_AGGREGATE;
}

/** An aggregate module takes only aggregation frames: tf_process returns -2 (ABI.md 13.1). */
export function tf_process(inLen: i32): i64 {
  __setError("tf_process: an aggregate module takes aggregation frames (tf_agg_step)");
  return -2;
}

export function tf_agg_step(inLen: i32): i64 {
  const rc = begin(inLen, 2);
  if (rc) return rc;
  const fn = accumulateFn;
  if (fn === null) return failed("no aggregate registered");
  const rec = theRecord;
  const out = theOutput;
  const f = fPtr;
  for (let i: u32 = 0; i < fN; i++) {
    const d = f + fDoff + <usize>i * fDsize;
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
    const s = load<u32>(d, 40);
    const st = loadState(s);
    const msg = fn(loadSlot(s), st, rec, out);
    if (msg !== null) return failed(msg);
    // A rejected record is not folded (ABI.md 13.3).
    if (st.isSet && __resultAction(i) != ACTION_REJECT) commit(s, st);
  }
  return finish(2, fN);
}

export function tf_agg_emit(inLen: i32): i64 {
  const rc = begin(inLen, 4);
  if (rc) return rc;
  const fn = emitFn;
  if (fn === null) return failed("no aggregate registered");
  const out = theEmitter;
  for (let s: u32 = 0; s < fNs; s++) {
    const slot = loadSlot(s);
    const st = loadState(s);
    out.slot = s;
    const msg = fn(slot, st, out);
    if (msg !== null) return failed(msg);
    // A final emit's state is ignored: the slot is deleted.
    if (st.isSet && !slot.isFinal) commit(s, st);
  }
  return finish(4, 0);
}

export function tf_agg_merge(inLen: i32): i64 {
  const fn = mergeFn;
  if (fn === null) {
    __setError("merge: this module does not merge states (no session windows)");
    return -1;
  }
  const rc = begin(inLen, 3);
  if (rc) return rc;
  for (let s: u32 = 0; s < fNs; s++) {
    const d = fPtr + fSoff + <usize>s * 48;
    const ol = load<u32>(d, 36);
    const st = loadState(s);
    const msg = fn(loadSlot(s), st, ol ? fPtr + load<u32>(d, 32) : 0, ol);
    if (msg !== null) return failed(msg);
    if (st.isSet) commit(s, st);
  }
  return finish(3, 0);
}
