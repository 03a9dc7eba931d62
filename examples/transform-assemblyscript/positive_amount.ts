// positive_amount: rejects records whose "amount" is missing or not a number greater than 0.
import {
  Record, Output, transform, reason, JsonValue, jsonFind, jsonNumber, JSON_NUMBER,
  CODE_INVALID_INPUT, CODE_SCHEMA, CODE_RANGE,
} from "../../sdk/assemblyscript/assembly/index";
export { tf_abi_version, tf_meta, tf_reserve, tf_init, tf_process, tf_last_error } from "../../sdk/assemblyscript/assembly/index";

const AMOUNT = reason("amount"), NOT_OBJECT = reason("not a JSON object");
const MISSING = reason("amount: missing"), BAD = reason("amount: must be a number greater than 0");
const v = new JsonValue();

transform('{"name":"positive_amount","version":"0.1.0","abi":"1.0","kinds":["validate"]}', (rec: Record, out: Output): void => {
  const found = jsonFind(rec.valuePtr, rec.valueLen, AMOUNT, v);
  if (found < 0) out.reject(CODE_INVALID_INPUT, NOT_OBJECT);
  else if (found == 0) out.reject(CODE_SCHEMA, MISSING);
  else if (v.kind != JSON_NUMBER || !(jsonNumber(v) > 0)) out.reject(CODE_RANGE, BAD);
});
