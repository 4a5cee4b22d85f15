package authres

import (
	"strings"
	"unsafe"
)

// HeaderName is the field name of RFC 8601.
const HeaderName = "Authentication-Results"

// FoldWidth is the column at which Format folds (RFC 5322 §2.1.1
// recommends 78).
const FoldWidth = 78

// Format returns the value of an Authentication-Results field carrying
// every result, as written after "Authentication-Results:" (it starts
// with a space), or "none" when there are no results (RFC 8601 §2.2).
// A field longer than FoldWidth columns is folded with CRLF and a tab:
// each result starts a line, and a result too long for one line is
// folded between its items. Results whose method or result is not a
// token are left out. The milter writes this value and "sidecar check"
// prints it.
func Format(authservID string, results []Result) string {
	var infos [][]string
	for _, r := range results {
		if items, ok := r.items(); ok {
			infos = append(infos, items)
		}
	}
	if len(infos) == 0 {
		infos = [][]string{{"none"}}
	}
	id := Value(authservID)
	start := len(HeaderName) + 1 + 1 + len(id) + 1 // "Authentication-Results: id;"
	oneLine := start
	for _, items := range infos {
		for _, it := range items {
			oneLine += 1 + len(it)
		}
		oneLine++ // ";"
	}
	var b strings.Builder
	b.WriteString(" " + id + ";")
	col := start
	for i, items := range infos {
		if oneLine-1 <= FoldWidth {
			b.WriteByte(' ')
			col++
		} else {
			b.WriteString("\r\n\t")
			col = 8
		}
		for j, it := range items {
			if j > 0 {
				if col+1+len(it) > FoldWidth {
					b.WriteString("\r\n\t")
					col = 8
				} else {
					b.WriteByte(' ')
					col++
				}
			}
			b.WriteString(it)
			col += len(it)
		}
		if i < len(infos)-1 {
			b.WriteByte(';')
			col++
		}
	}
	return b.String()
}

// Line returns "authserv-id; result; result…" on one line, the payload
// of an ARC-Authentication-Results field (RFC 8617 §4.1.1) and the value
// behind $dmarc_ar_header; "authserv-id; none" without results.
func Line(authservID string, results []Result) string {
	return bufString(appendLine(make([]byte, 0, 64+len(authservID)+64*len(results)), authservID, results))
}

// Field is HeaderName, ": " and Line: the whole field on one line,
// without its final CRLF.
func Field(authservID string, results []Result) string {
	b := make([]byte, 0, len(HeaderName)+2+64+len(authservID)+64*len(results))
	return bufString(appendLine(append(b, HeaderName+": "...), authservID, results))
}

// appendLine appends Line's text.
func appendLine(b []byte, authservID string, results []Result) []byte {
	if Token(authservID) {
		b = append(b, authservID...)
	} else {
		b = appendWrap(b, '"', '"', authservID)
	}
	n := len(b)
	for _, r := range results {
		m := len(b)
		if b2, ok := r.appendTo(append(b, "; "...)); ok {
			b = b2
		} else {
			b = b[:m]
		}
	}
	if len(b) == n {
		b = append(b, "; none"...)
	}
	return b
}

// bufString returns the text of a buffer that is no longer written to,
// without copying it (as strings.Builder does).
func bufString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
