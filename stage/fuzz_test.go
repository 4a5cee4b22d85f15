package stage

import (
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/ascii"
)

// FuzzAddedHeader: whatever an ACL's add_header expands to, the fields sent
// to the MTA have valid names and values without NUL or bare line breaks
// that would start a new header.
func FuzzAddedHeader(f *testing.F) {
	for _, s := range []string{"X-A: b", "X-A: b\nX-B: c", "X-A: b\n c", "no name", " lead\nX: y", "X\x00: y\r\n\r\n", ":x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		for _, h := range splitAddedHeader(text) {
			if !ascii.FieldName(h.Name) {
				t.Errorf("bad field name %q", h.Name)
			}
			if strings.ContainsRune(h.Value, 0) {
				t.Errorf("NUL in %q", h.Value)
			}
			for i, line := range strings.Split(h.Value, "\r\n") {
				if strings.ContainsAny(line, "\r\n") {
					t.Errorf("bare line break in %q", h.Value)
				}
				if i > 0 && (line == "" || (line[0] != ' ' && line[0] != '\t')) {
					t.Errorf("continuation line %q of %q does not start with white space", line, h.Value)
				}
			}
		}
	})
}
