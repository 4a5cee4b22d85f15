package dkimcore

import (
	"encoding/binary"
	"math/bits"
)

// The relaxed body scanner: the stretch of a body that relaxed
// canonicalisation (RFC 6376 §3.4.4) leaves exactly as written, found
// eight bytes at a time, so that ordinary prose is hashed straight from
// the milter's chunk without a pass per byte.

// SWAR constants: one byte value repeated in every byte of a word. For a
// byte b < 0x80, (b & 0x7f) + 0x5f carries into the high bit iff b is
// 0x21 or more, + 0x60 iff b is 0x20 or more; no carry crosses a byte.
const (
	high = 0x8080808080808080
	low7 = 0x7f7f7f7f7f7f7f7f
	gt20 = 0x5f5f5f5f5f5f5f5f
	ge20 = 0x6060606060606060
)

// load64 reads the first eight bytes of s as a little-endian word (the
// compiler makes it one load).
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// ctlBytes returns the high bit of each byte of w of 0x20 or less.
func ctlBytes(w uint64) uint64 { return ((w&low7)+gt20|w)&high ^ high }

// skipText returns the first position from j of s where a byte of 0x20
// or less may be, skipping eight bytes at a time those with none.
func skipText(s string, j int) int {
	for j+8 <= len(s) && ctlBytes(load64(s[j:])) == 0 {
		j += 8
	}
	return j
}

// eqBytes returns the high bit of each byte of w equal to c.
func eqBytes(w uint64, c byte) uint64 {
	x := w ^ uint64(c)*0x0101010101010101
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
	// The masks read once from memory stay in registers through the
	// loop, where constants would be written into each turn again.
	m := &swarMasks
	l7, gt, ge, hi := m[0], m[1], m[2], m[3]
	q := p[i:]
	// Sixteen bytes a turn, then eight: most turns find nothing to look
	// at.
	for ; len(q) >= 17; q = q[16:] {
		odd0 := oddBytes(binary.LittleEndian.Uint64(q), binary.LittleEndian.Uint64(q[1:]), l7, gt, ge, hi)
		odd1 := oddBytes(binary.LittleEndian.Uint64(q[8:]), binary.LittleEndian.Uint64(q[9:]), l7, gt, ge, hi)
		if odd0|odd1 == 0 {
			continue
		}
		j := len(p) - len(q)
		for ; odd0 != 0; odd0 &= odd0 - 1 {
			if at := j + bits.TrailingZeros64(odd0)>>3; !plainByte(p, at) {
				return backOverLineEnds(p, i, at)
			}
		}
		for ; odd1 != 0; odd1 &= odd1 - 1 {
			if at := j + 8 + bits.TrailingZeros64(odd1)>>3; !plainByte(p, at) {
				return backOverLineEnds(p, i, at)
			}
		}
	}
	for ; len(q) >= 9; q = q[8:] {
		j := len(p) - len(q)
		for odd := oddBytes(binary.LittleEndian.Uint64(q), binary.LittleEndian.Uint64(q[1:]), l7, gt, ge, hi); odd != 0; odd &= odd - 1 {
			if at := j + bits.TrailingZeros64(odd)>>3; !plainByte(p, at) {
				return backOverLineEnds(p, i, at)
			}
		}
	}
	j := len(p) - len(q)
	for ; j < len(p); j++ {
		if !plainByte(p, j) {
			break
		}
	}
	return backOverLineEnds(p, i, j)
}

// oddBytes returns the high bit of each byte of w that relaxed
// canonicalisation may change, to be looked at one by one: a byte of 0x20
// or less (the others are text, 0x80 and above included), unless it is a
// SP followed by text; n holds each byte's next byte, l7, gt, ge and hi
// are the masks of swarMasks.
func oddBytes(w, n, l7, gt, ge, hi uint64) uint64 {
	t := w & l7
	ctl := hi &^ (t + gt | w) // 0x20 or less
	notCtl := t + ge | w      // 0x20 or more
	nextText := (n&l7 + gt) | n
	return ctl &^ (notCtl & nextText)
}

// swarMasks are low7, gt20, ge20 and high, as data (see relaxedRun).
var swarMasks = [4]uint64{low7, gt20, ge20, high}

// plainByte reports whether relaxed canonicalisation leaves p[at], a byte
// of a run after its first, unchanged: text, a SP followed by text, the CR
// and the LF of a CRLF, a C0 control other than HTAB, CR and LF. A SP or
// a CR at the end of p is not: what follows decides.
func plainByte(p []byte, at int) bool {
	switch p[at] {
	case ' ':
		return at+1 < len(p) && relaxedClass[p[at+1]] == classText
	case '\r':
		return at+1 < len(p) && p[at+1] == '\n'
	case '\n':
		return p[at-1] == '\r'
	case '\t':
		return false
	}
	return true
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
