package wasmhost

// CanMerge reports whether the module is an aggregate module that exports tf_agg_merge, which
// session windows need (ABI.md section 13.1).
func (m *Module) CanMerge() bool { return m.canMerge }
