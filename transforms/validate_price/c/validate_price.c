/*
 * validate_price, C version: passes JSON objects with a valid commodity, price and ts and rejects
 * everything else with the codes and reasons of ../SPEC.md (byte for byte the same as the Go, Rust
 * and AssemblyScript versions). Build: make wasm-guests (see mk/wasm-guests.mk).
 */
#define SLUICE_TRANSFORM_IMPLEMENTATION
#include "sluice_transform.h"

#include <math.h>

#define REASON(s) s, sizeof(s) - 1

static const char max_prefix[] = "price: must be at most ";
static double max_price = 1e9;
/* "price: must be at most " + MAXTEXT, built at init. */
static char *max_reason;
static size_t max_reason_len;

static int set_max_reason(const uint8_t *text, size_t len) {
    char *r = (char *)malloc(sizeof max_prefix - 1 + len);
    if (!r) return -1;
    memcpy(r, max_prefix, sizeof max_prefix - 1);
    memcpy(r + sizeof max_prefix - 1, text, len);
    free(max_reason);
    max_reason = r;
    max_reason_len = sizeof max_prefix - 1 + len;
    return 0;
}

/* SPEC section 1. */
static int init(const uint8_t *cfg, uint32_t len) {
    max_price = 1e9;
    if (set_max_reason((const uint8_t *)"1000000000", 10)) return sluice_error("config: out of memory");
    size_t ws = 0;
    while (ws < len && (cfg[ws] == ' ' || cfg[ws] == '\t' || cfg[ws] == '\n' || cfg[ws] == '\r')) ws++;
    if (ws == len) return 0; /* no config */
    if (!sluice_json_validate(cfg, len, SLUICE_JSON_MAX_DEPTH)) return sluice_error("config: not valid JSON");
    sluice_json_value root = sluice_json_root(cfg, len), k, v;
    if (root.type == SLUICE_JSON_NULL) return 0;
    if (root.type != SLUICE_JSON_OBJECT) return sluice_error("config: must be a JSON object");
    sluice_json_iter it;
    sluice_json_members(&it, &root);
    while (sluice_json_next(&it, &k, &v)) {
        if (!sluice_json_string_is(&k, "max_price"))
            return sluice_error("config: unknown key (the only key is max_price)");
        if (v.type != SLUICE_JSON_NUMBER) return sluice_error("config: max_price must be a number");
        double m = sluice_json_number(&v);
        if (!(m > 0) || isinf(m)) return sluice_error("config: max_price must be a finite number greater than 0");
        max_price = m;
        if (set_max_reason(v.ptr, v.len)) return sluice_error("config: out of memory");
    }
    return 0;
}

static int days_in(int year, int month) {
    if (month == 2) return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28;
    if (month == 4 || month == 6 || month == 9 || month == 11) return 30;
    return 31;
}

/* Parses n ASCII digits; returns -1 when one is not a digit. */
static int digits(const uint8_t *s, int n) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* SPEC section 5, on the string token (with quotes). */
static int rfc3339(const sluice_json_value *tok) {
    uint8_t buf[40];
    const uint8_t *s = tok->ptr + 1;
    size_t n = tok->len - 2;
    if (tok->escaped) { /* decode first */
        n = sluice_json_string_decode(tok, buf, sizeof buf);
        s = buf;
    }
    /* Every byte position below is checked against ASCII digits or punctuation, so a non-ASCII
     * byte (from the text or from a decoded escape) always fails. */
    if (n < 20 || n > 35) return 0;
    int year = digits(s, 4), month = digits(s + 5, 2), day = digits(s + 8, 2);
    int hour = digits(s + 11, 2), minute = digits(s + 14, 2), sec = digits(s + 17, 2);
    if (year < 0 || month < 0 || day < 0 || hour < 0 || minute < 0 || sec < 0) return 0;
    if (s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':') return 0;
    if (month < 1 || month > 12 || day < 1 || day > days_in(year, month) || hour > 23 || minute > 59 || sec > 59)
        return 0;
    const uint8_t *r = s + 19, *e = s + n;
    if (*r == '.') {
        const uint8_t *d = ++r;
        while (r < e && *r >= '0' && *r <= '9') r++;
        if (r == d || r - d > 9) return 0;
    }
    if (e - r == 1) return *r == 'Z' || *r == 'z';
    if (e - r == 6 && (*r == '+' || *r == '-') && r[3] == ':') {
        int oh = digits(r + 1, 2), om = digits(r + 4, 2);
        return oh >= 0 && om >= 0 && oh <= 23 && om <= 59;
    }
    return 0;
}

/* SPEC section 6, on a number token. */
static int epoch_millis(const sluice_json_value *tok) {
    const uint8_t *p = tok->ptr, *e = tok->ptr + tok->len;
    int neg = *p == '-';
    if (neg) p++;
    if (e - p > 15) return 0;
    uint64_t v = 0;
    for (; p < e; p++) {
        if (*p < '0' || *p > '9') return 0;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    if (neg && v != 0) return 0;
    return v <= 253402300799999ull;
}

typedef struct {
    int count;
    sluice_json_value v;
} field;

/* SPEC section 2: returns 0 (pass) or the reject code, with the reason. */
static int check(const uint8_t *val, size_t len, const char **reason, size_t *reason_len) {
#define FAIL(code, s) return *reason = (s), *reason_len = sizeof(s) - 1, (code)
    field commodity = {0}, price = {0}, ts = {0};
    sluice_json_scan sc;
    sluice_json_value k, v;
    sluice_json_scan_object(&sc, val, len, SLUICE_JSON_MAX_DEPTH);
    while (sluice_json_scan_next(&sc, &k, &v)) {
        field *f = NULL;
        if (sluice_json_string_is(&k, "commodity")) f = &commodity;
        else if (sluice_json_string_is(&k, "price")) f = &price;
        else if (sluice_json_string_is(&k, "ts")) f = &ts;
        if (f) f->count++, f->v = v;
    }
    if (sc.status == 0) FAIL(1, "not valid JSON");
    if (sc.status < 0) FAIL(1, "not a JSON object");
    if (commodity.count == 0) FAIL(2, "commodity: missing");
    if (commodity.count > 1) FAIL(2, "commodity: duplicate key");
    if (commodity.v.type != SLUICE_JSON_STRING || commodity.v.len == 2) FAIL(2, "commodity: must be a non-empty string");
    if (price.count == 0) FAIL(2, "price: missing");
    if (price.count > 1) FAIL(2, "price: duplicate key");
    if (price.v.type != SLUICE_JSON_NUMBER) FAIL(2, "price: must be a number");
    double x = sluice_json_number(&price.v);
    if (!(x > 0)) FAIL(3, "price: must be greater than 0");
    if (!(x <= max_price)) {
        *reason = max_reason, *reason_len = max_reason_len;
        return 3;
    }
    if (ts.count == 0) FAIL(2, "ts: missing");
    if (ts.count > 1) FAIL(2, "ts: duplicate key");
    if (!(ts.v.type == SLUICE_JSON_NUMBER && epoch_millis(&ts.v)) && !(ts.v.type == SLUICE_JSON_STRING && rfc3339(&ts.v)))
        FAIL(2, "ts: must be an RFC 3339 string or epoch milliseconds");
    return 0;
#undef FAIL
}

static void on_record(sluice_ctx *ctx, const sluice_record *rec) {
    const char *reason;
    size_t n;
    int code = check(rec->value, rec->value_len, &reason, &n);
    if (code) sluice_reject_n(ctx, (uint16_t)code, reason, n);
}

SLUICE_TRANSFORM("{\"name\":\"validate_price\",\"version\":\"1.0.0\",\"abi\":\"1.0\",\"kinds\":[\"validate\"],"
                 "\"ports\":[\"main\"],\"config_schema\":{\"type\":\"object\",\"properties\":{\"max_price\":"
                 "{\"type\":\"number\",\"exclusiveMinimum\":0}},\"additionalProperties\":false}}",
                 init, on_record)
