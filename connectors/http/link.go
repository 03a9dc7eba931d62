package http

import "strings"

// nextLink returns the target of the rel="next" link of Link header values (RFC 8288), or "".
func nextLink(values []string) string {
	for _, v := range values {
		for len(v) > 0 {
			v = strings.TrimLeft(v, " \t,")
			if !strings.HasPrefix(v, "<") {
				return ""
			}
			end := strings.IndexByte(v, '>')
			if end < 0 {
				return ""
			}
			target := v[1:end]
			v = v[end+1:]
			// Parameters up to the next link: ;name=value or ;name="value".
			next := false
			for {
				v = strings.TrimLeft(v, " \t")
				if !strings.HasPrefix(v, ";") {
					break
				}
				v = strings.TrimLeft(v[1:], " \t")
				eq := strings.IndexAny(v, "=;,")
				if eq < 0 || v[eq] != '=' {
					if eq < 0 {
						v = ""
					} else {
						v = v[eq:]
					}
					continue
				}
				name := strings.ToLower(strings.TrimSpace(v[:eq]))
				v = strings.TrimLeft(v[eq+1:], " \t")
				var value string
				if strings.HasPrefix(v, `"`) {
					q := 1
					for q < len(v) && v[q] != '"' {
						if v[q] == '\\' {
							q++
						}
						q++
					}
					value = strings.ReplaceAll(v[1:min(q, len(v))], `\`, "")
					v = v[min(q+1, len(v)):]
				} else {
					e := strings.IndexAny(v, ";,")
					if e < 0 {
						e = len(v)
					}
					value, v = strings.TrimSpace(v[:e]), v[e:]
				}
				if name == "rel" {
					for _, r := range strings.Fields(strings.ToLower(value)) {
						if r == "next" {
							next = true
						}
					}
				}
			}
			if next {
				return target
			}
		}
	}
	return ""
}
