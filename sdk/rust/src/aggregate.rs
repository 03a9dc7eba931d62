//! Aggregate modules (ABI 1.1, `sdk/abi/v1/ABI.md` section 13).
//!
//! The host owns keys, windows, timers and state; the module folds records into an opaque state
//! blob per *slot* (one key in one window) and turns a slot's state into records when the host
//! asks. A type implements [`Aggregate`] and [`export_aggregate!`](crate::export_aggregate)
//! exports it:
//!
//! ```ignore
//! use sluice::{Aggregate, Emitter, Output, Record, Slot, State};
//!
//! struct Count;
//! impl Aggregate for Count {
//!     fn init(_config: &[u8]) -> Result<Self, String> {
//!         Ok(Count)
//!     }
//!     fn accumulate(&mut self, _slot: &Slot, state: &mut State, _rec: &Record, _out: &mut Output) -> Result<(), String> {
//!         let n = state.get().try_into().map(u64::from_le_bytes).unwrap_or(0); // empty: a new slot
//!         state.set(&(n + 1).to_le_bytes()); // the record is dropped (absorbed) by default
//!         Ok(())
//!     }
//!     fn emit(&mut self, _slot: &Slot, state: &mut State, out: &mut Emitter) -> Result<(), String> {
//!         let n = state.get().try_into().map(u64::from_le_bytes).unwrap_or(0);
//!         out.emit(0, format!(r#"{{"count":{}}}"#, n).as_bytes());
//!         Ok(())
//!     }
//!     fn merge(&mut self, _slot: &Slot, state: &mut State, other: &[u8]) -> Result<(), String> {
//!         let a = state.get().try_into().map(u64::from_le_bytes).unwrap_or(0);
//!         let b = other.try_into().map(u64::from_le_bytes).unwrap_or(0);
//!         state.set(&(a + b).to_le_bytes());
//!         Ok(())
//!     }
//! }
//! sluice::export_aggregate!(
//!     Count,
//!     r#"{"name":"count","version":"0.1.0","abi":"1.1","kinds":["aggregate"],"state_version":1}"#
//! );
//! ```

use super::*;

/// The ABI version of an aggregate module: 1.1.
pub const ABI_VERSION_AGGREGATE: i32 = 0x0001_0001;

/// One slot of an aggregation frame: a key in a window. Borrowed from the input frame for the
/// current call.
#[derive(Clone, Copy, Debug)]
pub struct Slot<'a> {
    /// Position of the slot in the frame.
    pub index: u32,
    /// Window start in Unix ms, inclusive; `i64::MIN` when the stage has no window.
    pub window_start: i64,
    /// Window end in Unix ms, exclusive; `i64::MAX` when the stage has no window.
    pub window_end: i64,
    /// The slot's key, `None` when it is null.
    pub key: Option<&'a [u8]>,
    /// Emit: the window closes and the slot is deleted after the call.
    pub is_final: bool,
}

/// The state of the current slot: [`get`](State::get) reads it (empty for a new slot), and
/// [`set`](State::set) or [`delete`](State::delete) replaces it. A slot whose callback sets
/// nothing keeps its state.
pub struct State<'a> {
    cur: &'a [u8],
    new: &'a mut Vec<u8>,
    set: bool,
}

impl<'a> State<'a> {
    /// The slot's state: the one set in this callback, else the current one (the frame's, or
    /// the one an earlier record of the same call set). Empty for a new slot.
    pub fn get(&self) -> &[u8] {
        if self.set {
            self.new
        } else {
            self.cur
        }
    }
    /// Replaces the slot's state (copied; the last call wins). An empty state deletes the slot.
    pub fn set(&mut self, state: &[u8]) {
        self.new.clear();
        self.new.extend_from_slice(state);
        self.set = true;
    }
    /// Deletes the slot: the host forgets its state.
    pub fn delete(&mut self) {
        self.new.clear();
        self.set = true;
    }
}

/// An aggregate module. Each callback returns `Ok(())`, or an `Err` that fails the whole call
/// (the host retries it on a fresh instance and then isolates the records that fail alone).
pub trait Aggregate: Sized {
    /// Builds the module from the config JSON (an object, or empty). An error fails the stage
    /// with its message.
    fn init(config: &[u8]) -> Result<Self, String>;
    /// Folds one record into its slot's state. The record's disposition goes through `out`,
    /// DROP (absorbed) by default: `out.pass()` forwards it on port main, `out.reject(..)`
    /// refuses it (a state set for a rejected record is discarded: it is not folded),
    /// `out.emit(..)`, `out.emit_record(..)` and [`Output::emit_input`] emit records at once.
    /// Records of one call that share a slot are folded in frame order, each seeing the state
    /// the previous one set.
    fn accumulate(&mut self, slot: &Slot<'_>, state: &mut State<'_>, rec: &Record<'_>, out: &mut Output) -> Result<(), String>;
    /// Writes the slot's records (`slot.is_final`: the window closes; a state set then is
    /// ignored, since the slot is deleted; otherwise it is an early update, which may set one).
    fn emit(&mut self, slot: &Slot<'_>, state: &mut State<'_>, out: &mut Emitter) -> Result<(), String>;
    /// Folds `other` into the slot's state and sets the result (session windows). The default
    /// fails: a module without it cannot be used with session windows.
    fn merge(&mut self, slot: &Slot<'_>, state: &mut State<'_>, other: &[u8]) -> Result<(), String> {
        let _ = (slot, state, other);
        Err("merge: this module does not merge states (no session windows)".into())
    }
}

/// Writes the records of a slot in [`Aggregate::emit`].
pub struct Emitter {
    slot: u32,
}

impl Emitter {
    /// Emits a record on output port `port` (an index into the meta `ports`, 0 = "main") with the
    /// slot's key and the time `window_end - 1` (the host's clock without a window), no headers.
    pub fn emit(&mut self, port: u32, value: &[u8]) {
        self.emit_record(port, None, value, None)
    }
    /// Emits a record with an explicit key (`Some(None)` = null key, `None` = the slot's) and
    /// time (`None` = the slot's).
    pub fn emit_record(&mut self, port: u32, key: Option<Option<&[u8]>>, value: &[u8], ts_ms: Option<i64>) {
        unsafe {
            let val_off = out_put(value);
            let (key_off, key_len, flags) = match key {
                None => (0u32, u32::MAX, 0u32),
                Some(None) => (0, 0, 1),
                Some(Some(k)) => (out_put(k), k.len() as u32, 0),
            };
            let d = out_desc(ts_ms.unwrap_or(i64::MIN), self.slot, key_off, key_len, val_off, value.len() as u32, 0, port, flags);
            rt().od.extend_from_slice(&d);
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn out_desc(ts: i64, seq: u32, key_off: u32, key_len: u32, val_off: u32, val_len: u32, hdr_len: u32, port: u32, flags: u32) -> [u8; 48] {
    let mut d = [0u8; 48];
    d[0..8].copy_from_slice(&ts.to_le_bytes());
    d[8..16].copy_from_slice(&(seq as u64).to_le_bytes());
    d[16..20].copy_from_slice(&key_off.to_le_bytes());
    d[20..24].copy_from_slice(&key_len.to_le_bytes());
    d[24..28].copy_from_slice(&val_off.to_le_bytes());
    d[28..32].copy_from_slice(&val_len.to_le_bytes());
    d[36..40].copy_from_slice(&hdr_len.to_le_bytes());
    d[40..44].copy_from_slice(&port.to_le_bytes());
    d[44..48].copy_from_slice(&flags.to_le_bytes());
    d
}

impl Output {
    /// Aggregate modules, in [`Aggregate::accumulate`]: emits the input record itself on output
    /// port `port`, with its key, value, headers and time (ABI.md 13.4), e.g. beside an alert
    /// emitted on another port.
    pub fn emit_input(&mut self, port: u32) {
        unsafe {
            let d = out_desc(i64::MIN, self.cur, 0, u32::MAX, 0, u32::MAX, u32::MAX, port, 0);
            let st = rt();
            let n_od = (st.od.len() / 48) as u32;
            st.od.extend_from_slice(&d);
            let p = 32 + self.cur as usize * 12;
            let (a, b) = (u32le(&st.out, p + 4), u32le(&st.out, p + 8));
            if st.out[p] == EMIT && a + b == n_od {
                st.out[p + 8..p + 12].copy_from_slice(&(b + 1).to_le_bytes());
            } else {
                set_disp(self.cur, EMIT, 0, n_od, 1);
            }
        }
    }
}

/// The state of one slot during a call: in the frame (`off`, `frame_len`) until a callback sets
/// one, then in `buf`, which the slot keeps across calls.
struct SlotState {
    buf: Vec<u8>,
    in_buf: bool,
    off: usize,
    frame_len: usize,
    changed: bool,
    out_off: u32,
}

impl SlotState {
    fn frame_state(&self, f: &'static [u8]) -> &'static [u8] {
        if self.frame_len == 0 {
            &f[0..0]
        } else {
            &f[self.off..self.off + self.frame_len]
        }
    }
    fn current(&self, f: &'static [u8]) -> &[u8] {
        if self.in_buf {
            &self.buf
        } else {
            self.frame_state(f)
        }
    }
}

struct AggRuntime {
    slots: Vec<SlotState>,
    pend: Vec<u8>, // the state the current callback sets
}

static mut AGG: AggRuntime = AggRuntime { slots: Vec::new(), pend: Vec::new() };

#[inline]
unsafe fn agg() -> &'static mut AggRuntime {
    &mut *std::ptr::addr_of_mut!(AGG)
}

/// An aggregation frame being answered.
struct Frame {
    kind: u32,
    f: &'static [u8],
    n: u32,
    doff: usize,
    dsize: usize,
    ns: usize,
    soff: usize,
}

impl Frame {
    fn slot(&self, s: usize) -> Slot<'static> {
        let d = &self.f[self.soff + s * 48..self.soff + s * 48 + 48];
        let flags = u32le(d, 40);
        let (ko, kl) = (u32le(d, 16) as usize, u32le(d, 20) as usize);
        Slot {
            index: s as u32,
            window_start: i64::from_le_bytes(d[0..8].try_into().unwrap()),
            window_end: i64::from_le_bytes(d[8..16].try_into().unwrap()),
            key: if flags & 2 != 0 {
                None
            } else if kl == 0 {
                Some(&self.f[0..0])
            } else {
                Some(&self.f[ko..ko + kl])
            },
            is_final: flags & 1 != 0,
        }
    }
}

/// Makes the state the current callback set the slot's state.
fn commit(ag: &mut AggRuntime, s: usize) {
    let e = &mut ag.slots[s];
    std::mem::swap(&mut e.buf, &mut ag.pend);
    e.in_buf = true;
    e.changed = true;
}

fn frame_error(msg: &str) -> i64 {
    set_error(msg);
    -2
}

/// Checks an aggregation frame of the given kind and prepares the slots and the result buffer.
unsafe fn begin(in_len: i32, kind: u32) -> Result<Frame, i64> {
    let st = rt();
    st.err.clear();
    let len = in_len as u32 as usize;
    if len < 40 || len > st.input.len() * 8 {
        return Err(frame_error("frame: bad length"));
    }
    let f: &'static [u8] = std::slice::from_raw_parts(st.input.as_ptr() as *const u8, len);
    let hsize = u16::from_le_bytes([f[8], f[9]]) as usize;
    let dsize = u16::from_le_bytes([f[10], f[11]]) as usize;
    if &f[0..4] != b"TFB1" || u16::from_le_bytes([f[4], f[5]]) != 1 || u32le(f, 12) != kind || hsize < 40 || dsize < 48 {
        return Err(frame_error("frame: unsupported magic, version or kind"));
    }
    let n = if kind == 2 { u32le(f, 16) } else { 0 };
    let ns = u32le(f, 20) as usize;
    let doff = u32le(f, 24) as usize;
    let soff = u32le(f, 28) as usize;
    if doff as u64 + n as u64 * dsize as u64 > len as u64 || soff as u64 + ns as u64 * 48 > len as u64 {
        return Err(frame_error("frame: descriptors out of range"));
    }
    for i in 0..n as usize {
        if u32le(f, doff + i * dsize + 40) as usize >= ns {
            return Err(frame_error("frame: a record's slot is out of range"));
        }
    }
    let ag = agg();
    while ag.slots.len() < ns {
        ag.slots.push(SlotState { buf: Vec::new(), in_buf: false, off: 0, frame_len: 0, changed: false, out_off: 0 });
    }
    for s in 0..ns {
        let d = soff + s * 48;
        for k in [16, 24, 32] {
            // key, state, other; an empty one's offset is unspecified
            let l = u32le(f, d + k + 4) as u64;
            if l > 0 && u32le(f, d + k) as u64 + l > len as u64 {
                return Err(frame_error("frame: a slot's key or state is out of range"));
            }
        }
        let e = &mut ag.slots[s];
        e.off = u32le(f, d + 24) as usize;
        e.frame_len = u32le(f, d + 28) as usize;
        e.in_buf = false;
        e.changed = false;
    }
    st.out.clear();
    st.out.resize(32 + n as usize * 12, 0);
    for i in 0..n as usize {
        st.out[32 + i * 12] = DROP; // the default
    }
    st.od.clear();
    Ok(Frame { kind, f, n, doff, dsize, ns, soff })
}

/// Writes the new states, the OutDesc and StateOut tables and the header (ABI.md 13.3). In a step
/// or an emit, a slot whose state comes out as it went in gets no StateOut; a merge returns one
/// for every slot its callback set. A new slot that stays empty is not created; a slot emptied by
/// its callback is deleted.
unsafe fn finish(fr: &Frame) -> i64 {
    let st = rt();
    let ag = agg();
    let mut n_state = 0u32;
    for e in ag.slots[..fr.ns].iter_mut() {
        if !e.changed {
            continue;
        }
        if e.buf.len() == e.frame_len && (e.buf.is_empty() || (fr.kind != 3 && e.buf[..] == *e.frame_state(fr.f))) {
            e.changed = false;
            continue;
        }
        if !e.buf.is_empty() {
            e.out_off = st.out.len() as u32;
            st.out.extend_from_slice(&e.buf);
        }
        n_state += 1;
    }
    while st.out.len() % 8 != 0 {
        st.out.push(0);
    }
    let od_off = st.out.len() as u32;
    let n_od = (st.od.len() / 48) as u32;
    st.out.extend_from_slice(&st.od);
    let st_off = st.out.len() as u32;
    for (s, e) in ag.slots[..fr.ns].iter().enumerate() {
        if !e.changed {
            continue;
        }
        let l = e.buf.len() as u32;
        st.out.extend_from_slice(&(s as u32).to_le_bytes());
        st.out.extend_from_slice(&(if l == 0 { 1u32 } else { 0 }).to_le_bytes()); // 1 = delete
        st.out.extend_from_slice(&(if l == 0 { 0 } else { e.out_off }).to_le_bytes());
        st.out.extend_from_slice(&l.to_le_bytes());
    }
    let h = &mut st.out[0..32];
    h[0..4].copy_from_slice(b"TFR1");
    h[4..6].copy_from_slice(&32u16.to_le_bytes());
    h[6..8].copy_from_slice(&48u16.to_le_bytes());
    h[8..12].copy_from_slice(&fr.n.to_le_bytes());
    h[12..16].copy_from_slice(&32u32.to_le_bytes());
    h[16..20].copy_from_slice(&n_od.to_le_bytes());
    h[20..24].copy_from_slice(&od_off.to_le_bytes());
    h[24..28].copy_from_slice(&n_state.to_le_bytes());
    h[28..32].copy_from_slice(&st_off.to_le_bytes());
    ptrlen(st.out.as_ptr(), st.out.len())
}

/// Runtime entry points used by [`export_aggregate!`](crate::export_aggregate). Not part of
/// the stable API.
#[doc(hidden)]
pub mod __agg {
    use super::*;

    pub fn abi_version() -> i32 {
        ABI_VERSION_AGGREGATE
    }

    pub fn process(_in_len: i32) -> i64 {
        unsafe { rt().err.clear() }
        frame_error("tf_process: an aggregate module takes aggregation frames (tf_agg_step)")
    }

    pub fn step<A: Aggregate>(state: &mut Option<A>, in_len: i32) -> i64 {
        unsafe {
            let a = match state {
                Some(a) => a,
                None => return set_error("tf_agg_step before tf_init") as i64,
            };
            let fr = match begin(in_len, 2) {
                Ok(x) => x,
                Err(e) => return e,
            };
            let ag = agg();
            let mut out = Output { cur: 0 };
            for i in 0..fr.n {
                let s = u32le(fr.f, fr.doff + i as usize * fr.dsize + 40) as usize;
                let rec = __rt::record(fr.f, i, fr.doff, fr.dsize);
                let slot = fr.slot(s);
                out.cur = i;
                let mut st = State { cur: ag.slots[s].current(fr.f), new: &mut ag.pend, set: false };
                if let Err(e) = a.accumulate(&slot, &mut st, &rec, &mut out) {
                    return set_error(&e) as i64;
                }
                // A rejected record is not folded (ABI.md 13.3).
                if st.set && rt().out[32 + i as usize * 12] != REJECT {
                    commit(ag, s);
                }
            }
            finish(&fr)
        }
    }

    pub fn emit<A: Aggregate>(state: &mut Option<A>, in_len: i32) -> i64 {
        unsafe {
            let a = match state {
                Some(a) => a,
                None => return set_error("tf_agg_emit before tf_init") as i64,
            };
            let fr = match begin(in_len, 4) {
                Ok(x) => x,
                Err(e) => return e,
            };
            let ag = agg();
            for s in 0..fr.ns {
                let slot = fr.slot(s);
                let mut out = Emitter { slot: s as u32 };
                let mut st = State { cur: ag.slots[s].current(fr.f), new: &mut ag.pend, set: false };
                if let Err(e) = a.emit(&slot, &mut st, &mut out) {
                    return set_error(&e) as i64;
                }
                // A final emit's state is ignored: the slot is deleted.
                if st.set && !slot.is_final {
                    commit(ag, s);
                }
            }
            finish(&fr)
        }
    }

    pub fn merge<A: Aggregate>(state: &mut Option<A>, in_len: i32) -> i64 {
        unsafe {
            let a = match state {
                Some(a) => a,
                None => return set_error("tf_agg_merge before tf_init") as i64,
            };
            let fr = match begin(in_len, 3) {
                Ok(x) => x,
                Err(e) => return e,
            };
            let ag = agg();
            for s in 0..fr.ns {
                let slot = fr.slot(s);
                let d = fr.soff + s * 48;
                let (oo, ol) = (u32le(fr.f, d + 32) as usize, u32le(fr.f, d + 36) as usize);
                let other = if ol == 0 { &fr.f[0..0] } else { &fr.f[oo..oo + ol] };
                let mut st = State { cur: ag.slots[s].current(fr.f), new: &mut ag.pend, set: false };
                if let Err(e) = a.merge(&slot, &mut st, other) {
                    return set_error(&e) as i64;
                }
                if st.set {
                    commit(ag, s);
                }
            }
            finish(&fr)
        }
    }
}

/// Exports an [`Aggregate`] type as the module: `tf_abi_version` (1.1), `tf_meta`, `tf_reserve`,
/// `tf_init`, `tf_last_error`, `tf_process` (which returns -2: an aggregate module takes only
/// aggregation frames), `tf_agg_step`, `tf_agg_emit` and `tf_agg_merge`. `META` is the metadata
/// JSON, a `&'static str`, with `"abi":"1.1"`, `"kinds":["aggregate"]` and optionally
/// `"state_version"`.
#[macro_export]
macro_rules! export_aggregate {
    ($ty:ty, $meta:expr) => {
        static mut __SLUICE_STATE: Option<$ty> = None;
        #[no_mangle]
        pub extern "C" fn tf_abi_version() -> i32 {
            $crate::aggregate::__agg::abi_version()
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
            $crate::__rt::init::<$ty>(
                unsafe { &mut *::std::ptr::addr_of_mut!(__SLUICE_STATE) },
                cfg_len,
                <$ty as $crate::Aggregate>::init,
            )
        }
        #[no_mangle]
        pub extern "C" fn tf_process(in_len: i32) -> i64 {
            $crate::aggregate::__agg::process(in_len)
        }
        #[no_mangle]
        pub extern "C" fn tf_agg_step(in_len: i32) -> i64 {
            $crate::aggregate::__agg::step::<$ty>(unsafe { &mut *::std::ptr::addr_of_mut!(__SLUICE_STATE) }, in_len)
        }
        #[no_mangle]
        pub extern "C" fn tf_agg_emit(in_len: i32) -> i64 {
            $crate::aggregate::__agg::emit::<$ty>(unsafe { &mut *::std::ptr::addr_of_mut!(__SLUICE_STATE) }, in_len)
        }
        #[no_mangle]
        pub extern "C" fn tf_agg_merge(in_len: i32) -> i64 {
            $crate::aggregate::__agg::merge::<$ty>(unsafe { &mut *::std::ptr::addr_of_mut!(__SLUICE_STATE) }, in_len)
        }
    };
}
