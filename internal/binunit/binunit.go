// Package binunit reads the unit letters that end sizes and counts in
// configuration files, expansions and DMARC URIs: k, m, g and t, for
// powers of 1024, in either case (Exim's integers take K, M and G; RFC
// 9990's rua size limits k, m, g and t).
package binunit

import "math"

// Cut returns s without a final unit letter that is one of units
// (lower-case letters from "kmgt") and the unit's multiplier; s itself and
// 1 when s ends in no such letter.
func Cut[T ~string | ~[]byte](s T, units string) (T, int64) {
	if len(s) == 0 {
		return s, 1
	}
	c := s[len(s)-1] | 0x20 // lower case (and harmless for non-letters)
	for i := 0; i < len(units); i++ {
		if units[i] != c {
			continue
		}
		switch c {
		case 'k':
			return s[:len(s)-1], 1 << 10
		case 'm':
			return s[:len(s)-1], 1 << 20
		case 'g':
			return s[:len(s)-1], 1 << 30
		case 't':
			return s[:len(s)-1], 1 << 40
		}
	}
	return s, 1
}

// Scale returns n×mult for a non-negative n and a positive mult, and
// false when the product does not fit an int64.
func Scale(n, mult int64) (int64, bool) {
	if n < 0 || mult <= 0 || n > math.MaxInt64/mult {
		return 0, false
	}
	return n * mult, true
}
