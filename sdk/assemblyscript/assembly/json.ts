// A strict, allocation-free JSON scanner over raw memory: jsonValidate checks a whole text against
// RFC 8259 (well-formed UTF-8, strict numbers, literals and escapes, bounded nesting); jsonRoot,
// jsonMembers/jsonNext and jsonElements/jsonNextElement then walk it as zero-copy spans; jsonNumber
// converts a number token to the correctly rounded double (as strtod does), without strings.

export const JSON_INVALID: i32 = 0;
export const JSON_OBJECT: i32 = 1;
export const JSON_ARRAY: i32 = 2;
export const JSON_STRING: i32 = 3;
export const JSON_NUMBER: i32 = 4;
export const JSON_TRUE: i32 = 5;
export const JSON_FALSE: i32 = 6;
export const JSON_NULL: i32 = 7;

/** Default nesting limit of jsonValidate (containers; the top-level one is level 1). */
export const JSON_MAX_DEPTH: i32 = 64;

/** A span of a validated JSON text: the whole token (strings with quotes, containers with brackets). */
export class JsonValue {
  kind: i32 = JSON_INVALID;
  ptr: usize = 0;
  len: u32 = 0;
  /** Strings: whether the token holds an escape (raw bytes differ from decoded). */
  escaped: bool = false;
}

// Set by vString and skip: whether the last string scanned had an escape.
let lastEscaped = false;

/** Iteration state for jsonNext / jsonNextElement; reuse one per callback. */
export class JsonIter {
  p: usize = 0;
  end: usize = 0;
}

@inline function isWs(c: u32): bool {
  return c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09;
}

@inline function ws(p: usize, e: usize): usize {
  while (p < e && isWs(load<u8>(p))) p++;
  return p;
}

@inline function hexVal(c: u32): i32 {
  if (c >= 0x30 && c <= 0x39) return <i32>c - 0x30;
  if (c >= 0x61 && c <= 0x66) return <i32>c - 0x61 + 10;
  if (c >= 0x41 && c <= 0x46) return <i32>c - 0x41 + 10;
  return -1;
}

@inline function isDigit(c: u32): bool {
  return c - 0x30 < 10;
}

// Validation functions return the position after the value, or 0 when invalid.

function vString(p: usize, e: usize): usize {
  lastEscaped = false;
  while (p < e) {
    // Eight bytes at a time while none is a quote, a backslash, a control byte or non-ASCII.
    while (e - p >= 8) {
      const x = load<u64>(p);
      const q = x ^ 0x2222222222222222;
      const b = x ^ 0x5C5C5C5C5C5C5C5C;
      const m = ((x - 0x2020202020202020) & ~x) | ((q - 0x0101010101010101) & ~q) | ((b - 0x0101010101010101) & ~b) | x;
      const hm = m & 0x8080808080808080;
      if (hm) {
        // The lowest flagged byte is a real one (false positives only sit above it).
        p += <usize>(ctz<u64>(hm) >> 3);
        break;
      }
      p += 8;
    }
    const c = <u32>load<u8>(p);
    if (c == 0x22) return p + 1;
    if (c < 0x20) return 0;
    if (c == 0x5C) {
      lastEscaped = true;
      p++;
      if (p >= e) return 0;
      const x = <u32>load<u8>(p);
      if (x == 0x22 || x == 0x5C || x == 0x2F || x == 0x62 || x == 0x66 || x == 0x6E || x == 0x72 || x == 0x74) {
        p++;
      } else if (x == 0x75) {
        if (e - p < 5) return 0;
        if (hexVal(load<u8>(p, 1)) < 0 || hexVal(load<u8>(p, 2)) < 0 || hexVal(load<u8>(p, 3)) < 0 || hexVal(load<u8>(p, 4)) < 0) return 0;
        p += 5;
      } else {
        return 0;
      }
      continue;
    }
    if (c < 0x80) { p++; continue; }
    let need: usize;
    let lo: u32 = 0x80, hi: u32 = 0xBF;
    if (c >= 0xC2 && c <= 0xDF) need = 1;
    else if (c == 0xE0) { need = 2; lo = 0xA0; }
    else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
    else if (c == 0xED) { need = 2; hi = 0x9F; }
    else if (c == 0xF0) { need = 3; lo = 0x90; }
    else if (c >= 0xF1 && c <= 0xF3) need = 3;
    else if (c == 0xF4) { need = 3; hi = 0x8F; }
    else return 0;
    if (e - p < need + 1) return 0;
    const c1 = <u32>load<u8>(p, 1);
    if (c1 < lo || c1 > hi) return 0;
    for (let k: usize = 2; k <= need; k++) {
      const ck = <u32>load<u8>(p + k);
      if (ck < 0x80 || ck > 0xBF) return 0;
    }
    p += need + 1;
  }
  return 0;
}

function vNumber(p: usize, e: usize): usize {
  if (p < e && load<u8>(p) == 0x2D) p++;
  if (p >= e) return 0;
  const c = <u32>load<u8>(p);
  if (c == 0x30) p++;
  else if (c >= 0x31 && c <= 0x39) { while (p < e && isDigit(load<u8>(p))) p++; }
  else return 0;
  if (p < e && load<u8>(p) == 0x2E) {
    p++;
    const d = p;
    while (p < e && isDigit(load<u8>(p))) p++;
    if (p == d) return 0;
  }
  if (p < e && (load<u8>(p) | 0x20) == 0x65) {
    p++;
    if (p < e && (load<u8>(p) == 0x2B || load<u8>(p) == 0x2D)) p++;
    const d = p;
    while (p < e && isDigit(load<u8>(p))) p++;
    if (p == d) return 0;
  }
  return p;
}

function vLit(p: usize, e: usize, a: u32, b: u32, c: u32, d: u32, n: usize): usize {
  if (e - p < n) return 0;
  if (load<u8>(p) != a || load<u8>(p, 1) != b || load<u8>(p, 2) != c || load<u8>(p, 3) != d) return 0;
  if (n == 5 && load<u8>(p, 4) != 0x65) return 0;
  return p + n;
}

function vValue(p: usize, e: usize, depth: i32, max: i32): usize {
  if (p >= e) return 0;
  const c = <u32>load<u8>(p);
  if (c == 0x7B || c == 0x5B) {
    if (depth + 1 > max) return 0;
    const close: u32 = c == 0x7B ? 0x7D : 0x5D;
    p = ws(p + 1, e);
    if (p < e && load<u8>(p) == close) return p + 1;
    while (true) {
      if (c == 0x7B) {
        if (p >= e || load<u8>(p) != 0x22) return 0;
        p = vString(p + 1, e);
        if (!p) return 0;
        p = ws(p, e);
        if (p >= e || load<u8>(p) != 0x3A) return 0;
        p = ws(p + 1, e);
      }
      p = vValue(p, e, depth + 1, max);
      if (!p) return 0;
      p = ws(p, e);
      if (p >= e) return 0;
      const x = <u32>load<u8>(p);
      if (x == 0x2C) { p = ws(p + 1, e); continue; }
      if (x == close) return p + 1;
      return 0;
    }
  }
  if (c == 0x22) return vString(p + 1, e);
  if (c == 0x74) return vLit(p, e, 0x74, 0x72, 0x75, 0x65, 4); // true
  if (c == 0x66) return vLit(p, e, 0x66, 0x61, 0x6C, 0x73, 5); // false
  if (c == 0x6E) return vLit(p, e, 0x6E, 0x75, 0x6C, 0x6C, 4); // null
  return vNumber(p, e);
}

/** Reports whether [ptr, ptr+len) is exactly one RFC 8259 JSON text (see the file comment). */
export function jsonValidate(ptr: usize, len: u32, maxDepth: i32 = JSON_MAX_DEPTH): bool {
  const e = ptr + len;
  const p = vValue(ws(ptr, e), e, 0, maxDepth);
  return p != 0 && ws(p, e) == e;
}

function kindOf(c: u32): i32 {
  if (c == 0x7B) return JSON_OBJECT;
  if (c == 0x5B) return JSON_ARRAY;
  if (c == 0x22) return JSON_STRING;
  if (c == 0x74) return JSON_TRUE;
  if (c == 0x66) return JSON_FALSE;
  if (c == 0x6E) return JSON_NULL;
  return JSON_NUMBER;
}

/** Skips one value of a validated text. */
function skip(p: usize, e: usize): usize {
  const c = <u32>load<u8>(p);
  if (c == 0x22) {
    lastEscaped = false;
    p++;
    while (load<u8>(p) != 0x22) {
      if (load<u8>(p) == 0x5C) { lastEscaped = true; p += 2; } else p++;
    }
    return p + 1;
  }
  if (c == 0x7B || c == 0x5B) {
    let depth = 0;
    while (p < e) {
      const x = <u32>load<u8>(p);
      if (x == 0x22) {
        p++;
        while (load<u8>(p) != 0x22) p += load<u8>(p) == 0x5C ? 2 : 1;
      } else if (x == 0x7B || x == 0x5B) depth++;
      else if (x == 0x7D || x == 0x5D) {
        if (--depth == 0) return p + 1;
      }
      p++;
    }
    return e;
  }
  while (p < e) {
    const x = <u32>load<u8>(p);
    if (x == 0x2C || x == 0x7D || x == 0x5D || isWs(x)) break;
    p++;
  }
  return p;
}

@inline function span(p: usize, e: usize, out: JsonValue): void {
  out.kind = kindOf(load<u8>(p));
  out.ptr = p;
  out.len = <u32>(skip(p, e) - p);
  out.escaped = out.kind == JSON_STRING && lastEscaped;
}

/** Sets out to the top-level value of a validated text. */
export function jsonRoot(ptr: usize, len: u32, out: JsonValue): void {
  const e = ptr + len;
  span(ws(ptr, e), e, out);
}

/** Starts iterating the members of a validated object (or the elements of an array). */
export function jsonMembers(it: JsonIter, container: JsonValue): void {
  it.p = container.ptr + 1;
  it.end = container.ptr + container.len - 1;
}

/** Same as jsonMembers, for arrays. */
export function jsonElements(it: JsonIter, array: JsonValue): void {
  jsonMembers(it, array);
}

/** Sets name and value to the next member; returns false after the last one. */
export function jsonNext(it: JsonIter, name: JsonValue, value: JsonValue): bool {
  const e = it.end;
  let p = ws(it.p, e);
  if (p < e && load<u8>(p) == 0x2C) p = ws(p + 1, e);
  if (p >= e || load<u8>(p) != 0x22) return false;
  span(p, e, name);
  p = ws(ws(p + name.len, e) + 1, e);
  span(p, e, value);
  it.p = p + value.len;
  return true;
}

/** Sets value to the next array element; returns false after the last one. */
export function jsonNextElement(it: JsonIter, value: JsonValue): bool {
  const e = it.end;
  let p = ws(it.p, e);
  if (p < e && load<u8>(p) == 0x2C) p = ws(p + 1, e);
  if (p >= e) return false;
  span(p, e, value);
  it.p = p + value.len;
  return true;
}

// Escape decoding: returns the code point of the escape whose letter is at escP (lone surrogates
// stay 0xD800..0xDFFF) and leaves the position after it in escP.
let escP: usize = 0;

function unescape(e: usize): u32 {
  const p = escP;
  const c = <u32>load<u8>(p);
  escP = p + 1;
  if (c == 0x62) return 8;
  if (c == 0x66) return 12;
  if (c == 0x6E) return 10;
  if (c == 0x72) return 13;
  if (c == 0x74) return 9;
  if (c != 0x75) return c;
  let cp = <u32>(hexVal(load<u8>(p, 1)) << 12 | hexVal(load<u8>(p, 2)) << 8 | hexVal(load<u8>(p, 3)) << 4 | hexVal(load<u8>(p, 4)));
  escP = p + 5;
  const q = escP;
  if (cp >= 0xD800 && cp <= 0xDBFF && e - q >= 6 && load<u8>(q) == 0x5C && load<u8>(q, 1) == 0x75) {
    const lo = <u32>(hexVal(load<u8>(q, 2)) << 12 | hexVal(load<u8>(q, 3)) << 8 | hexVal(load<u8>(q, 4)) << 4 | hexVal(load<u8>(q, 5)));
    if (lo >= 0xDC00 && lo <= 0xDFFF) {
      cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
      escP = q + 6;
    }
  }
  return cp;
}

// UTF-8 encodes cp into utf8Tmp; returns the byte count.
let utf8Tmp: u32 = 0;
function encodeUtf8(cp: u32): i32 {
  if (cp < 0x80) { utf8Tmp = cp; return 1; }
  if (cp < 0x800) { utf8Tmp = (0xC0 | cp >> 6) | (0x80 | (cp & 0x3F)) << 8; return 2; }
  if (cp < 0x10000) {
    utf8Tmp = (0xE0 | cp >> 12) | (0x80 | ((cp >> 6) & 0x3F)) << 8 | (0x80 | (cp & 0x3F)) << 16;
    return 3;
  }
  utf8Tmp = (0xF0 | cp >> 18) | (0x80 | ((cp >> 12) & 0x3F)) << 8 | (0x80 | ((cp >> 6) & 0x3F)) << 16 | (0x80 | (cp & 0x3F)) << 24;
  return 4;
}

/** Reports whether a string value decodes (escapes included) to exactly the UTF-8 bytes of name
 * (e.g. from reason("price") or String.UTF8.encode). A lone surrogate escape matches nothing. */
export function jsonStringIs(s: JsonValue, name: ArrayBuffer): bool {
  if (s.kind != JSON_STRING) return false;
  let p = s.ptr + 1;
  const e = s.ptr + s.len - 1;
  const n = changetype<usize>(name);
  const nl = <usize>name.byteLength;
  if (!s.escaped) { // raw bytes are the decoded bytes
    if (e - p != nl) return false;
    for (let i: usize = 0; i < nl; i++) if (load<u8>(p + i) != load<u8>(n + i)) return false;
    return true;
  }
  let j: usize = 0;
  while (p < e) {
    const c = load<u8>(p);
    if (c != 0x5C) {
      if (j >= nl || load<u8>(n + j) != c) return false;
      p++;
      j++;
      continue;
    }
    escP = p + 1;
    const cp = unescape(e);
    p = escP;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    const k = encodeUtf8(cp);
    if (nl - j < <usize>k) return false;
    for (let i = 0; i < k; i++) {
      if (load<u8>(n + j) != <u8>(utf8Tmp >> (8 * i))) return false;
      j++;
    }
  }
  return j == nl;
}

/** Decodes a string value into [dst, dst+cap) (lone surrogates become U+FFFD). Returns the decoded
 * length, which may exceed cap (then only cap bytes were written). */
export function jsonStringDecode(s: JsonValue, dst: usize, cap: u32): u32 {
  if (s.kind != JSON_STRING) return 0;
  let p = s.ptr + 1;
  const e = s.ptr + s.len - 1;
  let n: u32 = 0;
  while (p < e) {
    const c = load<u8>(p);
    if (c != 0x5C) {
      if (n < cap) store<u8>(dst + n, c);
      n++;
      p++;
      continue;
    }
    escP = p + 1;
    let cp = unescape(e);
    p = escP;
    if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
    const k = encodeUtf8(cp);
    for (let i = 0; i < k; i++) {
      if (n < cap) store<u8>(dst + n, <u8>(utf8Tmp >> (8 * i)));
      n++;
    }
  }
  return n;
}

/** One-pass scan of a text that should be a JSON object: validates it while handing out its
 * top-level members, so that a validator reads its fields in a single pass. Act on the members
 * only once next() has returned false and status is 1 (0: not valid JSON; -1: valid JSON, not an
 * object). Reuse one scanner for every record. */
export class JsonObjectScan {
  status: i32 = 0;
  private p: usize = 0;
  private end: usize = 0;
  private maxDepth: i32 = JSON_MAX_DEPTH;
  private done: bool = true;

  begin(ptr: usize, len: u32, maxDepth: i32 = JSON_MAX_DEPTH): void {
    const e = ptr + len;
    this.end = e;
    this.maxDepth = maxDepth;
    this.done = true;
    this.status = 0;
    let p = ws(ptr, e);
    if (p >= e || load<u8>(p) != 0x7B) {
      this.status = jsonValidate(p, <u32>(e - p), maxDepth) ? -1 : 0;
      return;
    }
    if (maxDepth < 1) return;
    p = ws(p + 1, e);
    if (p < e && load<u8>(p) == 0x7D) {
      this.status = ws(p + 1, e) == e ? 1 : 0;
      return;
    }
    this.p = p;
    this.done = false;
  }

  next(name: JsonValue, value: JsonValue): bool {
    if (this.done) return false;
    this.done = true;
    const e = this.end;
    let p = this.p;
    if (p >= e || load<u8>(p) != 0x22) return false;
    let q = vString(p + 1, e);
    if (!q) return false;
    name.kind = JSON_STRING;
    name.ptr = p;
    name.len = <u32>(q - p);
    name.escaped = lastEscaped;
    p = ws(q, e);
    if (p >= e || load<u8>(p) != 0x3A) return false;
    p = ws(p + 1, e);
    if (p < e && load<u8>(p) == 0x22) {
      q = vString(p + 1, e);
      value.escaped = lastEscaped;
    } else {
      q = vValue(p, e, 1, this.maxDepth);
      value.escaped = false;
    }
    if (!q) return false;
    value.kind = kindOf(load<u8>(p));
    value.ptr = p;
    value.len = <u32>(q - p);
    p = ws(q, e);
    if (p < e && load<u8>(p) == 0x2C) {
      this.p = ws(p + 1, e);
      this.done = false;
    } else if (p < e && load<u8>(p) == 0x7D) {
      this.status = ws(p + 1, e) == e ? 1 : 0;
    } else {
      return false;
    }
    return true;
  }
}

/** Validates the text and finds a top-level member: 1 (found, first occurrence, in out),
 * 0 (no such member) or -1 (not valid JSON or not an object). */
export function jsonFind(ptr: usize, len: u32, name: ArrayBuffer, out: JsonValue): i32 {
  const sc = findScan;
  let found = false;
  sc.begin(ptr, len);
  while (sc.next(findName, findValue)) {
    if (!found && jsonStringIs(findName, name)) {
      out.kind = findValue.kind;
      out.ptr = findValue.ptr;
      out.len = findValue.len;
      out.escaped = findValue.escaped;
      found = true;
    }
  }
  return sc.status == 1 ? (found ? 1 : 0) : -1;
}
const findScan = new JsonObjectScan();
const findName = new JsonValue();
const findValue = new JsonValue();

// ---- Numbers ---------------------------------------------------------------------------------
//
// jsonNumber returns the double nearest to the decimal value (ties to even), like strtod: a fast
// exact path for up to 15 digits and |exponent| <= 22, otherwise an estimate refined by exact
// big-integer comparisons against the midpoints between neighbouring doubles. At most 800
// significant digits are kept; further non-zero digits are folded into a sticky digit, which
// cannot change the rounding (no midpoint needs more than 767 digits).

const MAXD: i32 = 800;
const LIMBS: i32 = 400;
let digs: usize = 0; // MAXD + 2 digit values
let bnD: usize = 0;
let bnA: usize = 0;
let bnB: usize = 0;
let lenD: i32 = 0;
let lenA: i32 = 0;
let lenB: i32 = 0;
let nd: i32 = 0;
let e10: i32 = 0;

function bnInit(): void {
  if (digs) return;
  digs = heap.alloc(MAXD + 2);
  bnD = heap.alloc(LIMBS * 4);
  bnA = heap.alloc(LIMBS * 4);
  bnB = heap.alloc(LIMBS * 4);
}

// p *= m + add, on a bignum of n limbs; returns the new length.
function bnMulAdd(p: usize, n: i32, m: u32, add: u32): i32 {
  let carry: u64 = add;
  for (let i = 0; i < n; i++) {
    const q = p + (<usize>i << 2);
    const v = <u64>load<u32>(q) * m + carry;
    store<u32>(q, <u32>v);
    carry = v >> 32;
  }
  if (carry) { store<u32>(p + (<usize>n << 2), <u32>carry); n++; }
  return n;
}

function bnMulPow10(p: usize, n: i32, e: i32): i32 {
  while (e >= 9) { n = bnMulAdd(p, n, 1000000000, 0); e -= 9; }
  if (e > 0) {
    let m: u32 = 1;
    for (let i = 0; i < e; i++) m *= 10;
    n = bnMulAdd(p, n, m, 0);
  }
  return n;
}

function bnShl(p: usize, n: i32, bits: i32): i32 {
  if (n == 0) return 0;
  const w = bits >> 5;
  const b = bits & 31;
  if (b) {
    let carry: u32 = 0;
    for (let i = 0; i < n; i++) {
      const q = p + (<usize>i << 2);
      const v = load<u32>(q);
      store<u32>(q, (v << b) | carry);
      carry = v >> (32 - b);
    }
    if (carry) { store<u32>(p + (<usize>n << 2), carry); n++; }
  }
  if (w) {
    memory.copy(p + (<usize>w << 2), p, <usize>n << 2);
    memory.fill(p, 0, <usize>w << 2);
    n += w;
  }
  return n;
}

function bnCmp(a: usize, la: i32, b: usize, lb: i32): i32 {
  while (la > 0 && load<u32>(a + (<usize>(la - 1) << 2)) == 0) la--;
  while (lb > 0 && load<u32>(b + (<usize>(lb - 1) << 2)) == 0) lb--;
  if (la != lb) return la < lb ? -1 : 1;
  for (let i = la - 1; i >= 0; i--) {
    const x = load<u32>(a + (<usize>i << 2));
    const y = load<u32>(b + (<usize>i << 2));
    if (x != y) return x < y ? -1 : 1;
  }
  return 0;
}

// Sign of (digits × 10^e10) − (k × 2^q).
function cmpMid(k: u64, q: i32): i32 {
  memory.copy(bnA, bnD, <usize>lenD << 2);
  lenA = lenD;
  store<u32>(bnB, <u32>k);
  store<u32>(bnB, <u32>(k >> 32), 4);
  lenB = (k >> 32) ? 2 : 1;
  if (e10 >= 0) lenA = bnMulPow10(bnA, lenA, e10);
  else lenB = bnMulPow10(bnB, lenB, -e10);
  if (q >= 0) lenB = bnShl(bnB, lenB, q);
  else lenA = bnShl(bnA, lenA, -q);
  return bnCmp(bnA, lenA, bnB, lenB);
}

const POW10: StaticArray<f64> = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11,
  1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22];

/** The double nearest to a JSON number token (overflow gives ±Infinity, underflow ±0); NaN for
 * values that are not numbers. */
export function jsonNumber(v: JsonValue): f64 {
  if (v.kind != JSON_NUMBER) return NaN;
  return parseNumber(v.ptr, v.len);
}

/** The double nearest to the validated JSON number token at [ptr, ptr+len). */
export function parseNumber(ptr: usize, len: u32): f64 {
  // Exact fast path without storing digits: at most 15 significant digits, no exponent part,
  // at most 22 fraction digits.
  let p = ptr;
  const e = ptr + len;
  const neg = load<u8>(p) == 0x2D;
  if (neg) p++;
  let d: u64 = 0;
  let n = 0, frac = 0;
  while (p < e && isDigit(load<u8>(p))) {
    const c = <u32>load<u8>(p) - 0x30;
    if (n || c) { d = d * 10 + c; n++; }
    p++;
  }
  if (p < e && load<u8>(p) == 0x2E) {
    p++;
    while (p < e && isDigit(load<u8>(p))) {
      const c = <u32>load<u8>(p) - 0x30;
      if (n || c) { d = d * 10 + c; n++; }
      frac++;
      p++;
    }
  }
  if (p == e && n <= 15 && frac <= 22) {
    const x = frac ? <f64>d / unchecked(POW10[frac]) : <f64>d;
    return neg ? -x : x;
  }
  return parseNumberSlow(ptr, len);
}

function parseNumberSlow(ptr: usize, len: u32): f64 {
  bnInit();
  let p = ptr;
  const e = ptr + len;
  let neg = false;
  if (load<u8>(p) == 0x2D) { neg = true; p++; }
  nd = 0;
  e10 = 0;
  let sticky = false;
  while (p < e && isDigit(load<u8>(p))) {
    const c = <u32>load<u8>(p) - 0x30;
    if (nd == 0 && c == 0) { p++; continue; }
    if (nd < MAXD) { store<u8>(digs + nd, <u8>c); nd++; }
    else { e10++; if (c) sticky = true; }
    p++;
  }
  if (p < e && load<u8>(p) == 0x2E) {
    p++;
    while (p < e && isDigit(load<u8>(p))) {
      const c = <u32>load<u8>(p) - 0x30;
      if (nd == 0 && c == 0) e10--;
      else if (nd < MAXD) { store<u8>(digs + nd, <u8>c); nd++; e10--; }
      else if (c) sticky = true;
      p++;
    }
  }
  if (p < e && (load<u8>(p) | 0x20) == 0x65) {
    p++;
    let eneg = false;
    if (load<u8>(p) == 0x2D) { eneg = true; p++; } else if (load<u8>(p) == 0x2B) p++;
    let x: i32 = 0;
    while (p < e && isDigit(load<u8>(p))) {
      if (x < 100000000) x = x * 10 + (<i32>load<u8>(p) - 0x30);
      p++;
    }
    e10 += eneg ? -x : x;
  }
  if (sticky) { store<u8>(digs + nd, 1); nd++; e10--; }
  while (nd > 0 && load<u8>(digs + nd - 1) == 0) { nd--; e10++; }
  const r = magnitude();
  return neg ? -r : r;
}

function magnitude(): f64 {
  if (nd == 0) return 0.0;
  const mag = nd + e10;
  if (mag > 310) return Infinity;
  if (mag <= -324) return 0.0;
  // Fast path: the digits and the power of ten are exact doubles; one rounding.
  if (nd <= 15 && e10 >= -22 && e10 <= 22) {
    let d: u64 = 0;
    for (let i = 0; i < nd; i++) d = d * 10 + load<u8>(digs + i);
    const f = <f64>d;
    if (e10 >= 0) return f * unchecked(POW10[e10]);
    return f / unchecked(POW10[-e10]);
  }
  // Estimate from the first 19 digits.
  const k = nd < 19 ? nd : 19;
  let d: u64 = 0;
  for (let i = 0; i < k; i++) d = d * 10 + load<u8>(digs + i);
  const ee = e10 + (nd - k);
  const h = ee / 2;
  let x = <f64>d * Math.pow(10, <f64>h) * Math.pow(10, <f64>(ee - h));
  if (x == 0) x = 5e-324;
  if (!isFinite(x)) x = f64.MAX_VALUE;
  // Exact digits as a bignum.
  lenD = 0;
  let i = 0;
  while (i < nd) {
    let chunk: u32 = 0;
    let mul: u32 = 1;
    for (let j = 0; j < 9 && i < nd; j++, i++) {
      chunk = chunk * 10 + load<u8>(digs + i);
      mul *= 10;
    }
    lenD = bnMulAdd(bnD, lenD, mul, chunk);
  }
  while (true) {
    const bits = reinterpret<u64>(x);
    const be = <i32>((bits >> 52) & 0x7FF);
    const frac = bits & 0xFFFFFFFFFFFFF;
    const m: u64 = be ? frac | 0x10000000000000 : frac;
    const q: i32 = be ? be - 1075 : -1074;
    const c = cmpMid(2 * m + 1, q - 1);
    if (c > 0 || (c == 0 && (m & 1))) {
      if (x == f64.MAX_VALUE) return Infinity;
      x = reinterpret<f64>(bits + 1);
      continue;
    }
    if (c == 0) return x;
    let c2: i32;
    if (frac == 0 && be > 1) c2 = cmpMid(4 * m - 1, q - 2);
    else c2 = cmpMid(2 * m - 1, q - 1);
    if (c2 < 0 || (c2 == 0 && (m & 1))) {
      if (bits == 1) return 0.0;
      x = reinterpret<f64>(bits - 1);
      continue;
    }
    return x;
  }
  return x; // unreachable
}
