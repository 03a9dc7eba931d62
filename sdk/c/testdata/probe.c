/* probe: exercises every disposition of the C SDK for the cross-language SDK conformance test
 * (transforms/validate_price/crosslang). The record value is a command; see the Go test. */
#define SLUICE_TRANSFORM_IMPLEMENTATION
#include "sluice_transform.h"

#include <stdio.h>

static int eq(const sluice_record *r, const char *s) {
    size_t n = strlen(s);
    return r->value_len == n && memcmp(r->value, s, n) == 0;
}

static uint8_t big[100000];

static int init(const uint8_t *cfg, uint32_t len) {
    sluice_json_value v;
    if (len && sluice_json_find(cfg, len, "fail", &v) == 1) return sluice_error("probe: fail requested");
    return 0;
}

static void on_record(sluice_ctx *c, const sluice_record *r) {
    if (eq(r, "pass")) return;
    if (eq(r, "drop")) sluice_drop(c);
    else if (eq(r, "reject")) sluice_reject(c, 7, "probe reject");
    else if (eq(r, "undo")) { sluice_reject(c, 7, "x"); sluice_pass(c); }
    else if (eq(r, "emit")) { sluice_emit(c, 0, "one", 3); sluice_emit(c, 1, "two", 3); }
    else if (eq(r, "key")) sluice_emit_kv(c, 0, "k1", 2, "keyed", 5, 1234);
    else if (eq(r, "nullkey")) sluice_emit_kv(c, 0, NULL, 0, "nokey", 5, SLUICE_NO_TS);
    else if (eq(r, "empty")) sluice_emit(c, 0, "", 0);
    else if (eq(r, "big")) { memset(big, 'x', sizeof big); sluice_emit(c, 0, big, sizeof big); }
    else if (eq(r, "time")) {
        char b[32];
        int n = snprintf(b, sizeof b, "%lld", (long long)r->ts_ms);
        sluice_emit(c, 0, b, (size_t)n);
    } else if (eq(r, "keyecho")) {
        if (r->key_is_null) sluice_emit(c, 0, "<null>", 6);
        else sluice_emit(c, 0, r->key, r->key_len);
    } else if (eq(r, "headers")) {
        uint32_t pos = 0, kl, vl;
        const uint8_t *k, *v;
        uint8_t b[256];
        while (sluice_header_next(r, &pos, &k, &kl, &v, &vl)) {
            if (kl + vl + 1 > sizeof b) continue;
            memcpy(b, k, kl);
            b[kl] = '=';
            memcpy(b + kl + 1, v, vl);
            sluice_emit(c, 0, b, kl + vl + 1);
        }
    } else if (r->value_len > 4 && memcmp(r->value, "num:", 4) == 0) {
        /* the bits of the double nearest to the number token after "num:", in hex */
        sluice_json_value v = {SLUICE_JSON_NUMBER, r->value + 4, r->value_len - 4, 0};
        double x = sluice_json_number(&v);
        uint64_t bits;
        memcpy(&bits, &x, 8);
        char b[16];
        for (int i = 0; i < 16; i++) b[i] = "0123456789abcdef"[(bits >> (60 - 4 * i)) & 15];
        sluice_emit(c, 0, b, 16);
    } else sluice_reject(c, 8, "unknown command");
}

#define PROBE_META                                                                               \
    "{\"name\":\"probe\",\"version\":\"0.0.1\",\"abi\":\"1.0\",\"kinds\":[\"filter\",\"flatmap\",\"route\"]," \
    "\"ports\":[\"main\",\"alerts\"]}"

#ifdef PROBE_BATCH
/* The same commands through the per-batch entry point (probe_batch.c). */
static int on_batch(sluice_ctx *c, uint32_t n) {
    sluice_record r;
    for (uint32_t i = 0; i < n; i++) {
        sluice_record_at(c, i, &r);
        if (eq(&r, "failbatch")) return sluice_error("probe: batch failed");
        on_record(c, &r);
    }
    return 0;
}
SLUICE_TRANSFORM_BATCH(PROBE_META, init, on_batch)
#else
SLUICE_TRANSFORM(PROBE_META, init, on_record)
#endif
