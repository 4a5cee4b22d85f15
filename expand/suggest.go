package expand

import "strconv"

// suggest returns `: did you mean "x"?` for the candidate closest to name
// by edit distance, or "" when none is close enough. Ties in Levenshtein
// distance go to the candidate reachable with fewest insertions and
// deletions ("eqq" suggests "eq" rather than "eqi"), then to the earlier
// candidate.
func suggest(name string, cands []string) string {
	limit := 1
	if len(name) > 4 {
		limit = 2
	}
	best, bestD, bestI := "", limit+1, 0
	for _, c := range cands {
		if c == name {
			continue
		}
		d := editDistance(name, c, 1)
		if d > limit {
			continue
		}
		i := editDistance(name, c, 2)
		if d < bestD || d == bestD && i < bestI {
			best, bestD, bestI = c, d, i
		}
	}
	if best == "" {
		return ""
	}
	return ": did you mean " + strconv.Quote(best) + "?"
}

// editDistance is the Levenshtein distance between a and b with the given
// substitution cost (1 for Levenshtein, 2 for insert/delete distance).
// Long inputs are not compared.
func editDistance(a, b string, sub int) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 20
	}
	var rowBuf [2][65]int
	prev, cur := rowBuf[0][:len(b)+1], rowBuf[1][:len(b)+1]
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := prev[j-1]
			if a[i-1] != b[j-1] {
				c += sub
			}
			c = min(c, prev[j]+1, cur[j-1]+1)
			cur[j] = c
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
