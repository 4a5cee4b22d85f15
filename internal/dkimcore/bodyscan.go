package dkimcore

import (
	"encoding/binary"
	"math/bits"
)

// The relaxed body scanner: the stretch of a body that relaxed
// canonicalisation (RFC 6376 §3.4.4) leaves exactly as written, found
// eight bytes at a time, so that ordinary prose is hashed straight from
// the milter's chunk without a pass per byte.

// SWAR constants: one byte value repeated in every byte of a word.
const (
	lanes  = 0x0101010101010101
	high   = 0x8080808080808080
	low7   = 0x7f7f7f7f7f7f7f7f
	above  = 0x5f5f5f5f5f5f5f5f // low7 + above carries into the high bit iff the byte is 0x21 or more
	spaces = 0x2020202020202020
)

// textBytes returns the high bit of each byte of w above 0x20: bytes
// that are not white space, CR or LF (nor another C0 control, which the
// caller looks at one by one). It is exact per byte: no carry crosses a
// byte.
func textBytes(w uint64) uint64 { return ((w & low7) + above | w) & high }

// spaceBytes returns the high bit of each SP byte of w, exactly.
func spaceBytes(w uint64) uint64 {
	x := w ^ spaces
	return ^((x & low7) + low7 | x) & high
}

// relaxedRun returns the end of the run of p that starts at i, where p[i]
// is text, and that relaxed canonicalisation leaves unchanged: text, a
// single SP between text, CRLF line ends (empty lines included), ending
// with text. It stops before a tab, a SP not followed by text, a bare CR
// or LF, and the end of p; the line ends and the SP before the stop are
// left to the caller's byte-wise canonicalisation. The work is linear in
// the bytes passed over, plus the line ends stepped back over once.
func relaxedRun(p []byte, i int) int {
	j := i
	skipLF := false // the LF of a CRLF split across two words
	for ; j+8 <= len(p); j += 8 {
		w := binary.LittleEndian.Uint64(p[j:])
		text := textBytes(w)
		// A SP followed by text in the same word is left as written.
		odd := ^text & high &^ (spaceBytes(w) & (text >> 8))
		if skipLF {
			odd &^= 0x80
			skipLF = false
		}
		for odd != 0 {
			k := bits.TrailingZeros64(odd) >> 3
			at := j + k
			ok, lf := plainByte(p, at)
			if !ok {
				return backOverLineEnds(p, i, at)
			}
			odd &= odd - 1
			if lf { // the CR's LF: the next byte
				if k == 7 {
					skipLF = true
				} else {
					odd &^= 0x80 << (8 * (k + 1))
				}
			}
		}
	}
	if skipLF {
		j++
	}
	for ; j < len(p); j++ {
		ok, lf := plainByte(p, j)
		if !ok {
			break
		}
		if lf {
			j++
		}
	}
	return backOverLineEnds(p, i, min(j, len(p)))
}

// plainByte reports whether relaxed canonicalisation leaves p[at], a byte
// of 0x20 or less, unchanged within a run: a SP followed by text, the CR
// of a CRLF (lf: its LF is then plain too), a C0 control other than HTAB,
// CR and LF. A SP at the end of p, or a CR there, is not: what follows
// decides.
func plainByte(p []byte, at int) (ok, lf bool) {
	switch p[at] {
	case ' ':
		return at+1 < len(p) && relaxedClass[p[at+1]] == classText, false
	case '\r':
		return at+1 < len(p) && p[at+1] == '\n', true
	case '\t', '\n':
		return false, false
	}
	return true, false
}

// backOverLineEnds returns the end of the run that stops at end: after its
// last text byte (p[i] is text, CR and LF the only other bytes a run ends
// with).
func backOverLineEnds(p []byte, i, end int) int {
	for end > i+1 && (p[end-1] == '\n' || p[end-1] == '\r') {
		end--
	}
	return end
}
