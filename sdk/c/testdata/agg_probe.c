/* agg_probe: an aggregate module (ABI 1.1) written with the C SDK, for the cross-language
 * aggregation test (transforms/validate_price/crosslang/agg_test.go). The Rust and AssemblyScript
 * probes (sdk/{rust,assemblyscript}/testdata/agg_probe.*) and the Go one
 * (sdk/go/aggregate/testdata/probe) behave identically:
 *
 * - state: 16 bytes, little-endian {u64 count, f64 sum} over the number "n" of each record value;
 * - accumulate: a record without a numeric "n" is rejected with code 2 and "n: missing or not a
 *   number" (and not folded); a record whose n is negative is folded and emitted twice: itself
 *   (value inherited) on port main and {"neg":N} (N as written) on port alerts; any other record
 *   is folded and dropped;
 * - emit: one record {"key":"K","start":S,"end":E,"count":C,"sum":X} with the slot's key (K is
 *   the key with '"', '\' and control bytes escaped, null for a null key; X is written by
 *   put_sum below);
 * - merge: adds the counts and the sums. */
#define SLUICE_AGGREGATE
#define SLUICE_TRANSFORM_IMPLEMENTATION
#include "sluice_transform.h"

#include <stdio.h>

typedef struct state {
    uint64_t count;
    double sum;
} state;

/* Reads a state blob: empty is a new slot, anything but 16 bytes is an error. */
static int get_state(const uint8_t *p, uint32_t len, state *s) {
    s->count = 0, s->sum = 0;
    if (len == 0) return 0;
    if (len != 16) return sluice_error("agg_probe: state is not 16 bytes");
    memcpy(&s->count, p, 8);
    memcpy(&s->sum, p + 8, 8);
    return 0;
}

static int set_state(sluice_ctx *c, const state *s) {
    uint8_t b[16];
    memcpy(b, &s->count, 8);
    memcpy(b + 8, &s->sum, 8);
    return sluice_state_set(c, b, 16) ? SLUICE_ERR_NOMEM : 0;
}

static int accumulate(sluice_ctx *c, const sluice_slot *slot, const uint8_t *st, uint32_t st_len,
                      const sluice_record *r) {
    (void)slot;
    sluice_json_value v;
    if (sluice_json_find(r->value, r->value_len, "n", &v) != 1 || v.type != SLUICE_JSON_NUMBER) {
        sluice_reject(c, SLUICE_REJECT_SCHEMA, "n: missing or not a number");
        return 0;
    }
    double n = sluice_json_number(&v);
    state s;
    int rc = get_state(st, st_len, &s);
    if (rc) return rc;
    s.count++;
    s.sum += n;
    if ((rc = set_state(c, &s))) return rc;
    if (n < 0) {
        char b[80];
        if (v.len > sizeof b - 9) return sluice_error("agg_probe: number too long");
        memcpy(b, "{\"neg\":", 7);
        memcpy(b + 7, v.ptr, v.len);
        b[7 + v.len] = '}';
        if (sluice_emit_input(c, 0) || sluice_emit(c, 1, b, 8 + v.len)) return SLUICE_ERR_NOMEM;
    }
    return 0;
}

/* The sum as a JSON number: "-" for a negative sum, the integer part, then when there is a
 * fraction "." and its digits, at most 17, each taken by multiplying the rest by 10 (exact for
 * the sums of short binary fractions). NaN and magnitudes of 1e18 or more are written as null. */
static size_t put_sum(char *b, double x) {
    if (!(x > -1e18 && x < 1e18)) return memcpy(b, "null", 4), 4;
    size_t n = 0;
    if (x < 0) b[n++] = '-', x = -x;
    uint64_t ip = (uint64_t)x;
    double f = x - (double)ip;
    n += (size_t)sprintf(b + n, "%llu", (unsigned long long)ip);
    if (f > 0) {
        b[n++] = '.';
        for (int k = 0; k < 17 && f > 0; k++) {
            f *= 10;
            int d = (int)f;
            f -= d;
            b[n++] = (char)('0' + d);
        }
    }
    return n;
}

static int emit(sluice_ctx *c, const sluice_slot *slot, const uint8_t *st, uint32_t st_len) {
    state s;
    int rc = get_state(st, st_len, &s);
    if (rc) return rc;
    char b[1024];
    if (slot->key_len > 128) return sluice_error("agg_probe: key over 128 bytes");
    size_t n = 0;
    memcpy(b, "{\"key\":", 7), n = 7;
    if (slot->key_is_null) {
        memcpy(b + n, "null", 4), n += 4;
    } else {
        b[n++] = '"';
        for (uint32_t i = 0; i < slot->key_len; i++) {
            uint8_t k = slot->key[i];
            if (k == '"' || k == '\\') b[n++] = '\\', b[n++] = (char)k;
            else if (k < 0x20) n += (size_t)sprintf(b + n, "\\u%04x", k);
            else b[n++] = (char)k;
        }
        b[n++] = '"';
    }
    n += (size_t)sprintf(b + n, ",\"start\":%lld,\"end\":%lld,\"count\":%llu,\"sum\":", (long long)slot->window_start,
                         (long long)slot->window_end, (unsigned long long)s.count);
    n += put_sum(b + n, s.sum);
    b[n++] = '}';
    return sluice_emit(c, 0, b, n) ? SLUICE_ERR_NOMEM : 0;
}

static int merge(sluice_ctx *c, const sluice_slot *slot, const uint8_t *st, uint32_t st_len, const uint8_t *other,
                 uint32_t other_len) {
    (void)slot;
    state a, b;
    int rc = get_state(st, st_len, &a);
    if (rc || (rc = get_state(other, other_len, &b))) return rc;
    a.count += b.count;
    a.sum += b.sum;
    return set_state(c, &a);
}

SLUICE_AGGREGATE_MODULE("{\"name\":\"agg_probe\",\"version\":\"0.0.1\",\"abi\":\"1.1\",\"kinds\":[\"aggregate\"],"
                        "\"ports\":[\"main\",\"alerts\"],\"state_version\":1}",
                        NULL, accumulate, emit, merge)
