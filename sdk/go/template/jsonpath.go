package template

import (
	"fmt"
	"strconv"
	"strings"
)

// ParseJSONPath parses a JSONPath of member names and array indexes (`$.a.b`, `$.items[0].sku`,
// `$['odd key']`) into the path Lookup takes. "$" alone is the whole value: an empty, non-nil
// path.
func ParseJSONPath(s string) ([]string, error) {
	if !strings.HasPrefix(s, "$") {
		return nil, fmt.Errorf("%q must start with $ (for example $.commodity)", s)
	}
	p := []string{}
	rest := s[1:]
	for rest != "" {
		switch {
		case strings.HasPrefix(rest, "['"):
			end := strings.Index(rest[2:], "']")
			if end < 0 {
				return nil, fmt.Errorf("%q: unclosed ['...']", s)
			}
			p = append(p, rest[2:2+end])
			rest = rest[2+end+2:]
		case rest[0] == '[':
			end := strings.IndexByte(rest, ']')
			if end < 0 {
				return nil, fmt.Errorf("%q: unclosed [", s)
			}
			n, err := strconv.Atoi(rest[1:end])
			if err != nil || n < 0 {
				return nil, fmt.Errorf("%q: [%s] is not an array index", s, rest[1:end])
			}
			p = append(p, rest[1:end])
			rest = rest[end+1:]
		case rest[0] == '.':
			rest = rest[1:]
			end := strings.IndexAny(rest, ".[")
			if end < 0 {
				end = len(rest)
			}
			if end == 0 {
				return nil, fmt.Errorf("%q: empty member name", s)
			}
			p = append(p, rest[:end])
			rest = rest[end:]
		default:
			return nil, fmt.Errorf("%q: unexpected %q (use $.name, $[0] or $['name'])", s, rest[:1])
		}
	}
	return p, nil
}
