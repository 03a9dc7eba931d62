// hostile.c: a test guest for internal/wasmhost, written against sdk/abi/v1/ABI.md without an SDK.
// The value of each record chooses what the guest does with it:
//   "trap..."   out-of-bounds memory access (a wasm trap)
//   "loop..."   an infinite loop
//   "slow..."   a busy loop of 300 million iterations (a fraction of a second), then PASS
//   "spin..."   a busy loop of one million iterations, then PASS (benchmarks loop cost)
//   "grow..."   allocates memory until malloc fails, then aborts
//   "recurse..." recursion without end and without a loop (it ends when the stack overflows)
//   "tree..."   an exponential call tree without a loop: 2^60 calls of depth 60
//   "fail..."   the whole call returns batch error -1
//   "reject..." REJECT with code 3 and reason "value: out of range"
//   "drop..."   DROP
//   "emit..."   EMIT two records: "<value>#0" on port main and "<value>#1" on port alerts
//   "log..."    logs the value and adds 1 to the guest counter "logged", then PASS
//   anything else PASS.
// Config: {"fail_init": true} makes tf_init fail; {"loop_init": true} makes it loop forever. Build with -DABI_VERSION=... to lie about the ABI.
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#ifndef ABI_VERSION
#define ABI_VERSION 0x00010000
#endif

#define EXPORT(name) __attribute__((export_name(name)))
__attribute__((import_module("tf_host_v1"), import_name("log"))) void host_log(int32_t, const void *, int32_t);
__attribute__((import_module("tf_host_v1"), import_name("metric_add"))) void host_metric_add(const void *, int32_t, int64_t);

static const char META[] =
    "{\"name\":\"hostile\",\"version\":\"0.1.0\",\"abi\":\"1.0\",\"kinds\":[\"validate\",\"route\"],"
    "\"ports\":[\"main\",\"alerts\"],"
    "\"config_schema\":{\"type\":\"object\",\"properties\":{\"fail_init\":{\"type\":\"boolean\"},\"loop_init\":{\"type\":\"boolean\"}}}}";

static uint8_t *in_buf;
static uint32_t in_cap;
static uint8_t *out_buf;
static uint32_t out_cap;
static const char *last_err = "";

static uint64_t ptrlen(const void *p, uint32_t n) { return ((uint64_t)(uintptr_t)p << 32) | n; }
static uint32_t rd32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static void wr16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void wr32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void wr64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

EXPORT("tf_abi_version") int32_t tf_abi_version(void) { return ABI_VERSION; }
EXPORT("tf_meta") int64_t tf_meta(void) { return (int64_t)ptrlen(META, sizeof(META) - 1); }
EXPORT("tf_last_error") int64_t tf_last_error(void) { return (int64_t)ptrlen(last_err, strlen(last_err)); }

EXPORT("tf_reserve") int32_t tf_reserve(int32_t cap) {
    if ((uint32_t)cap > in_cap) {
        free(in_buf);
        in_buf = aligned_alloc(8, ((uint32_t)cap + 7) & ~7u);
        in_cap = in_buf ? (uint32_t)cap : 0;
    }
    return (int32_t)(uintptr_t)in_buf;
}

EXPORT("tf_init") int32_t tf_init(int32_t len) {
    static char cfg[256];
    uint32_t n = (uint32_t)len < sizeof(cfg) - 1 ? (uint32_t)len : sizeof(cfg) - 1;
    memcpy(cfg, in_buf, n);
    cfg[n] = 0;
    if (strstr(cfg, "\"fail_init\":true") || strstr(cfg, "\"fail_init\": true")) {
        last_err = "fail_init is set";
        return 1;
    }
    if (strstr(cfg, "\"loop_init\":true") || strstr(cfg, "\"loop_init\": true")) {
        for (volatile int x = 0;; x++) {}
    }
    return 0;
}

static int starts(const uint8_t *v, uint32_t n, const char *p) {
    uint32_t l = strlen(p);
    return n >= l && memcmp(v, p, l) == 0;
}

static uint8_t *ensure_out(uint32_t need) {
    if (need > out_cap) {
        free(out_buf);
        out_buf = aligned_alloc(8, (need + 7) & ~7u);
        out_cap = out_buf ? need : 0;
    }
    return out_buf;
}

static const char REASON[] = "value: out of range";

// Called through volatile function pointers, so that the compiler cannot turn the recursion
// into a loop.
static volatile int sink;
static int recurse(int d);
static int tree(int d);
static int (*volatile recurse_p)(int) = recurse;
static int (*volatile tree_p)(int) = tree;
static int recurse(int d) { int r = recurse_p(d + 1); sink = r; return r + d; }
static int tree(int d) {
    if (d == 0) return sink;
    int a = tree_p(d - 1);
    sink = a;
    return tree_p(d - 1) + a;
}

EXPORT("tf_process") int64_t tf_process(int32_t in_len) {
    const uint8_t *f = in_buf;
    if (rd32(f) != 0x31424654 || rd32(f + 12) != 1) { last_err = "unsupported frame"; return -2; }
    uint32_t n = rd32(f + 16), dsz = f[10] | (f[11] << 8), doff = rd32(f + 24);
    uint32_t n_out = 0, data = sizeof(REASON);
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *d = f + doff + i * dsz;
        const uint8_t *v = f + rd32(d + 24);
        uint32_t vl = rd32(d + 28);
        if (starts(v, vl, "emit")) { n_out += 2; data += 2 * (vl + 2); }
    }
    uint32_t disp_off = 32, out_off = 32 + 12 * n, data_off = out_off + 48 * n_out;
    uint8_t *o = ensure_out(data_off + data);
    if (!o) { last_err = "out of memory"; return -3; }
    memcpy(o + data_off, REASON, sizeof(REASON) - 1);
    uint32_t dp = data_off + sizeof(REASON), oi = 0;
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *d = f + doff + i * dsz;
        const uint8_t *v = f + rd32(d + 24);
        uint32_t vl = rd32(d + 28);
        uint8_t *disp = o + disp_off + 12 * i;
        memset(disp, 0, 12);
        if (starts(v, vl, "trap")) {
            *(volatile int *)0xFFFFFFF0u = 1;
        } else if (starts(v, vl, "loop")) {
            for (volatile int x = 0;; x++) {}
        } else if (starts(v, vl, "slow")) {
            for (volatile int x = 0; x < 300000000; x++) {}
        } else if (starts(v, vl, "spin")) {
            for (volatile int x = 0; x < 1000000; x++) {}
        } else if (starts(v, vl, "recurse")) {
            sink = recurse_p(0);
        } else if (starts(v, vl, "tree")) {
            sink = tree_p(60);
        } else if (starts(v, vl, "grow")) {
            for (;;) {
                volatile char *p = malloc(1 << 20);
                if (!p) abort();
                p[0] = 1;
            }
        } else if (starts(v, vl, "fail")) {
            last_err = "asked to fail";
            return -1;
        } else if (starts(v, vl, "reject")) {
            disp[0] = 3;
            wr16(disp + 2, 3);
            wr32(disp + 4, data_off);
            wr32(disp + 8, sizeof(REASON) - 1);
        } else if (starts(v, vl, "drop")) {
            disp[0] = 1;
        } else if (starts(v, vl, "emit")) {
            disp[0] = 2;
            wr32(disp + 4, oi);
            wr32(disp + 8, 2);
            for (uint32_t k = 0; k < 2; k++, oi++) {
                uint8_t *od = o + out_off + 48 * oi;
                memset(od, 0, 48);
                wr64(od, 0x8000000000000000ull);
                wr64(od + 8, i);
                wr32(od + 20, 0xFFFFFFFFu);
                wr32(od + 24, dp);
                wr32(od + 28, vl + 2);
                memcpy(o + dp, v, vl);
                o[dp + vl] = '#';
                o[dp + vl + 1] = (uint8_t)('0' + k);
                dp += vl + 2;
                wr32(od + 36, 0xFFFFFFFFu);
                wr32(od + 40, k);
            }
        } else if (starts(v, vl, "log")) {
            host_log(1, v, vl);
            host_metric_add("logged", 6, 1);
        }
    }
    wr32(o, 0x31524654);
    wr16(o + 4, 32);
    wr16(o + 6, 48);
    wr32(o + 8, n);
    wr32(o + 12, disp_off);
    wr32(o + 16, n_out);
    wr32(o + 20, out_off);
    wr32(o + 24, 0);
    wr32(o + 28, 0);
    (void)in_len;
    return (int64_t)ptrlen(o, dp);
}
