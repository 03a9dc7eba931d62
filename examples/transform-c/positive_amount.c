/* positive_amount: rejects records whose "amount" is missing or not a number greater than 0. */
#define SLUICE_TRANSFORM_IMPLEMENTATION
#include "sluice_transform.h"

static void check(sluice_ctx *c, const sluice_record *r) {
    sluice_json_value v;
    int found = sluice_json_find(r->value, r->value_len, "amount", &v);
    if (found < 0) sluice_reject(c, SLUICE_REJECT_INVALID_INPUT, "not a JSON object");
    else if (!found) sluice_reject(c, SLUICE_REJECT_SCHEMA, "amount: missing");
    else if (v.type != SLUICE_JSON_NUMBER || !(sluice_json_number(&v) > 0))
        sluice_reject(c, SLUICE_REJECT_RANGE, "amount: must be a number greater than 0");
}

SLUICE_TRANSFORM("{\"name\":\"positive_amount\",\"version\":\"0.1.0\",\"abi\":\"1.0\",\"kinds\":[\"validate\"]}", NULL, check)
