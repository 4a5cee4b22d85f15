// Package suggest finds the closest known name to a misspelled one, for
// "did you mean …" hints in configuration errors.
package suggest

import "strings"

// Closest returns the candidate nearest to name by edit distance, or "" when
// none is close enough to be a plausible typo (distance at most a third of
// the name's length, and at most 3).
func Closest(name string, candidates []string) string {
	best, bestD := "", 1<<30
	limit := min(3, max(1, len(name)/3))
	lname := strings.ToLower(name)
	for _, c := range candidates {
		d := Distance(lname, strings.ToLower(c))
		if d < bestD || (d == bestD && c < best) {
			best, bestD = c, d
		}
	}
	if bestD > limit {
		return ""
	}
	return best
}

// Hint formats a suggestion as ": did you mean PREFIX+X?" or "" when there
// is no close candidate.
func Hint(name, prefix string, candidates []string) string {
	if c := Closest(name, candidates); c != "" {
		return ": did you mean \"" + prefix + c + "\"?"
	}
	return ""
}

// Distance is the Damerau-Levenshtein (optimal string alignment) distance
// between a and b, counting a transposition of neighbours as one edit.
func Distance(a, b string) int {
	if a == b {
		return 0
	}
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
