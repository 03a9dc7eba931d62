/*
 * sluice_transform.h: single-header C SDK for Sluice WASM transforms (ABI v1.0, sdk/abi/v1/ABI.md).
 *
 * In exactly one .c file of the module:
 *
 *     #define SLUICE_TRANSFORM_IMPLEMENTATION
 *     #include "sluice_transform.h"
 *
 *     static void check(sluice_ctx *c, const sluice_record *r) {
 *         sluice_json_value v;
 *         int found = sluice_json_find(r->value, r->value_len, "id", &v);
 *         if (found < 0) sluice_reject(c, SLUICE_REJECT_INVALID_INPUT, "not valid JSON");
 *         else if (!found) sluice_reject(c, SLUICE_REJECT_SCHEMA, "id: missing");
 *     }
 *     SLUICE_TRANSFORM("{\"name\":\"has_id\",\"version\":\"0.1.0\",\"abi\":\"1.0\","
 *                      "\"kinds\":[\"validate\"]}", NULL, check)
 *
 * Build: clang-14 --target=wasm32-wasi -O2 -mexec-model=reactor -Wl,--strip-all m.c -o m.wasm
 *
 * The SDK owns the ABI exports (tf_abi_version, tf_meta, tf_reserve, tf_init, tf_process,
 * tf_last_error); the user supplies the metadata JSON, an optional init callback and either a
 * per-record callback (SLUICE_TRANSFORM) or a per-batch callback (SLUICE_TRANSFORM_BATCH).
 * A record left untouched by its callback is passed (kept unchanged). The guest is single-threaded:
 * nothing here is reentrant, and nothing needs to be.
 *
 * Also included: a strict RFC 8259 JSON validator and a small zero-copy scanner (sluice_json_*)
 * so that validators can read fields without a JSON library.
 *
 * Aggregate modules (ABI 1.1, ABI.md section 13) define SLUICE_AGGREGATE before including the
 * header and declare themselves with SLUICE_AGGREGATE_MODULE (see "Aggregation" below). Without
 * SLUICE_AGGREGATE the header compiles to exactly the plain (1.0) SDK.
 */
#ifndef SLUICE_TRANSFORM_H
#define SLUICE_TRANSFORM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ABI constants (ABI.md sections 3, 6, 7, 10). */
#define SLUICE_ABI_VERSION 0x00010000
#define SLUICE_ACTION_PASS 0
#define SLUICE_ACTION_DROP 1
#define SLUICE_ACTION_EMIT 2
#define SLUICE_ACTION_REJECT 3

/* Well-known reject codes (ABI.md 10.1). Codes 4..0xEFFF are free for each transform. */
#define SLUICE_REJECT_UNSPECIFIED 0
#define SLUICE_REJECT_INVALID_INPUT 1
#define SLUICE_REJECT_SCHEMA 2
#define SLUICE_REJECT_RANGE 3

/* Batch error codes returned by tf_process (ABI.md 10.3). */
#define SLUICE_ERR_GENERIC (-1)
#define SLUICE_ERR_FRAME (-2)
#define SLUICE_ERR_NOMEM (-3)

/* Log levels of sluice_log. */
#define SLUICE_LOG_DEBUG 0
#define SLUICE_LOG_INFO 1
#define SLUICE_LOG_WARN 2
#define SLUICE_LOG_ERROR 3

/* Time value of a record without a timestamp; as an emitted ts it means "inherit the input's". */
#define SLUICE_NO_TS INT64_MIN

/* One input record. All pointers point into the host's input frame and are valid only during the
 * current tf_process call: copy what must outlive it. */
typedef struct sluice_record {
    uint32_t index;        /* position in the batch, 0-based */
    int64_t ts_ms;         /* Unix milliseconds, or SLUICE_NO_TS */
    const uint8_t *key;    /* NULL when key_is_null */
    uint32_t key_len;
    int key_is_null;
    const uint8_t *value;
    uint32_t value_len;
    const uint8_t *headers; /* encoded per ABI.md 6.2; iterate with sluice_header_next */
    uint32_t headers_len;
} sluice_record;

/* Per-call context handed to callbacks; opaque. */
typedef struct sluice_ctx sluice_ctx;

/* Callbacks. init gets the config JSON (an object, or zero bytes); it returns 0 on success or
 * calls sluice_error(...) and returns its result. on_batch returns 0, or a negative batch error. */
typedef int (*sluice_init_fn)(const uint8_t *config, uint32_t len);
typedef void (*sluice_record_fn)(sluice_ctx *ctx, const sluice_record *rec);
typedef int (*sluice_batch_fn)(sluice_ctx *ctx, uint32_t n_records);

/* Dispositions for the current record (the last call wins; PASS is the default). */
void sluice_pass(sluice_ctx *ctx);
void sluice_drop(sluice_ctx *ctx);
void sluice_reject(sluice_ctx *ctx, uint16_t code, const char *reason);
void sluice_reject_n(sluice_ctx *ctx, uint16_t code, const void *reason, size_t len);
/* Emits one record derived from the current record on output port `port` (index into the meta
 * "ports", 0 = "main"), inheriting the input's key, headers and time. Returns 0, or -1 out of
 * memory or when called for an earlier record than a previous emit. */
int sluice_emit(sluice_ctx *ctx, uint32_t port, const void *value, size_t len);
/* Like sluice_emit with an explicit key (NULL = null key) and time (SLUICE_NO_TS = inherit). */
int sluice_emit_kv(sluice_ctx *ctx, uint32_t port, const void *key, size_t key_len,
                   const void *value, size_t len, int64_t ts_ms);

/* Batch mode: loads record i into *rec and makes it the current record for dispositions. */
void sluice_record_at(sluice_ctx *ctx, uint32_t i, sluice_record *rec);

/* Headers: start with *pos = 0 (a cursor the call advances); returns 1 and fills the k/v spans, or
 * 0 after the last header. */
int sluice_header_next(const sluice_record *rec, uint32_t *pos, const uint8_t **k, uint32_t *klen,
                       const uint8_t **v, uint32_t *vlen);

/* Sets the message returned by tf_last_error and returns SLUICE_ERR_GENERIC (-1). */
int sluice_error(const char *msg);
int sluice_error_n(const void *msg, size_t len);

/* Host imports: a log line (log per batch, not per record: the host rate-limits) and a counter. */
void sluice_log(int level, const char *msg);
void sluice_metric_add(const char *name, int64_t delta);

/* ---- JSON helpers ---------------------------------------------------------------------------- */

typedef enum sluice_json_type {
    SLUICE_JSON_INVALID = 0,
    SLUICE_JSON_OBJECT,
    SLUICE_JSON_ARRAY,
    SLUICE_JSON_STRING,
    SLUICE_JSON_NUMBER,
    SLUICE_JSON_TRUE,
    SLUICE_JSON_FALSE,
    SLUICE_JSON_NULL
} sluice_json_type;

/* A span of JSON text: the whole token, strings with their quotes, containers with brackets. */
typedef struct sluice_json_value {
    sluice_json_type type;
    const uint8_t *ptr;
    uint32_t len;
    int escaped; /* strings: 1 when the token holds an escape (raw bytes differ from decoded) */
} sluice_json_value;

/* Default nesting limit of sluice_json_validate (containers; the top-level one is level 1). */
#define SLUICE_JSON_MAX_DEPTH 64

/* Returns 1 when [p, p+n) is exactly one RFC 8259 JSON text: well-formed UTF-8, strict numbers,
 * literals and escapes, containers nested at most max_depth levels, nothing but whitespace around
 * the value. Returns 0 otherwise. */
int sluice_json_validate(const uint8_t *p, size_t n, int max_depth);
/* Returns the top-level value of a validated text. */
sluice_json_value sluice_json_root(const uint8_t *p, size_t n);

/* Iterates the members of a validated object value. */
typedef struct sluice_json_iter {
    const uint8_t *p, *end;
} sluice_json_iter;
void sluice_json_members(sluice_json_iter *it, const sluice_json_value *object);
/* Returns 1 and the next member's name (a string span) and value, or 0 after the last member. */
int sluice_json_next(sluice_json_iter *it, sluice_json_value *name, sluice_json_value *value);
/* Iterates the elements of a validated array value (use sluice_json_next_element). */
void sluice_json_elements(sluice_json_iter *it, const sluice_json_value *array);
int sluice_json_next_element(sluice_json_iter *it, sluice_json_value *value);

/* Returns 1 when the string span decodes (escapes included) to exactly the NUL-terminated name. */
int sluice_json_string_is(const sluice_json_value *s, const char *name);
/* Decodes a string span into dst (UTF-8; lone surrogates become U+FFFD). Returns the decoded
 * length, which may exceed cap (then dst holds the first cap bytes). */
size_t sluice_json_string_decode(const sluice_json_value *s, uint8_t *dst, size_t cap);
/* Converts a number span to the nearest double (correctly rounded; overflow gives +-inf). */
double sluice_json_number(const sluice_json_value *num);

/* One-pass scan of a text that should be a JSON object: validates it while handing out its
 * top-level members, so that a validator reads the fields it needs in a single pass:
 *
 *     sluice_json_scan sc;
 *     sluice_json_value k, v;
 *     sluice_json_scan_object(&sc, p, n, SLUICE_JSON_MAX_DEPTH);
 *     while (sluice_json_scan_next(&sc, &k, &v)) { ... }
 *     if (sc.status == 0) not valid JSON; else if (sc.status < 0) valid, but not an object;
 *
 * Members are handed out before the rest of the text is checked: act on them only once the
 * loop has ended with status 1. */
typedef struct sluice_json_scan {
    const uint8_t *p, *end;
    int max_depth;
    int done;
    int status; /* 1 valid object, 0 not valid JSON, -1 valid JSON but not an object */
} sluice_json_scan;
void sluice_json_scan_object(sluice_json_scan *sc, const uint8_t *p, size_t n, int max_depth);
int sluice_json_scan_next(sluice_json_scan *sc, sluice_json_value *name, sluice_json_value *value);

/* Validates the text and looks up a top-level member of the object: returns 1 (found, first
 * occurrence), 0 (no such member) or -1 (not valid JSON or not an object). */
int sluice_json_find(const uint8_t *p, size_t n, const char *name, sluice_json_value *out);

#ifdef SLUICE_AGGREGATE
/* ---- Aggregation (ABI 1.1, ABI.md section 13) -------------------------------------------------
 *
 * The host owns keys, windows and state; the module folds records into an opaque state blob per
 * slot (one key in one window) and turns a slot's state into records when the host asks:
 *
 *     #define SLUICE_AGGREGATE
 *     #define SLUICE_TRANSFORM_IMPLEMENTATION
 *     #include "sluice_transform.h"
 *
 *     static int add(sluice_ctx *c, const sluice_slot *s, const uint8_t *st, uint32_t len,
 *                    const sluice_record *r) {
 *         uint64_t n = 0;
 *         if (len == 8) memcpy(&n, st, 8);   // len 0: a new slot
 *         n++;
 *         sluice_state_set(c, &n, 8);        // the record is dropped (absorbed) by default
 *         return 0;
 *     }
 *     static int out(sluice_ctx *c, const sluice_slot *s, const uint8_t *st, uint32_t len) {
 *         char b[32];
 *         uint64_t n = 0;
 *         if (len == 8) memcpy(&n, st, 8);
 *         sluice_emit(c, 0, b, (size_t)snprintf(b, sizeof b, "{\"count\":%llu}", (unsigned long long)n));
 *         return 0;
 *     }
 *     static int merge(sluice_ctx *c, const sluice_slot *s, const uint8_t *a, uint32_t alen,
 *                      const uint8_t *b, uint32_t blen) { ... sluice_state_set(c, ...); return 0; }
 *     SLUICE_AGGREGATE_MODULE("{\"name\":\"count\",\"version\":\"0.1.0\",\"abi\":\"1.1\","
 *                             "\"kinds\":[\"aggregate\"],\"state_version\":1}", NULL, add, out, merge)
 *
 * Callbacks return 0, or a negative batch error (return sluice_error("...")), which fails the
 * whole call. Inside accumulate the dispositions of the current record are those of a plain
 * transform with DROP as the default: sluice_drop, sluice_pass (forward the record on port main),
 * sluice_reject (the record is not folded: a state set for it is discarded), sluice_emit,
 * sluice_emit_kv and sluice_emit_input. Inside emit, sluice_emit and sluice_emit_kv write the
 * slot's records: an inherited key is the slot's key, an inherited time window_end - 1, and they
 * carry no headers. Dispositions mean nothing in emit and merge and are ignored there; a merge
 * emits nothing. */

#define SLUICE_ABI_VERSION_AGGREGATE 0x00010001

/* One slot of an aggregation frame. Pointers are valid only during the current call. */
typedef struct sluice_slot {
    uint32_t index;       /* position of the slot in the frame */
    int64_t window_start; /* Unix ms, inclusive; INT64_MIN when the stage has no window */
    int64_t window_end;   /* Unix ms, exclusive; INT64_MAX when the stage has no window */
    const uint8_t *key;   /* NULL when key_is_null */
    uint32_t key_len;
    int key_is_null;
    int final; /* emit: the window closes and the slot is deleted after the call */
} sluice_slot;

/* accumulate folds one record into its slot: state/state_len is the slot's current state (the
 * frame's, or the one an earlier record of the same call set; state_len 0 = a new slot). */
typedef int (*sluice_accumulate_fn)(sluice_ctx *ctx, const sluice_slot *slot, const uint8_t *state,
                                    uint32_t state_len, const sluice_record *rec);
/* emit writes the records of a slot (slot->final: the window closes). */
typedef int (*sluice_agg_emit_fn)(sluice_ctx *ctx, const sluice_slot *slot, const uint8_t *state,
                                  uint32_t state_len);
/* merge folds `other` into the slot's state and sets the result with sluice_state_set. */
typedef int (*sluice_merge_fn)(sluice_ctx *ctx, const sluice_slot *slot, const uint8_t *state,
                               uint32_t state_len, const uint8_t *other, uint32_t other_len);

/* Sets the new state of the current slot (copied; the last call wins). len 0 deletes the slot.
 * A slot whose callback sets nothing keeps its state; in a final emit the state is ignored.
 * Returns 0, or -1 (out of memory, or outside an aggregation callback). */
int sluice_state_set(sluice_ctx *ctx, const void *state, size_t len);
/* accumulate only: emits the input record itself on `port` (its key, value, headers and time,
 * ABI.md 13.4), e.g. beside an alert on another port. Returns 0, or -1 (out of memory, or not in
 * accumulate). */
int sluice_emit_input(sluice_ctx *ctx, uint32_t port);
#endif /* SLUICE_AGGREGATE */

/* ---- Registration ---------------------------------------------------------------------------- */

int64_t sluice__process_records(int32_t in_len, sluice_record_fn fn);
int64_t sluice__process_batch(int32_t in_len, sluice_batch_fn fn);
int32_t sluice__init(int32_t cfg_len, sluice_init_fn fn);
int64_t sluice__ptrlen(const void *p, size_t len);

#if defined(__wasm__)
#define SLUICE__EXPORT(name) __attribute__((export_name(#name)))
#else
#define SLUICE__EXPORT(name) /* native builds (SDK unit tests) export nothing */
#endif

#define SLUICE__COMMON(META, INIT)                                                         \
    static const char sluice__meta_json[] = META;                                          \
    SLUICE__EXPORT(tf_meta) int64_t tf_meta(void) {                                        \
        return sluice__ptrlen(sluice__meta_json, sizeof(sluice__meta_json) - 1);           \
    }                                                                                      \
    SLUICE__EXPORT(tf_init) int32_t tf_init(int32_t cfg_len) { return sluice__init(cfg_len, INIT); }

/* Declares the module: META is the metadata JSON literal (ABI.md 8), INIT an sluice_init_fn or
 * NULL, ON_RECORD the sluice_record_fn called once per input record, in order. */
#define SLUICE_TRANSFORM(META, INIT, ON_RECORD)                                            \
    SLUICE__COMMON(META, INIT)                                                             \
    SLUICE__EXPORT(tf_process) int64_t tf_process(int32_t in_len) {                        \
        return sluice__process_records(in_len, ON_RECORD);                                 \
    }

/* Like SLUICE_TRANSFORM with a per-batch callback: ON_BATCH(ctx, n) visits the records with
 * sluice_record_at (emits must come in input order) and returns 0 or a negative batch error. */
#define SLUICE_TRANSFORM_BATCH(META, INIT, ON_BATCH)                                       \
    SLUICE__COMMON(META, INIT)                                                             \
    SLUICE__EXPORT(tf_process) int64_t tf_process(int32_t in_len) {                        \
        return sluice__process_batch(in_len, ON_BATCH);                                    \
    }

#ifdef SLUICE_AGGREGATE
int64_t sluice__agg_step(int32_t in_len, sluice_accumulate_fn fn);
int64_t sluice__agg_emit(int32_t in_len, sluice_agg_emit_fn fn);
int64_t sluice__agg_merge(int32_t in_len, sluice_merge_fn fn);
int64_t sluice__agg_process(int32_t in_len);

/* Declares an aggregate module: META is the metadata JSON literal ("abi":"1.1", "kinds" with
 * "aggregate", optionally "state_version"), INIT an sluice_init_fn or NULL, then the callbacks.
 * MERGE may be NULL for a module that is not used with session windows: tf_agg_merge then fails
 * with batch error -1. tf_process returns -2, as ABI.md 13.1 asks. */
#define SLUICE_AGGREGATE_MODULE(META, INIT, ACCUMULATE, EMIT, MERGE)                           \
    SLUICE__COMMON(META, INIT)                                                                 \
    SLUICE__EXPORT(tf_process) int64_t tf_process(int32_t in_len) { return sluice__agg_process(in_len); } \
    SLUICE__EXPORT(tf_agg_step) int64_t tf_agg_step(int32_t in_len) {                         \
        return sluice__agg_step(in_len, ACCUMULATE);                                           \
    }                                                                                          \
    SLUICE__EXPORT(tf_agg_emit) int64_t tf_agg_emit(int32_t in_len) {                         \
        return sluice__agg_emit(in_len, EMIT);                                                 \
    }                                                                                          \
    SLUICE__EXPORT(tf_agg_merge) int64_t tf_agg_merge(int32_t in_len) {                       \
        return sluice__agg_merge(in_len, MERGE);                                               \
    }
#endif /* SLUICE_AGGREGATE */

#ifdef __cplusplus
}
#endif
#endif /* SLUICE_TRANSFORM_H */

/* ============================================================================================== */
#ifdef SLUICE_TRANSFORM_IMPLEMENTATION
#ifndef SLUICE_TRANSFORM_IMPLEMENTED
#define SLUICE_TRANSFORM_IMPLEMENTED

#include <stdlib.h>
#include <string.h>

#if defined(__wasm__) && !defined(SLUICE_NATIVE)
__attribute__((import_module("tf_host_v1"), import_name("log"))) void sluice__host_log(int32_t level,
                                                                                       const void *p,
                                                                                       int32_t len);
__attribute__((import_module("tf_host_v1"), import_name("metric_add"))) void
sluice__host_metric_add(const void *p, int32_t len, int64_t delta);
#else
/* Native builds (unit tests of the SDK) have no host: logs and metrics go nowhere. */
static void sluice__host_log(int32_t level, const void *p, int32_t len) { (void)level, (void)p, (void)len; }
static void sluice__host_metric_add(const void *p, int32_t len, int64_t delta) { (void)p, (void)len, (void)delta; }
#endif

struct sluice_ctx {
    const uint8_t *frame;
    uint32_t frame_len, n, desc_off, desc_size;
    uint32_t cur;       /* current record */
    uint32_t last_emit; /* input index of the last emit (emits come in input order) */
    int failed;         /* out of memory or misuse while building the result */
#ifdef SLUICE_AGGREGATE
    uint32_t kind;      /* the aggregation frame kind (2 step, 3 merge, 4 emit); 0 otherwise */
    uint32_t n_slots, slot_off;
    int state_set;      /* sluice_state_set was called for the current record or slot */
    uint32_t state_len; /* its length, in sluice__agg_pend */
#endif
};

/* Guest-owned buffers (ABI.md 9): the input buffer, the result frame and the OutDesc table. */
static uint8_t *sluice__in;
static uint32_t sluice__in_cap;
static uint8_t *sluice__out;
static uint32_t sluice__out_cap, sluice__out_len;
static uint8_t *sluice__od;
static uint32_t sluice__od_cap, sluice__n_od;
static char sluice__err[1024];
static uint32_t sluice__err_len;

static inline uint32_t sluice__u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint16_t sluice__u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline void sluice__put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void sluice__put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void sluice__put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

int64_t sluice__ptrlen(const void *p, size_t len) {
    return (int64_t)(((uint64_t)(uintptr_t)p << 32) | (uint64_t)(uint32_t)len);
}

int sluice_error_n(const void *msg, size_t len) {
    if (len > sizeof sluice__err) len = sizeof sluice__err;
    memcpy(sluice__err, msg, len);
    sluice__err_len = (uint32_t)len;
    return SLUICE_ERR_GENERIC;
}
int sluice_error(const char *msg) { return sluice_error_n(msg, strlen(msg)); }

void sluice_log(int level, const char *msg) { sluice__host_log(level, msg, (int32_t)strlen(msg)); }
void sluice_metric_add(const char *name, int64_t delta) {
    sluice__host_metric_add(name, (int32_t)strlen(name), delta);
}

#ifdef SLUICE_AGGREGATE
SLUICE__EXPORT(tf_abi_version) int32_t tf_abi_version(void) { return SLUICE_ABI_VERSION_AGGREGATE; }
#else
SLUICE__EXPORT(tf_abi_version) int32_t tf_abi_version(void) { return SLUICE_ABI_VERSION; }
#endif

SLUICE__EXPORT(tf_last_error) int64_t tf_last_error(void) {
    return sluice__ptrlen(sluice__err, sluice__err_len);
}

SLUICE__EXPORT(tf_reserve) int32_t tf_reserve(int32_t cap) {
    uint32_t c = (uint32_t)cap;
    if (c <= sluice__in_cap && sluice__in) return (int32_t)(uintptr_t)sluice__in;
    if (c < 4096) c = 4096;
    /* aligned_alloc needs a size that is a multiple of the alignment. */
    c = (c + 7u) & ~7u;
    free(sluice__in);
    sluice__in = (uint8_t *)aligned_alloc(8, c);
    sluice__in_cap = sluice__in ? c : 0;
    return (int32_t)(uintptr_t)sluice__in;
}

int32_t sluice__init(int32_t cfg_len, sluice_init_fn fn) {
    sluice__err_len = 0;
    if (!fn) return 0;
    if (cfg_len > 0 && (!sluice__in || (uint32_t)cfg_len > sluice__in_cap))
        return sluice_error("init: config is not in the reserved buffer");
    return fn(sluice__in, (uint32_t)cfg_len);
}

/* Grows the result buffer so that `more` bytes fit after sluice__out_len. */
static int sluice__out_grow(uint32_t more) {
    uint64_t need = (uint64_t)sluice__out_len + more;
    if (need <= sluice__out_cap) return 0;
    uint64_t c = sluice__out_cap ? sluice__out_cap : 4096;
    while (c < need) c *= 2;
    if (c > 0x7FFFFFFFu) return -1;
    uint8_t *p = (uint8_t *)realloc(sluice__out, (size_t)c);
    if (!p) return -1;
    sluice__out = p;
    sluice__out_cap = (uint32_t)c;
    return 0;
}

/* Appends bytes to the result data; returns their offset or UINT32_MAX. */
static uint32_t sluice__out_put(const void *p, size_t len) {
    if (len > 0x7FFFFFFFu || sluice__out_grow((uint32_t)len)) return UINT32_MAX;
    uint32_t off = sluice__out_len;
    if (len) memcpy(sluice__out + off, p, len);
    sluice__out_len += (uint32_t)len;
    return off;
}

static inline uint8_t *sluice__disp(uint32_t i) { return sluice__out + 32 + (size_t)i * 12; }

static void sluice__set(sluice_ctx *ctx, uint8_t action, uint16_t code, uint32_t a, uint32_t b) {
#ifdef SLUICE_AGGREGATE
    if (ctx->kind > 2) return; /* merge and emit frames have no dispositions */
#endif
    uint8_t *d = sluice__disp(ctx->cur);
    d[0] = action;
    d[1] = 0;
    sluice__put16(d + 2, code);
    sluice__put32(d + 4, a);
    sluice__put32(d + 8, b);
}

void sluice_pass(sluice_ctx *ctx) { sluice__set(ctx, SLUICE_ACTION_PASS, 0, 0, 0); }
void sluice_drop(sluice_ctx *ctx) { sluice__set(ctx, SLUICE_ACTION_DROP, 0, 0, 0); }

void sluice_reject_n(sluice_ctx *ctx, uint16_t code, const void *reason, size_t len) {
    if (len > 1024) len = 1024; /* the host truncates there anyway */
    uint32_t off = sluice__out_put(reason, len);
    if (off == UINT32_MAX) { ctx->failed = 1; return; }
    sluice__set(ctx, SLUICE_ACTION_REJECT, code, off, (uint32_t)len);
}
void sluice_reject(sluice_ctx *ctx, uint16_t code, const char *reason) {
    sluice_reject_n(ctx, code, reason, strlen(reason));
}

int sluice_emit_kv(sluice_ctx *ctx, uint32_t port, const void *key, size_t key_len,
                   const void *value, size_t len, int64_t ts_ms) {
    if (ctx->failed) return -1;
#ifdef SLUICE_AGGREGATE
    if (ctx->kind == 3) return -1; /* a merge emits nothing */
#endif
    if (ctx->cur < ctx->last_emit) {
        ctx->failed = 2;
        return -1;
    }
    uint32_t val_off = sluice__out_put(value, len);
    uint32_t key_off = 0, klen = 0xFFFFFFFFu, flags = 0;
    if (key_len != (size_t)-1) { /* explicit key */
        if (key) {
            key_off = sluice__out_put(key, key_len);
            klen = (uint32_t)key_len;
        } else {
            klen = 0;
            flags = 1;
        }
    }
    if (val_off == UINT32_MAX || key_off == UINT32_MAX) {
        ctx->failed = 1;
        return -1;
    }
    if ((uint64_t)(sluice__n_od + 1) * 48 > sluice__od_cap) {
        uint32_t c = sluice__od_cap ? sluice__od_cap * 2 : 48 * 64;
        uint8_t *p = (uint8_t *)realloc(sluice__od, c);
        if (!p) {
            ctx->failed = 1;
            return -1;
        }
        sluice__od = p;
        sluice__od_cap = c;
    }
    uint8_t *o = sluice__od + (size_t)sluice__n_od * 48;
    sluice__put64(o, (uint64_t)ts_ms);
    sluice__put64(o + 8, ctx->cur);
    sluice__put32(o + 16, key_off);
    sluice__put32(o + 20, klen);
    sluice__put32(o + 24, val_off);
    sluice__put32(o + 28, (uint32_t)len);
    sluice__put32(o + 32, 0);
    sluice__put32(o + 36, 0xFFFFFFFFu); /* inherit the input's headers */
    sluice__put32(o + 40, port);
    sluice__put32(o + 44, flags);
#ifdef SLUICE_AGGREGATE
    if (ctx->kind == 4) { /* a slot's record: seq is the slot index, no disposition */
        sluice__put32(o + 36, 0); /* no headers */
        sluice__n_od++;
        return 0;
    }
#endif
    uint8_t *d = sluice__disp(ctx->cur);
    uint32_t a = sluice__u32(d + 4), b = sluice__u32(d + 8);
    if (d[0] == SLUICE_ACTION_EMIT && a + b == sluice__n_od)
        sluice__put32(d + 8, b + 1);
    else
        sluice__set(ctx, SLUICE_ACTION_EMIT, 0, sluice__n_od, 1);
    sluice__n_od++;
    ctx->last_emit = ctx->cur;
    return 0;
}

int sluice_emit(sluice_ctx *ctx, uint32_t port, const void *value, size_t len) {
    return sluice_emit_kv(ctx, port, NULL, (size_t)-1, value, len, SLUICE_NO_TS);
}

void sluice_record_at(sluice_ctx *ctx, uint32_t i, sluice_record *r) {
    const uint8_t *f = ctx->frame;
    const uint8_t *d = f + ctx->desc_off + (size_t)i * ctx->desc_size;
    int64_t ts;
    memcpy(&ts, d, 8);
    uint32_t flags = sluice__u32(d + 44);
    r->index = i;
    r->ts_ms = ts;
    r->key_is_null = (int)(flags & 1);
    r->key_len = sluice__u32(d + 20);
    r->key = r->key_is_null ? NULL : f + sluice__u32(d + 16);
    r->value_len = sluice__u32(d + 28);
    r->value = f + sluice__u32(d + 24);
    r->headers_len = sluice__u32(d + 36);
    r->headers = f + sluice__u32(d + 32);
    ctx->cur = i;
}

int sluice_header_next(const sluice_record *rec, uint32_t *pos, const uint8_t **k, uint32_t *klen,
                       const uint8_t **v, uint32_t *vlen) {
    uint32_t off = *pos ? *pos : 4, len = rec->headers_len;
    const uint8_t *h = rec->headers;
    if (len < 4 || (uint64_t)off + 4 > len) return 0;
    uint32_t kl = sluice__u32(h + off);
    if ((uint64_t)off + 8 + kl > len) return 0;
    uint32_t vl = sluice__u32(h + off + 4 + kl);
    if ((uint64_t)off + 8 + kl + vl > len) return 0;
    *k = h + off + 4, *klen = kl, *v = h + off + 8 + kl, *vlen = vl;
    *pos = off + 8 + kl + vl;
    return 1;
}

/* Checks the input frame and prepares the result buffer. */
static int sluice__begin(sluice_ctx *ctx, int32_t in_len) {
    uint32_t len = (uint32_t)in_len;
    memset(ctx, 0, sizeof *ctx);
    sluice__err_len = 0;
    if (!sluice__in || len < 40 || len > sluice__in_cap) return sluice_error("frame: bad length"), SLUICE_ERR_FRAME;
    const uint8_t *f = sluice__in;
    uint32_t hsize = sluice__u16(f + 8), dsize = sluice__u16(f + 10);
    if (memcmp(f, "TFB1", 4) != 0 || sluice__u16(f + 4) != 1 || sluice__u32(f + 12) != 1 || hsize < 40 ||
        dsize < 48)
        return sluice_error("frame: unsupported magic, version or kind"), SLUICE_ERR_FRAME;
    uint32_t n = sluice__u32(f + 16), doff = sluice__u32(f + 24);
    if ((uint64_t)doff + (uint64_t)n * dsize > len) return sluice_error("frame: descriptors out of range"), SLUICE_ERR_FRAME;
    ctx->frame = f, ctx->frame_len = len, ctx->n = n, ctx->desc_off = doff, ctx->desc_size = dsize;
    sluice__out_len = 0;
    sluice__n_od = 0;
    if ((uint64_t)n * 12 + 32 > 0x7FFFFFFFu || sluice__out_grow(32 + n * 12))
        return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
    memset(sluice__out, 0, 32 + (size_t)n * 12);
    sluice__out_len = 32 + n * 12;
    return 0;
}

/* Writes the OutDesc table and the header; returns the ptrlen of the result frame. */
static int64_t sluice__finish(sluice_ctx *ctx) {
    if (ctx->failed == 2) return sluice_error("emit: records must be emitted in input order");
    if (ctx->failed) return sluice_error("out of memory building the result frame"), SLUICE_ERR_NOMEM;
    uint32_t pad = (8 - (sluice__out_len & 7)) & 7;
    static const uint8_t zeros[8];
    if (sluice__out_put(zeros, pad) == UINT32_MAX) return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
    uint32_t od_off = sluice__out_put(sluice__od, (size_t)sluice__n_od * 48);
    if (od_off == UINT32_MAX) return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
    uint8_t *h = sluice__out;
    memcpy(h, "TFR1", 4);
    sluice__put16(h + 4, 32);
    sluice__put16(h + 6, 48);
    sluice__put32(h + 8, ctx->n);
    sluice__put32(h + 12, 32);
    sluice__put32(h + 16, sluice__n_od);
    sluice__put32(h + 20, od_off);
    sluice__put32(h + 24, 0);
    sluice__put32(h + 28, 0);
    return sluice__ptrlen(sluice__out, sluice__out_len);
}

int64_t sluice__process_records(int32_t in_len, sluice_record_fn fn) {
    sluice_ctx ctx;
    int rc = sluice__begin(&ctx, in_len);
    if (rc) return rc;
    sluice_record rec;
    for (uint32_t i = 0; i < ctx.n; i++) {
        sluice_record_at(&ctx, i, &rec);
        fn(&ctx, &rec);
    }
    return sluice__finish(&ctx);
}

int64_t sluice__process_batch(int32_t in_len, sluice_batch_fn fn) {
    sluice_ctx ctx;
    int rc = sluice__begin(&ctx, in_len);
    if (rc) return rc;
    rc = fn(&ctx, ctx.n);
    if (rc < 0) {
        if (!sluice__err_len) sluice_error("batch failed");
        return rc;
    }
    return sluice__finish(&ctx);
}

#ifdef SLUICE_AGGREGATE
/* ---- Aggregation ------------------------------------------------------------------------------ */

/* The state of one slot during a call: `cur` points at the frame's state or at `buf`, which the
 * slot keeps across calls (grown when needed, never shrunk). */
typedef struct sluice__aslot {
    uint8_t *buf;
    uint32_t cap;
    const uint8_t *cur;
    uint32_t len;
    const uint8_t *frame_state; /* the state the frame carried */
    uint32_t frame_len;         /* its length (0 = a new slot) */
    int changed;        /* a state was set during this call */
    uint32_t out_off;   /* offset of the new state in the result frame */
} sluice__aslot;

static sluice__aslot *sluice__aslots;
static uint32_t sluice__aslots_cap;
static uint8_t *sluice__agg_pend; /* the state the current callback set */
static uint32_t sluice__agg_pend_cap;

int sluice_state_set(sluice_ctx *ctx, const void *state, size_t len) {
    if (ctx->kind < 2) return -1;
    if (len > 0x7FFFFFFFu) {
        ctx->failed = 1;
        return -1;
    }
    if (len > sluice__agg_pend_cap) {
        uint32_t c = sluice__agg_pend_cap ? sluice__agg_pend_cap : 64;
        while (c < len) c *= 2;
        uint8_t *p = (uint8_t *)malloc(c);
        if (!p) {
            ctx->failed = 1;
            return -1;
        }
        if (len) memcpy(p, state, len); /* before the free: state may point into the old buffer */
        free(sluice__agg_pend);
        sluice__agg_pend = p;
        sluice__agg_pend_cap = c;
    } else if (len) {
        memmove(sluice__agg_pend, state, len);
    }
    ctx->state_set = 1;
    ctx->state_len = (uint32_t)len;
    return 0;
}

int sluice_emit_input(sluice_ctx *ctx, uint32_t port) {
    if (ctx->kind != 2) return -1;
    if (sluice_emit_kv(ctx, port, NULL, (size_t)-1, NULL, 0, SLUICE_NO_TS)) return -1;
    sluice__put32(sluice__od + (size_t)(sluice__n_od - 1) * 48 + 28, 0xFFFFFFFFu); /* inherit the value */
    return 0;
}

/* Makes the state the current callback set the slot's state. */
static int sluice__agg_commit(sluice_ctx *ctx, uint32_t s) {
    sluice__aslot *e = &sluice__aslots[s];
    uint32_t len = ctx->state_len;
    if (len > e->cap) {
        uint8_t *p = (uint8_t *)malloc(len);
        if (!p) return -1;
        free(e->buf);
        e->buf = p;
        e->cap = len;
    }
    if (len) memcpy(e->buf, sluice__agg_pend, len);
    e->cur = len ? e->buf : NULL;
    e->len = len;
    e->changed = 1;
    return 0;
}

/* Checks an aggregation frame of the given kind and prepares the slots and the result buffer. */
static int sluice__agg_begin(sluice_ctx *ctx, int32_t in_len, uint32_t kind) {
    uint32_t len = (uint32_t)in_len;
    memset(ctx, 0, sizeof *ctx);
    sluice__err_len = 0;
    if (!sluice__in || len < 40 || len > sluice__in_cap) return sluice_error("frame: bad length"), SLUICE_ERR_FRAME;
    const uint8_t *f = sluice__in;
    uint32_t hsize = sluice__u16(f + 8), dsize = sluice__u16(f + 10);
    if (memcmp(f, "TFB1", 4) != 0 || sluice__u16(f + 4) != 1 || sluice__u32(f + 12) != kind || hsize < 40 ||
        dsize < 48)
        return sluice_error("frame: unsupported magic, version or kind"), SLUICE_ERR_FRAME;
    uint32_t n = sluice__u32(f + 16), ns = sluice__u32(f + 20);
    uint32_t doff = sluice__u32(f + 24), soff = sluice__u32(f + 28);
    if (kind != 2) n = 0;
    if ((uint64_t)doff + (uint64_t)n * dsize > len || (uint64_t)soff + (uint64_t)ns * 48 > len)
        return sluice_error("frame: descriptors out of range"), SLUICE_ERR_FRAME;
    for (uint32_t i = 0; i < n; i++)
        if (sluice__u32(f + doff + (size_t)i * dsize + 40) >= ns)
            return sluice_error("frame: a record's slot is out of range"), SLUICE_ERR_FRAME;
    for (uint32_t s = 0; s < ns; s++) {
        const uint8_t *d = f + soff + (size_t)s * 48;
        for (int k = 16; k <= 32; k += 8) /* key, state, other; an empty one's offset is unspecified */
            if (sluice__u32(d + k + 4) && (uint64_t)sluice__u32(d + k) + sluice__u32(d + k + 4) > len)
                return sluice_error("frame: a slot's key or state is out of range"), SLUICE_ERR_FRAME;
    }
    if (ns > sluice__aslots_cap) {
        sluice__aslot *t = (sluice__aslot *)realloc(sluice__aslots, (size_t)ns * sizeof *t);
        if (!t) return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
        memset(t + sluice__aslots_cap, 0, (size_t)(ns - sluice__aslots_cap) * sizeof *t);
        sluice__aslots = t;
        sluice__aslots_cap = ns;
    }
    for (uint32_t s = 0; s < ns; s++) {
        const uint8_t *d = f + soff + (size_t)s * 48;
        sluice__aslot *e = &sluice__aslots[s];
        e->len = e->frame_len = sluice__u32(d + 28);
        e->cur = e->frame_state = e->len ? f + sluice__u32(d + 24) : NULL;
        e->changed = 0;
    }
    ctx->frame = f, ctx->frame_len = len, ctx->n = n, ctx->desc_off = doff, ctx->desc_size = dsize;
    ctx->kind = kind, ctx->n_slots = ns, ctx->slot_off = soff;
    sluice__out_len = 0;
    sluice__n_od = 0;
    if ((uint64_t)n * 12 + 32 > 0x7FFFFFFFu || sluice__out_grow(32 + n * 12))
        return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
    memset(sluice__out, 0, 32 + (size_t)n * 12);
    for (uint32_t i = 0; i < n; i++) sluice__disp(i)[0] = SLUICE_ACTION_DROP; /* the default */
    sluice__out_len = 32 + n * 12;
    return 0;
}

static void sluice__slot_at(const sluice_ctx *ctx, uint32_t s, sluice_slot *slot) {
    const uint8_t *d = ctx->frame + ctx->slot_off + (size_t)s * 48;
    uint32_t flags = sluice__u32(d + 40);
    memcpy(&slot->window_start, d, 8);
    memcpy(&slot->window_end, d + 8, 8);
    slot->index = s;
    slot->key_is_null = (flags & 2) != 0;
    slot->key_len = sluice__u32(d + 20);
    slot->key = slot->key_is_null ? NULL : ctx->frame + sluice__u32(d + 16);
    slot->final = (flags & 1) != 0;
}

/* Writes the new states, the OutDesc and StateOut tables and the header (ABI.md 13.3). In a step
 * or an emit, a slot whose state comes out as it went in gets no StateOut; a merge returns one for
 * every slot its callback set. A new slot that stays empty is not created; a slot emptied by its
 * callback is deleted. */
static int64_t sluice__agg_finish(sluice_ctx *ctx) {
    if (ctx->failed == 2) return sluice_error("emit: records must be emitted in input order");
    if (ctx->failed) return sluice_error("out of memory building the result frame"), SLUICE_ERR_NOMEM;
    uint32_t n_state = 0;
    for (uint32_t s = 0; s < ctx->n_slots; s++) {
        sluice__aslot *e = &sluice__aslots[s];
        if (!e->changed) continue;
        if (e->len == e->frame_len && (e->len == 0 || (ctx->kind != 3 && memcmp(e->cur, e->frame_state, e->len) == 0))) {
            e->changed = 0;
            continue;
        }
        if (e->len) {
            e->out_off = sluice__out_put(e->cur, e->len);
            if (e->out_off == UINT32_MAX) return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
        }
        n_state++;
    }
    uint32_t pad = (8 - (sluice__out_len & 7)) & 7;
    static const uint8_t zeros[8];
    if (sluice__out_put(zeros, pad) == UINT32_MAX) return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
    uint32_t od_off = sluice__out_put(sluice__od, (size_t)sluice__n_od * 48);
    if (od_off == UINT32_MAX || sluice__out_grow(n_state * 16)) return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
    uint32_t st_off = sluice__out_len;
    for (uint32_t s = 0; s < ctx->n_slots; s++) {
        sluice__aslot *e = &sluice__aslots[s];
        if (!e->changed) continue;
        uint8_t *o = sluice__out + sluice__out_len;
        sluice__put32(o, s);
        sluice__put32(o + 4, e->len ? 0 : 1); /* 1 = delete */
        sluice__put32(o + 8, e->len ? e->out_off : 0);
        sluice__put32(o + 12, e->len);
        sluice__out_len += 16;
    }
    uint8_t *h = sluice__out;
    memcpy(h, "TFR1", 4);
    sluice__put16(h + 4, 32);
    sluice__put16(h + 6, 48);
    sluice__put32(h + 8, ctx->n);
    sluice__put32(h + 12, 32);
    sluice__put32(h + 16, sluice__n_od);
    sluice__put32(h + 20, od_off);
    sluice__put32(h + 24, n_state);
    sluice__put32(h + 28, st_off);
    return sluice__ptrlen(sluice__out, sluice__out_len);
}

/* A negative callback result fails the call; `what` is the message when the callback set none. */
static int64_t sluice__agg_failed(int rc, const char *what) {
    if (!sluice__err_len) sluice_error(what);
    return rc;
}

int64_t sluice__agg_step(int32_t in_len, sluice_accumulate_fn fn) {
    sluice_ctx ctx;
    int rc = sluice__agg_begin(&ctx, in_len, 2);
    if (rc) return rc;
    sluice_record rec;
    sluice_slot slot;
    for (uint32_t i = 0; i < ctx.n; i++) {
        sluice_record_at(&ctx, i, &rec);
        uint32_t s = sluice__u32(ctx.frame + ctx.desc_off + (size_t)i * ctx.desc_size + 40);
        sluice__slot_at(&ctx, s, &slot);
        sluice__aslot *e = &sluice__aslots[s];
        ctx.state_set = 0;
        rc = fn(&ctx, &slot, e->cur, e->len, &rec);
        if (rc < 0) return sluice__agg_failed(rc, "accumulate failed");
        /* A rejected record is not folded (ABI.md 13.3). */
        if (ctx.state_set && sluice__disp(i)[0] != SLUICE_ACTION_REJECT && sluice__agg_commit(&ctx, s))
            return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
    }
    return sluice__agg_finish(&ctx);
}

int64_t sluice__agg_emit(int32_t in_len, sluice_agg_emit_fn fn) {
    sluice_ctx ctx;
    int rc = sluice__agg_begin(&ctx, in_len, 4);
    if (rc) return rc;
    sluice_slot slot;
    for (uint32_t s = 0; s < ctx.n_slots; s++) {
        sluice__slot_at(&ctx, s, &slot);
        sluice__aslot *e = &sluice__aslots[s];
        ctx.cur = s;
        ctx.state_set = 0;
        rc = fn(&ctx, &slot, e->cur, e->len);
        if (rc < 0) return sluice__agg_failed(rc, "emit failed");
        /* A final emit's state is ignored: the slot is deleted. */
        if (ctx.state_set && !slot.final && sluice__agg_commit(&ctx, s))
            return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
    }
    return sluice__agg_finish(&ctx);
}

int64_t sluice__agg_merge(int32_t in_len, sluice_merge_fn fn) {
    sluice_ctx ctx;
    if (!fn) return sluice_error("merge: this module does not merge states (no session windows)");
    int rc = sluice__agg_begin(&ctx, in_len, 3);
    if (rc) return rc;
    sluice_slot slot;
    for (uint32_t s = 0; s < ctx.n_slots; s++) {
        sluice__slot_at(&ctx, s, &slot);
        const uint8_t *d = ctx.frame + ctx.slot_off + (size_t)s * 48;
        uint32_t olen = sluice__u32(d + 36);
        sluice__aslot *e = &sluice__aslots[s];
        ctx.cur = s;
        ctx.state_set = 0;
        rc = fn(&ctx, &slot, e->cur, e->len, olen ? ctx.frame + sluice__u32(d + 32) : NULL, olen);
        if (rc < 0) return sluice__agg_failed(rc, "merge failed");
        if (ctx.state_set && sluice__agg_commit(&ctx, s)) return sluice_error("out of memory"), SLUICE_ERR_NOMEM;
    }
    return sluice__agg_finish(&ctx);
}

int64_t sluice__agg_process(int32_t in_len) {
    (void)in_len;
    sluice__err_len = 0;
    return sluice_error("tf_process: an aggregate module takes aggregation frames (tf_agg_step)"), SLUICE_ERR_FRAME;
}
#endif /* SLUICE_AGGREGATE */

/* ---- JSON ------------------------------------------------------------------------------------ */

static inline const uint8_t *sluice__ws(const uint8_t *p, const uint8_t *e) {
    while (p < e && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')) p++;
    return p;
}

static inline int sluice__hex(uint8_t c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Bytes that need no attention inside a string: printable ASCII but the quote and backslash. */
static const uint8_t sluice__plain[256] = {[0x20 ... 0x21] = 1, [0x23 ... 0x5B] = 1, [0x5D ... 0x7F] = 1};

/* Set by sluice__vstring and sluice__skip: whether the last string had an escape. */
static int sluice__escaped;

/* p points after the opening quote; returns the position after the closing quote or NULL. */
static const uint8_t *sluice__vstring(const uint8_t *p, const uint8_t *e) {
    sluice__escaped = 0;
    while (p < e) {
        /* Eight bytes at a time while none is a quote, a backslash, a control byte or non-ASCII
         * (bit tricks: a zero in the top bit of every byte of the mask means "plain"). */
        while (e - p >= 8) {
            uint64_t x;
            memcpy(&x, p, 8);
            const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;
            uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
            uint64_t m = ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b) | x;
            if (m & highs) {
                /* The lowest flagged byte is a real one (false positives only sit above it). */
                p += __builtin_ctzll(m & highs) >> 3;
                break;
            }
            p += 8;
        }
        while (p < e && sluice__plain[*p]) p++;
        if (p >= e) return NULL;
        uint8_t c = *p;
        if (c == '"') return p + 1;
        if (c < 0x20) return NULL;
        if (c == '\\') {
            sluice__escaped = 1;
            if (++p >= e) return NULL;
            switch (*p) {
            case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
                p++;
                break;
            case 'u':
                if (e - p < 5 || sluice__hex(p[1]) < 0 || sluice__hex(p[2]) < 0 || sluice__hex(p[3]) < 0 ||
                    sluice__hex(p[4]) < 0)
                    return NULL;
                p += 5;
                break;
            default:
                return NULL;
            }
            continue;
        }
        if (c < 0x80) { p++; continue; }
        /* UTF-8 (RFC 3629 table 3-7). */
        size_t need;
        uint8_t lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) need = 1;
        else if (c == 0xE0) need = 2, lo = 0xA0;
        else if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) need = 2;
        else if (c == 0xED) need = 2, hi = 0x9F;
        else if (c == 0xF0) need = 3, lo = 0x90;
        else if (c >= 0xF1 && c <= 0xF3) need = 3;
        else if (c == 0xF4) need = 3, hi = 0x8F;
        else return NULL;
        if ((size_t)(e - p) < need + 1) return NULL;
        if (p[1] < lo || p[1] > hi) return NULL;
        for (size_t k = 2; k <= need; k++)
            if (p[k] < 0x80 || p[k] > 0xBF) return NULL;
        p += need + 1;
    }
    return NULL;
}

static const uint8_t *sluice__vnumber(const uint8_t *p, const uint8_t *e) {
    if (p < e && *p == '-') p++;
    if (p >= e) return NULL;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (p < e && *p >= '0' && *p <= '9') p++;
    else return NULL;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        while (p < e && *p >= '0' && *p <= '9') p++;
    }
    return p;
}

static const uint8_t *sluice__vvalue(const uint8_t *p, const uint8_t *e, int depth, int max) {
    if (p >= e) return NULL;
    switch (*p) {
    case '{':
        if (depth + 1 > max) return NULL;
        p = sluice__ws(p + 1, e);
        if (p < e && *p == '}') return p + 1;
        for (;;) {
            if (p >= e || *p != '"' || !(p = sluice__vstring(p + 1, e))) return NULL;
            p = sluice__ws(p, e);
            if (p >= e || *p != ':') return NULL;
            p = sluice__vvalue(sluice__ws(p + 1, e), e, depth + 1, max);
            if (!p) return NULL;
            p = sluice__ws(p, e);
            if (p < e && *p == ',') { p = sluice__ws(p + 1, e); continue; }
            if (p < e && *p == '}') return p + 1;
            return NULL;
        }
    case '[':
        if (depth + 1 > max) return NULL;
        p = sluice__ws(p + 1, e);
        if (p < e && *p == ']') return p + 1;
        for (;;) {
            p = sluice__vvalue(p, e, depth + 1, max);
            if (!p) return NULL;
            p = sluice__ws(p, e);
            if (p < e && *p == ',') { p = sluice__ws(p + 1, e); continue; }
            if (p < e && *p == ']') return p + 1;
            return NULL;
        }
    case '"':
        return sluice__vstring(p + 1, e);
    case 't':
        return (e - p >= 4 && memcmp(p, "true", 4) == 0) ? p + 4 : NULL;
    case 'f':
        return (e - p >= 5 && memcmp(p, "false", 5) == 0) ? p + 5 : NULL;
    case 'n':
        return (e - p >= 4 && memcmp(p, "null", 4) == 0) ? p + 4 : NULL;
    default:
        return sluice__vnumber(p, e);
    }
}

int sluice_json_validate(const uint8_t *p, size_t n, int max_depth) {
    const uint8_t *e = p + n;
    p = sluice__vvalue(sluice__ws(p, e), e, 0, max_depth);
    return p && sluice__ws(p, e) == e;
}

static sluice_json_type sluice__type(uint8_t c) {
    switch (c) {
    case '{': return SLUICE_JSON_OBJECT;
    case '[': return SLUICE_JSON_ARRAY;
    case '"': return SLUICE_JSON_STRING;
    case 't': return SLUICE_JSON_TRUE;
    case 'f': return SLUICE_JSON_FALSE;
    case 'n': return SLUICE_JSON_NULL;
    default: return SLUICE_JSON_NUMBER;
    }
}

/* Skips one value of a validated text. */
static const uint8_t *sluice__skip(const uint8_t *p, const uint8_t *e) {
    if (*p == '"') {
        sluice__escaped = 0;
        for (p++; *p != '"'; p++)
            if (*p == '\\') p++, sluice__escaped = 1;
        return p + 1;
    }
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (; p < e; p++) {
            uint8_t c = *p;
            if (c == '"') {
                for (p++; *p != '"'; p++)
                    if (*p == '\\') p++;
            } else if (c == '{' || c == '[') depth++;
            else if (c == '}' || c == ']') {
                if (--depth == 0) return p + 1;
            }
        }
        return e;
    }
    while (p < e && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' && *p != '\r' && *p != '\t')
        p++;
    return p;
}

static sluice_json_value sluice__span(const uint8_t *p, const uint8_t *e) {
    sluice_json_value v;
    const uint8_t *q = sluice__skip(p, e);
    v.type = sluice__type(*p);
    v.ptr = p;
    v.len = (uint32_t)(q - p);
    v.escaped = v.type == SLUICE_JSON_STRING && sluice__escaped;
    return v;
}

sluice_json_value sluice_json_root(const uint8_t *p, size_t n) {
    const uint8_t *e = p + n;
    return sluice__span(sluice__ws(p, e), e);
}

void sluice_json_members(sluice_json_iter *it, const sluice_json_value *v) {
    it->p = v->ptr + 1;
    it->end = v->ptr + v->len;
}
void sluice_json_elements(sluice_json_iter *it, const sluice_json_value *v) { sluice_json_members(it, v); }

int sluice_json_next(sluice_json_iter *it, sluice_json_value *name, sluice_json_value *value) {
    const uint8_t *p = sluice__ws(it->p, it->end);
    if (p < it->end && *p == ',') p = sluice__ws(p + 1, it->end);
    if (p >= it->end || *p != '"') return 0;
    *name = sluice__span(p, it->end);
    p = sluice__ws(p + name->len, it->end);
    p = sluice__ws(p + 1, it->end); /* ':' */
    *value = sluice__span(p, it->end);
    it->p = p + value->len;
    return 1;
}

int sluice_json_next_element(sluice_json_iter *it, sluice_json_value *value) {
    const uint8_t *p = sluice__ws(it->p, it->end);
    if (p < it->end && *p == ',') p = sluice__ws(p + 1, it->end);
    if (p >= it->end || *p == ']') return 0;
    *value = sluice__span(p, it->end);
    it->p = p + value->len;
    return 1;
}

/* Decodes the escape at p (after the backslash) into a code point; lone surrogates stay as they
 * are (0xD800..0xDFFF). Advances *pp past the escape. */
static uint32_t sluice__unescape(const uint8_t **pp, const uint8_t *e) {
    const uint8_t *p = *pp;
    uint8_t c = *p++;
    uint32_t cp;
    switch (c) {
    case 'b': cp = '\b'; break;
    case 'f': cp = '\f'; break;
    case 'n': cp = '\n'; break;
    case 'r': cp = '\r'; break;
    case 't': cp = '\t'; break;
    case 'u':
        cp = (uint32_t)(sluice__hex(p[0]) << 12 | sluice__hex(p[1]) << 8 | sluice__hex(p[2]) << 4 | sluice__hex(p[3]));
        p += 4;
        if (cp >= 0xD800 && cp <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u') {
            uint32_t lo = (uint32_t)(sluice__hex(p[2]) << 12 | sluice__hex(p[3]) << 8 | sluice__hex(p[4]) << 4 |
                                     sluice__hex(p[5]));
            if (lo >= 0xDC00 && lo <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                p += 6;
            }
        }
        break;
    default: cp = c; break; /* " \ / */
    }
    *pp = p;
    return cp;
}

__attribute__((always_inline)) int sluice_json_string_is(const sluice_json_value *s, const char *name) {
    const uint8_t *p = s->ptr + 1, *e = s->ptr + s->len - 1;
    const uint8_t *n = (const uint8_t *)name;
    if (!s->escaped) { /* raw bytes are the decoded bytes */
        size_t nl = strlen(name);
        if ((size_t)(e - p) != nl) return 0;
        for (size_t i = 0; i < nl; i++)
            if (p[i] != n[i]) return 0;
        return 1;
    }
    while (p < e) {
        if (*p != '\\') {
            if (*n++ != *p++) return 0;
            continue;
        }
        p++;
        uint32_t cp = sluice__unescape(&p, e);
        if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF)) return 0; /* NUL or a lone surrogate matches no name */
        uint8_t buf[4];
        size_t k;
        if (cp < 0x80) buf[0] = (uint8_t)cp, k = 1;
        else if (cp < 0x800) buf[0] = (uint8_t)(0xC0 | cp >> 6), buf[1] = (uint8_t)(0x80 | (cp & 0x3F)), k = 2;
        else if (cp < 0x10000)
            buf[0] = (uint8_t)(0xE0 | cp >> 12), buf[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)),
            buf[2] = (uint8_t)(0x80 | (cp & 0x3F)), k = 3;
        else
            buf[0] = (uint8_t)(0xF0 | cp >> 18), buf[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F)),
            buf[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F)), buf[3] = (uint8_t)(0x80 | (cp & 0x3F)), k = 4;
        for (size_t i = 0; i < k; i++)
            if (*n++ != buf[i]) return 0;
    }
    return *n == 0;
}

size_t sluice_json_string_decode(const sluice_json_value *s, uint8_t *dst, size_t cap) {
    const uint8_t *p = s->ptr + 1, *e = s->ptr + s->len - 1;
    size_t n = 0;
#define SLUICE__PUT(b) do { if (n < cap) dst[n] = (uint8_t)(b); n++; } while (0)
    while (p < e) {
        if (*p != '\\') {
            SLUICE__PUT(*p++);
            continue;
        }
        p++;
        uint32_t cp = sluice__unescape(&p, e);
        if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;
        if (cp < 0x80) SLUICE__PUT(cp);
        else if (cp < 0x800) { SLUICE__PUT(0xC0 | cp >> 6); SLUICE__PUT(0x80 | (cp & 0x3F)); }
        else if (cp < 0x10000) {
            SLUICE__PUT(0xE0 | cp >> 12); SLUICE__PUT(0x80 | ((cp >> 6) & 0x3F)); SLUICE__PUT(0x80 | (cp & 0x3F));
        } else {
            SLUICE__PUT(0xF0 | cp >> 18); SLUICE__PUT(0x80 | ((cp >> 12) & 0x3F));
            SLUICE__PUT(0x80 | ((cp >> 6) & 0x3F)); SLUICE__PUT(0x80 | (cp & 0x3F));
        }
    }
#undef SLUICE__PUT
    return n;
}

double sluice_json_number(const sluice_json_value *num) {
    static const double pow10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                   1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const uint8_t *p = num->ptr, *e = num->ptr + num->len;
    /* Exact fast path (Clinger): at most 15 significant digits and a power of ten up to 1e22 are
     * both exact doubles, so one multiplication or division rounds correctly. */
    int neg = p < e && *p == '-';
    const uint8_t *q = p + neg;
    uint64_t d = 0;
    int nd = 0, e10 = 0;
    for (; q < e && *q >= '0' && *q <= '9'; q++)
        if (nd || *q != '0') d = d * 10 + (uint64_t)(*q - '0'), nd++;
    if (q < e && *q == '.')
        for (q++; q < e && *q >= '0' && *q <= '9'; q++) {
            if (nd || *q != '0') d = d * 10 + (uint64_t)(*q - '0'), nd++;
            e10--;
        }
    if (q == e && nd <= 15 && e10 >= -22) {
        double x = e10 == 0 ? (double)d : (double)d / pow10[-e10];
        return neg ? -x : x;
    }
    /* strtod (correctly rounded in wasi-libc) needs a terminated copy: the token may end the buffer. */
    char small[64];
    char *buf = num->len < sizeof small ? small : (char *)malloc((size_t)num->len + 1);
    if (!buf) return 0.0 / 0.0;
    memcpy(buf, num->ptr, num->len);
    buf[num->len] = 0;
    double x = strtod(buf, NULL);
    if (buf != small) free(buf);
    return x;
}

void sluice_json_scan_object(sluice_json_scan *sc, const uint8_t *p, size_t n, int max_depth) {
    const uint8_t *e = p + n;
    sc->end = e;
    sc->max_depth = max_depth;
    sc->done = 1;
    p = sluice__ws(p, e);
    if (p >= e || *p != '{') {
        sc->status = sluice_json_validate(p, (size_t)(e - p), max_depth) ? -1 : 0;
        return;
    }
    if (max_depth < 1) {
        sc->status = 0;
        return;
    }
    p = sluice__ws(p + 1, e);
    if (p < e && *p == '}') {
        sc->status = sluice__ws(p + 1, e) == e;
        return;
    }
    sc->p = p;
    sc->done = 0;
    sc->status = 0;
}

__attribute__((always_inline)) int sluice_json_scan_next(sluice_json_scan *sc, sluice_json_value *name, sluice_json_value *value) {
    if (sc->done) return 0;
    const uint8_t *p = sc->p, *e = sc->end, *q;
    sc->done = 1; /* until this member is known to be well-formed */
    if (p >= e || *p != '"' || !(q = sluice__vstring(p + 1, e))) return 0;
    name->type = SLUICE_JSON_STRING, name->ptr = p, name->len = (uint32_t)(q - p), name->escaped = sluice__escaped;
    p = sluice__ws(q, e);
    if (p >= e || *p != ':') return 0;
    p = sluice__ws(p + 1, e);
    if (p < e && *p == '"') {
        if (!(q = sluice__vstring(p + 1, e))) return 0;
        value->escaped = sluice__escaped;
    } else {
        if (!(q = sluice__vvalue(p, e, 1, sc->max_depth))) return 0;
        value->escaped = 0;
    }
    value->type = sluice__type(*p), value->ptr = p, value->len = (uint32_t)(q - p);
    p = sluice__ws(q, e);
    if (p < e && *p == ',') {
        sc->p = sluice__ws(p + 1, e);
        sc->done = 0;
    } else if (p < e && *p == '}') {
        sc->status = sluice__ws(p + 1, e) == e;
    } else {
        return 0;
    }
    return 1;
}

int sluice_json_find(const uint8_t *p, size_t n, const char *name, sluice_json_value *out) {
    sluice_json_scan sc;
    sluice_json_value k, v;
    int found = 0;
    sluice_json_scan_object(&sc, p, n, SLUICE_JSON_MAX_DEPTH);
    while (sluice_json_scan_next(&sc, &k, &v))
        if (!found && sluice_json_string_is(&k, name)) {
            *out = v;
            found = 1;
        }
    return sc.status == 1 ? found : -1;
}

#endif /* SLUICE_TRANSFORM_IMPLEMENTED */
#endif /* SLUICE_TRANSFORM_IMPLEMENTATION */
