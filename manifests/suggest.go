package manifests

import "strings"

// closest returns the candidate nearest to word, or "" when none is close enough to be a likely
// typo. Comparison ignores case; ties go to the earlier candidate.
func closest(word string, candidates []string) string {
	w := strings.ToLower(word)
	limit := 1
	if len(w) >= 4 {
		limit = 2
	}
	if len(w) >= 9 {
		limit = len(w) / 3
	}
	best, bestDist := "", limit+1
	for _, c := range candidates {
		if c == word {
			continue
		}
		lc := strings.ToLower(c)
		d := editDistance(w, lc)
		if d > limit && len(w) >= 3 && (strings.HasPrefix(lc, w) || strings.HasPrefix(w, lc)) {
			d = limit
		}
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	return best
}

// editDistance is the optimal string alignment distance: insertions, deletions, substitutions and
// transpositions of adjacent characters each cost one.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev2 := make([]int, len(rb)+1)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(rb)]
}

// didYouMean returns `; did you mean "x"?` for the closest candidate, or "".
func didYouMean(word string, candidates []string) string {
	if c := closest(word, candidates); c != "" {
		return `; did you mean "` + c + `"?`
	}
	return ""
}

// Suggest returns the candidate that word is most likely a misspelling of, or "" when none is
// close. Comparison ignores case. It is pure and safe to call concurrently.
func Suggest(word string, candidates []string) string { return closest(word, candidates) }
