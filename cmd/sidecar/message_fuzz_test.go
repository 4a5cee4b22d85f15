package main

import "testing"

// FuzzParseMessage: the message-file parser of "sidecar check" never
// panics and never loses the body's bytes into a header.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{
		"From: a@b\r\nSubject: x\r\n\r\nbody\r\n", "From: a\n folded\n\nbody", "no header line\n\nbody",
		"\r\n\r\n", "X:\r\n\t\r\n", "",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		m := parseMessage(raw)
		if m == nil {
			t.Fatal("nil message")
		}
		for _, h := range m.headers {
			if h.Name == "" {
				t.Fatalf("header without a name: %+v", h)
			}
		}
	})
}
