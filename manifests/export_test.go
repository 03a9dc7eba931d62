package manifests

import "github.com/sluicehq/sluice/sdk/go/connector"

// RangedSetting is a setting of a built-in section that has a range, for the tests.
type RangedSetting struct {
	Section  string // "batch", "buffer", "limits", "aggregate.limits", "dead_letter"
	Name     string
	Type     connector.Type
	Min, Max *float64
	MinExcl  bool
}

// RangedSettings lists every setting of the rule tables that has a range.
func RangedSettings() []RangedSetting {
	var out []RangedSetting
	for _, sec := range []struct {
		name  string
		rules []rule
	}{{"batch", batchRules}, {"buffer", bufferRules}, {"limits", limitsRules}, {"aggregate.limits", aggregateLimitsRules}, {"dead_letter", deadLetterRules}} {
		for _, r := range sec.rules {
			if !r.min.set && !r.max.set {
				continue
			}
			s := RangedSetting{Section: sec.name, Name: r.Name, Type: r.Type, MinExcl: r.min.exclusive}
			if r.min.set {
				v := r.min.value
				s.Min = &v
			}
			if r.max.set {
				v := r.max.value
				s.Max = &v
			}
			out = append(out, s)
		}
	}
	return out
}

// EnumSetting is a setting of the rule tables with a fixed set of values, for the tests.
type EnumSetting struct {
	Section string // "spec", "transform", "limits"...
	Name    string
	Values  []string
}

// EnumSettings lists every setting of the rule tables with allowed values.
func EnumSettings() []EnumSetting {
	var out []EnumSetting
	for _, sec := range []struct {
		name  string
		rules []rule
	}{{"batch", batchRules}, {"buffer", bufferRules}, {"limits", limitsRules}, {"aggregate.limits", aggregateLimitsRules}, {"dead_letter", deadLetterRules},
		{"spec", []rule{deliveryRule}}, {"transform", []rule{onRejectRule}}} {
		for _, r := range sec.rules {
			if len(r.Enum) > 0 {
				out = append(out, EnumSetting{Section: sec.name, Name: r.Name, Values: r.Enum})
			}
		}
	}
	return out
}
