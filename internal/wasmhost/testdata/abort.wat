;; abort.wat: a test guest for internal/wasmhost that calls AssemblyScript's env.abort from
;; tf_process, the way an AssemblyScript assert or throw does. Rebuilt by build.sh with binaryen's
;; wasm-as (shipped with the assemblyscript npm package).
(module
  (import "env" "abort" (func $abort (param i32 i32 i32 i32)))
  (memory (export "memory") 16)
  (data (i32.const 16) "\08\00\00\00\62\00\6f\00\6f\00\6d\00")
  (data (i32.const 48) "\10\00\00\00\67\00\75\00\65\00\73\00\74\00\2e\00\74\00\73\00")
  (data (i32.const 128) "{\"name\":\"abort\",\"version\":\"0.1.0\",\"abi\":\"1.0\",\"kinds\":[\"validate\"]}")
  (func (export "tf_abi_version") (result i32) (i32.const 65536))
  (func (export "tf_meta") (result i64) (i64.const 549755813955))
  (func (export "tf_reserve") (param i32) (result i32)
    (if (i32.gt_u (local.get 0) (i32.const 900000)) (then (return (i32.const 0))))
    (i32.const 4096))
  (func (export "tf_init") (param i32) (result i32) (i32.const 0))
  (func (export "tf_process") (param i32) (result i64)
    (call $abort (i32.const 20) (i32.const 52) (i32.const 7) (i32.const 3))
    (unreachable))
  (func (export "tf_last_error") (result i64) (i64.const 0))
)
