//! Guest SDK for Sluice WASM transforms, ABI v1.0 and 1.1 (`sdk/abi/v1/ABI.md`).
//!
//! Standard library only, edition 2021, builds with rustc 1.63 for `wasm32-unknown-unknown`.
//! A validator in ten lines:
//!
//! ```ignore
//! sluice::validator!(
//!     r#"{"name":"has_id","version":"0.1.0","abi":"1.0","kinds":["validate"]}"#,
//!     |rec: &sluice::Record| -> Result<(), sluice::Reject> {
//!         match sluice::json::find(rec.value, "id") {
//!             Err(()) => Err(sluice::Reject::invalid("not valid JSON")),
//!             Ok(None) => Err(sluice::Reject::schema("id: missing")),
//!             Ok(Some(_)) => Ok(()),
//!         }
//!     }
//! );
//! ```
//!
//! Types with configuration implement [`Validator`] (one decision per record) or [`Transform`]
//! (drop, emit to ports, reject) and export it with [`export_validator!`] or [`export_transform!`];
//! aggregate modules (ABI 1.1) implement [`Aggregate`] and use [`export_aggregate!`] ([`aggregate`]).
//! The macros define the ABI exports (`tf_abi_version`, `tf_meta`, `tf_reserve`, `tf_init`,
//! `tf_process`, `tf_last_error`, ...) in the calling crate, which must be built as a `cdylib` with
//! `-C panic=abort`. The guest is single-threaded; the SDK keeps its buffers in statics and reuses them.

#![deny(missing_docs)]

use std::convert::TryInto;

/// The ABI version of a plain transform: `(major << 16) | minor` (aggregate modules: 1.1).
pub const ABI_VERSION: i32 = 0x0001_0000;

/// Well-known reject codes (ABI.md 10.1). Codes 4..=0xEFFF are free for each transform;
/// 0xF000.. are reserved for the host.
pub mod code {
    /// No particular code.
    pub const UNSPECIFIED: u16 = 0;
    /// Not parseable: not JSON, not UTF-8, wrong shape.
    pub const INVALID_INPUT: u16 = 1;
    /// A field missing or of the wrong type.
    pub const SCHEMA: u16 = 2;
    /// A value outside its allowed range.
    pub const RANGE: u16 = 3;
}

/// Log levels of [`log`].
#[derive(Clone, Copy, Debug)]
pub enum Level {
    /// Debug.
    Debug = 0,
    /// Info.
    Info = 1,
    /// Warning.
    Warn = 2,
    /// Error.
    Error = 3,
}

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "tf_host_v1")]
extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, ptr: *const u8, len: i32);
    #[link_name = "metric_add"]
    fn host_metric_add(ptr: *const u8, len: i32, delta: i64);
}
#[cfg(not(target_arch = "wasm32"))]
unsafe fn host_log(_level: i32, _ptr: *const u8, _len: i32) {}
#[cfg(not(target_arch = "wasm32"))]
unsafe fn host_metric_add(_ptr: *const u8, _len: i32, _delta: i64) {}

/// Sends one log line to the host, which rate-limits and truncates it: log per batch, not per
/// record.
pub fn log(level: Level, msg: &str) {
    unsafe { host_log(level as i32, msg.as_ptr(), msg.len() as i32) }
}

/// Adds `delta` to the stage counter `name` (`[a-z][a-z0-9_]{0,63}`; others are ignored).
pub fn metric_add(name: &str, delta: i64) {
    unsafe { host_metric_add(name.as_ptr(), name.len() as i32, delta) }
}

/// One input record. Its slices point into the host's input frame and live only during the
/// current batch.
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    /// Position in the batch, 0-based.
    pub index: u32,
    /// Record time in Unix milliseconds, `None` when the record has none.
    pub ts_ms: Option<i64>,
    /// The key, `None` when it is null.
    pub key: Option<&'a [u8]>,
    /// The value.
    pub value: &'a [u8],
    headers: &'a [u8],
}

impl<'a> Record<'a> {
    /// Iterates the headers (name, value) in order; names may repeat.
    pub fn headers(&self) -> Headers<'a> {
        Headers { b: self.headers, pos: 4 }
    }
}

/// Iterator over a record's headers.
pub struct Headers<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Iterator for Headers<'a> {
    type Item = (&'a [u8], &'a [u8]);
    fn next(&mut self) -> Option<Self::Item> {
        let b = self.b;
        let p = self.pos;
        if b.len() < 4 || p + 4 > b.len() {
            return None;
        }
        let kl = u32le(b, p) as usize;
        if p + 8 + kl > b.len() {
            return None;
        }
        let vl = u32le(b, p + 4 + kl) as usize;
        if p + 8 + kl + vl > b.len() {
            return None;
        }
        self.pos = p + 8 + kl + vl;
        Some((&b[p + 4..p + 4 + kl], &b[p + 8 + kl..p + 8 + kl + vl]))
    }
}

/// A rejection: a code (see [`code`]) and a UTF-8 reason that goes to the dead-letter sink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reject<'a> {
    /// The reject code.
    pub code: u16,
    /// The reason; the host truncates it to 1,024 bytes.
    pub reason: &'a str,
}

impl<'a> Reject<'a> {
    /// A rejection with an explicit code.
    pub fn new(code: u16, reason: &'a str) -> Self {
        Reject { code, reason }
    }
    /// Code 1, invalid input.
    pub fn invalid(reason: &'a str) -> Self {
        Reject::new(code::INVALID_INPUT, reason)
    }
    /// Code 2, schema violation.
    pub fn schema(reason: &'a str) -> Self {
        Reject::new(code::SCHEMA, reason)
    }
    /// Code 3, out of range.
    pub fn range(reason: &'a str) -> Self {
        Reject::new(code::RANGE, reason)
    }
}

/// A transform that decides PASS or REJECT for each record.
pub trait Validator: Sized {
    /// Builds the validator from the config JSON (an object, or empty). An error fails the stage
    /// with its message.
    fn init(config: &[u8]) -> Result<Self, String>;
    /// Decides one record: `Ok(())` passes it unchanged.
    fn validate<'s>(&'s self, rec: &Record<'_>) -> Result<(), Reject<'s>>;
}

/// A general transform: per record, pass (the default), drop, emit records or reject.
pub trait Transform: Sized {
    /// Builds the transform from the config JSON (an object, or empty).
    fn init(config: &[u8]) -> Result<Self, String>;
    /// Handles one record; dispositions go through `out` (the last call wins).
    fn process(&mut self, rec: &Record<'_>, out: &mut Output);
    /// Called once per batch after the last record; an `Err` fails the whole batch (the host
    /// retries it on a fresh instance and then bisects it). The default does nothing.
    fn end_batch(&mut self) -> Result<(), String> {
        Ok(())
    }
}

/// Builds the disposition of the current record (see [`Transform::process`]).
pub struct Output {
    cur: u32,
}

const PASS: u8 = 0;
const DROP: u8 = 1;
const EMIT: u8 = 2;
const REJECT: u8 = 3;

impl Output {
    /// Keeps the record unchanged (the default).
    pub fn pass(&mut self) {
        unsafe { set_disp(self.cur, PASS, 0, 0, 0) }
    }
    /// Removes the record.
    pub fn drop_record(&mut self) {
        unsafe { set_disp(self.cur, DROP, 0, 0, 0) }
    }
    /// Rejects the record with a code and a reason.
    pub fn reject(&mut self, code: u16, reason: &str) {
        let r = &reason.as_bytes()[..reason.len().min(1024)];
        unsafe {
            let off = out_put(r);
            set_disp(self.cur, REJECT, code, off, r.len() as u32);
        }
    }
    /// Emits a record derived from this one on output port `port` (an index into the meta
    /// `ports`, 0 = "main"), inheriting the input's key, headers and time.
    pub fn emit(&mut self, port: u32, value: &[u8]) {
        self.emit_record(port, None, value, None)
    }
    /// Emits a record with an explicit key (`Some(None)` = null key, `None` = inherit) and time
    /// (`None` = inherit).
    pub fn emit_record(&mut self, port: u32, key: Option<Option<&[u8]>>, value: &[u8], ts_ms: Option<i64>) {
        unsafe {
            let val_off = out_put(value);
            let (key_off, key_len, flags) = match key {
                None => (0u32, u32::MAX, 0u32),
                Some(None) => (0, 0, 1),
                Some(Some(k)) => (out_put(k), k.len() as u32, 0),
            };
            let st = rt();
            let mut d = [0u8; 48];
            d[0..8].copy_from_slice(&ts_ms.unwrap_or(i64::MIN).to_le_bytes());
            d[8..16].copy_from_slice(&(self.cur as u64).to_le_bytes());
            d[16..20].copy_from_slice(&key_off.to_le_bytes());
            d[20..24].copy_from_slice(&key_len.to_le_bytes());
            d[24..28].copy_from_slice(&val_off.to_le_bytes());
            d[28..32].copy_from_slice(&(value.len() as u32).to_le_bytes());
            d[36..40].copy_from_slice(&u32::MAX.to_le_bytes()); // inherit headers
            d[40..44].copy_from_slice(&port.to_le_bytes());
            d[44..48].copy_from_slice(&flags.to_le_bytes());
            let n_od = (st.od.len() / 48) as u32;
            st.od.extend_from_slice(&d);
            let p = 32 + self.cur as usize * 12;
            let (a, b) = (u32le(&st.out, p + 4), u32le(&st.out, p + 8));
            if st.out[p] == EMIT && a + b == n_od {
                st.out[p + 8..p + 12].copy_from_slice(&(b + 1).to_le_bytes());
                return;
            }
        }
        unsafe {
            set_disp(self.cur, EMIT, 0, (rt().od.len() / 48 - 1) as u32, 1);
        }
    }
}

fn u32le(b: &[u8], p: usize) -> u32 {
    u32::from_le_bytes(b[p..p + 4].try_into().unwrap())
}

/// The SDK's buffers (ABI.md 9): input (8-byte aligned), result frame, OutDesc table, error.
struct Runtime {
    input: Vec<u64>,
    out: Vec<u8>,
    od: Vec<u8>,
    err: Vec<u8>,
}

static mut RT: Runtime = Runtime { input: Vec::new(), out: Vec::new(), od: Vec::new(), err: Vec::new() };

#[inline]
unsafe fn rt() -> &'static mut Runtime {
    &mut *std::ptr::addr_of_mut!(RT)
}

unsafe fn out_put(b: &[u8]) -> u32 {
    let st = rt();
    let off = st.out.len() as u32;
    st.out.extend_from_slice(b);
    off
}

unsafe fn set_disp(i: u32, action: u8, code: u16, a: u32, b: u32) {
    let st = rt();
    let p = 32 + i as usize * 12;
    let d = &mut st.out[p..p + 12];
    d[0] = action;
    d[1] = 0;
    d[2..4].copy_from_slice(&code.to_le_bytes());
    d[4..8].copy_from_slice(&a.to_le_bytes());
    d[8..12].copy_from_slice(&b.to_le_bytes());
}

fn ptrlen(p: *const u8, len: usize) -> i64 {
    (((p as usize as u64) << 32) | (len as u32 as u64)) as i64
}

fn set_error(msg: &str) -> i32 {
    unsafe {
        let st = rt();
        st.err.clear();
        st.err.extend_from_slice(&msg.as_bytes()[..msg.len().min(1024)]);
    }
    -1
}

/// Runtime entry points used by the export macros. Not part of the stable API.
#[doc(hidden)]
pub mod __rt {
    use super::*;

    pub fn abi_version() -> i32 {
        ABI_VERSION
    }

    pub fn meta(json: &'static str) -> i64 {
        ptrlen(json.as_ptr(), json.len())
    }

    pub fn last_error() -> i64 {
        unsafe {
            let st = rt();
            ptrlen(st.err.as_ptr(), st.err.len())
        }
    }

    pub fn reserve(cap: i32) -> i32 {
        unsafe {
            let st = rt();
            let want = (cap as u32 as usize + 7) / 8;
            if st.input.len() < want || st.input.is_empty() {
                st.input = Vec::new(); // free the old buffer first
                st.input.resize(want.max(512), 0);
            }
            st.input.as_mut_ptr() as usize as i32
        }
    }

    unsafe fn input(len: usize) -> Option<&'static [u8]> {
        let st = rt();
        if len > st.input.len() * 8 {
            return None;
        }
        Some(std::slice::from_raw_parts(st.input.as_ptr() as *const u8, len))
    }

    pub fn init<T>(state: &mut Option<T>, cfg_len: i32, f: fn(&[u8]) -> Result<T, String>) -> i32 {
        unsafe {
            rt().err.clear();
            let cfg = match input(cfg_len as u32 as usize) {
                Some(c) => c,
                None if cfg_len == 0 => &[],
                None => return set_error("init: config is not in the reserved buffer"),
            };
            match f(cfg) {
                Ok(t) => {
                    *state = Some(t);
                    0
                }
                Err(e) => set_error(&e),
            }
        }
    }

    fn frame_error(msg: &str) -> i64 {
        set_error(msg);
        -2
    }

    /// Checks the frame and prepares the result buffer; returns (frame, n, desc_off, desc_size).
    unsafe fn begin(in_len: i32) -> Result<(&'static [u8], u32, usize, usize), i64> {
        let st = rt();
        st.err.clear();
        let f = match input(in_len as u32 as usize) {
            Some(f) if f.len() >= 40 => f,
            _ => return Err(frame_error("frame: bad length")),
        };
        let hsize = u16::from_le_bytes([f[8], f[9]]) as usize;
        let dsize = u16::from_le_bytes([f[10], f[11]]) as usize;
        if &f[0..4] != b"TFB1" || u16::from_le_bytes([f[4], f[5]]) != 1 || u32le(f, 12) != 1 || hsize < 40 || dsize < 48 {
            return Err(frame_error("frame: unsupported magic, version or kind"));
        }
        let n = u32le(f, 16);
        let doff = u32le(f, 24) as usize;
        if doff as u64 + n as u64 * dsize as u64 > f.len() as u64 {
            return Err(frame_error("frame: descriptors out of range"));
        }
        st.out.clear();
        st.out.resize(32 + n as usize * 12, 0);
        st.od.clear();
        Ok((f, n, doff, dsize))
    }

    pub(crate) fn record(f: &'static [u8], i: u32, doff: usize, dsize: usize) -> Record<'static> {
        let d = &f[doff + i as usize * dsize..];
        let ts = i64::from_le_bytes(d[0..8].try_into().unwrap());
        let flags = u32le(d, 44);
        let span = |o: usize| {
            let off = u32le(d, o) as usize;
            let len = u32le(d, o + 4) as usize;
            if len == 0 {
                &f[0..0]
            } else {
                &f[off..off + len]
            }
        };
        Record {
            index: i,
            ts_ms: if ts == i64::MIN { None } else { Some(ts) },
            key: if flags & 1 != 0 { None } else { Some(span(16)) },
            value: span(24),
            headers: span(32),
        }
    }

    unsafe fn finish(n: u32) -> i64 {
        let st = rt();
        while st.out.len() % 8 != 0 {
            st.out.push(0);
        }
        let od_off = st.out.len() as u32;
        let n_od = (st.od.len() / 48) as u32;
        st.out.extend_from_slice(&st.od);
        let h = &mut st.out[0..32];
        h[0..4].copy_from_slice(b"TFR1");
        h[4..6].copy_from_slice(&32u16.to_le_bytes());
        h[6..8].copy_from_slice(&48u16.to_le_bytes());
        h[8..12].copy_from_slice(&n.to_le_bytes());
        h[12..16].copy_from_slice(&32u32.to_le_bytes());
        h[16..20].copy_from_slice(&n_od.to_le_bytes());
        h[20..24].copy_from_slice(&od_off.to_le_bytes());
        h[24..32].fill(0);
        ptrlen(st.out.as_ptr(), st.out.len())
    }

    pub fn process_validator<V: Validator>(state: &mut Option<V>, in_len: i32) -> i64 {
        unsafe {
            let v = match state {
                Some(v) => v,
                None => return set_error("tf_process before tf_init") as i64,
            };
            let (f, n, doff, dsize) = match begin(in_len) {
                Ok(x) => x,
                Err(e) => return e,
            };
            for i in 0..n {
                let rec = record(f, i, doff, dsize);
                if let Err(r) = v.validate(&rec) {
                    let b = &r.reason.as_bytes()[..r.reason.len().min(1024)];
                    let off = out_put(b);
                    set_disp(i, REJECT, r.code, off, b.len() as u32);
                }
            }
            finish(n)
        }
    }

    pub fn process_transform<T: Transform>(state: &mut Option<T>, in_len: i32) -> i64 {
        unsafe {
            let t = match state {
                Some(t) => t,
                None => return set_error("tf_process before tf_init") as i64,
            };
            let (f, n, doff, dsize) = match begin(in_len) {
                Ok(x) => x,
                Err(e) => return e,
            };
            let mut out = Output { cur: 0 };
            for i in 0..n {
                out.cur = i;
                t.process(&record(f, i, doff, dsize), &mut out);
            }
            if let Err(e) = t.end_batch() {
                return set_error(&e) as i64;
            }
            finish(n)
        }
    }
}

/// Exports a [`Validator`] type as the module's transform. `META` is the metadata JSON
/// (ABI.md 8), a `&'static str`.
#[macro_export]
macro_rules! export_validator {
    ($ty:ty, $meta:expr) => {
        static mut __SLUICE_STATE: Option<$ty> = None;
        $crate::__export_common!($ty, $meta, <$ty as $crate::Validator>::init);
        #[no_mangle]
        pub extern "C" fn tf_process(in_len: i32) -> i64 {
            $crate::__rt::process_validator::<$ty>(unsafe { &mut *::std::ptr::addr_of_mut!(__SLUICE_STATE) }, in_len)
        }
    };
}

/// Exports a [`Transform`] type as the module's transform. `META` is the metadata JSON.
#[macro_export]
macro_rules! export_transform {
    ($ty:ty, $meta:expr) => {
        static mut __SLUICE_STATE: Option<$ty> = None;
        $crate::__export_common!($ty, $meta, <$ty as $crate::Transform>::init);
        #[no_mangle]
        pub extern "C" fn tf_process(in_len: i32) -> i64 {
            $crate::__rt::process_transform::<$ty>(unsafe { &mut *::std::ptr::addr_of_mut!(__SLUICE_STATE) }, in_len)
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __export_common {
    ($ty:ty, $meta:expr, $init:expr) => {
        #[no_mangle]
        pub extern "C" fn tf_abi_version() -> i32 {
            $crate::__rt::abi_version()
        }
        #[no_mangle]
        pub extern "C" fn tf_meta() -> i64 {
            $crate::__rt::meta($meta)
        }
        #[no_mangle]
        pub extern "C" fn tf_reserve(cap: i32) -> i32 {
            $crate::__rt::reserve(cap)
        }
        #[no_mangle]
        pub extern "C" fn tf_last_error() -> i64 {
            $crate::__rt::last_error()
        }
        #[no_mangle]
        pub extern "C" fn tf_init(cfg_len: i32) -> i32 {
            $crate::__rt::init::<$ty>(unsafe { &mut *::std::ptr::addr_of_mut!(__SLUICE_STATE) }, cfg_len, $init)
        }
    };
}

/// Exports a configuration-free validator written as a closure
/// `|rec: &sluice::Record| -> Result<(), sluice::Reject> { ... }`; see the crate example.
#[macro_export]
macro_rules! validator {
    ($meta:expr, $f:expr) => {
        struct __SluiceClosureValidator;
        impl $crate::Validator for __SluiceClosureValidator {
            fn init(_config: &[u8]) -> Result<Self, String> {
                Ok(__SluiceClosureValidator)
            }
            fn validate<'s>(&'s self, rec: &$crate::Record<'_>) -> Result<(), $crate::Reject<'s>> {
                let f: fn(&$crate::Record<'_>) -> Result<(), $crate::Reject<'static>> = $f;
                f(rec)
            }
        }
        $crate::export_validator!(__SluiceClosureValidator, $meta);
    };
}

pub mod aggregate;
pub mod json;

pub use aggregate::{Aggregate, Emitter, Slot, State, ABI_VERSION_AGGREGATE};
