package vectors

import (
	"bytes"
	"math/rand"
)

// Mutate changes a few bytes of v: replacements by interesting bytes (quotes, brackets,
// backslashes, UTF-8 lead and continuation bytes), insertions and deletions.
func Mutate(rng *rand.Rand, v []byte) []byte {
	out := append([]byte(nil), v...)
	interesting := []byte("\"\\{}[],:0123456789eE.-+ \t\n\x00\x7f\x80\xbf\xc0\xc2\xe0\xed\xf0\xf4\xf5\xffu")
	for n := 1 + rng.Intn(3); n > 0; n-- {
		if len(out) == 0 {
			out = append(out, interesting[rng.Intn(len(interesting))])
			continue
		}
		i := rng.Intn(len(out))
		switch rng.Intn(3) {
		case 0:
			out[i] = interesting[rng.Intn(len(interesting))]
		case 1:
			out = append(out[:i], append([]byte{interesting[rng.Intn(len(interesting))]}, out[i:]...)...)
		default:
			out = append(out[:i], out[i+1:]...)
		}
	}
	// Record values are one line of the vectors file: keep them free of newlines.
	return bytes.ReplaceAll(out, []byte("\n"), []byte(" "))
}
