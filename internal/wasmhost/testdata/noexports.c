// noexports.c: a valid wasm module that exports none of the transform ABI.
#include <stdint.h>
int32_t add(int32_t a, int32_t b) { return a + b; }
