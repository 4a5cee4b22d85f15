package dkimcore

import (
	"bytes"
	"crypto/sha256"
	"strings"
	"testing"
)

// FuzzParseTagList: no panic; each tag's span holds its value, names are
// valid and distinct, values hold no ";".
func FuzzParseTagList(f *testing.F) {
	for _, s := range []string{"", "a=1", " a = 1 ; b=2 ;  ", "h=from : to\r\n\t: date", "a=1;;b=2", "b= AbC\r\n dE= ; c=2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := ParseTagList(s)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, tg := range l {
			if !ValidTagName(tg.Name) || seen[tg.Name] {
				t.Fatalf("tag name %q", tg.Name)
			}
			seen[tg.Name] = true
			if tg.Start < 0 || tg.End > len(s) || tg.Start > tg.End || TrimFWS(s[tg.Start:tg.End]) != tg.Value {
				t.Fatalf("tag %q: span %d-%d does not hold %q", tg.Name, tg.Start, tg.End, tg.Value)
			}
			if strings.ContainsRune(tg.Value, ';') {
				t.Fatalf("tag %q value holds ';'", tg.Name)
			}
		}
	})
}

// FuzzParseKeyRecord: no panic; a key comes with no error and the right
// type, an error is a *KeyError with a problem.
func FuzzParseKeyRecord(f *testing.F) {
	f.Add("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	f.Add("v=DKIM1; k=rsa; t=y:s; h=sha256; s=email; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAIWmlgix/84GJ+dfgjm7LTc9EPdfkftlgiPpCq4/kbDAZmU0VvYKDljjleJ1dfvS+CGy9U/kk1tG3EeEvb82xAcCAwEAAQ==")
	f.Add("k=rsa; p=")
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKeyRecord(s)
		if err != nil {
			if ke, ok := err.(*KeyError); !ok || ke.Problem == 0 || k != nil {
				t.Fatalf("error %T %v with key %v", err, err, k)
			}
			return
		}
		if k.Type == KeyRSA && k.RSA == nil || k.Type == KeyEd25519 && len(k.Ed) != 32 || k.Type != KeyRSA && k.Type != KeyEd25519 {
			t.Fatalf("key %+v", k)
		}
	})
}

// FuzzSplitHeader: no panic, in both modes; every field has a colon
// where Colon says, a final CRLF and a non-empty name.
func FuzzSplitHeader(f *testing.F) {
	f.Add([]byte(" stray continuation\nA: 1\n  folded\nno colon here\nB :2\r\n\r\nC: body\r\n"))
	f.Add([]byte("A: 1\r\r\nB: 2\r\n\r\nbody"))
	f.Fuzz(func(t *testing.T, hdr []byte) {
		for _, mode := range []SplitMode{Strict, Lenient} {
			for _, fl := range SplitHeader(hdr, mode) {
				if fl.Name == "" || fl.Raw[fl.Colon] != ':' || !strings.HasSuffix(fl.Raw, "\r\n") || LowerName(fl.Name) != fl.LName {
					t.Fatalf("mode %d: field %+v", mode, fl)
				}
				_ = RelaxHeader(nil, fl.LName, fl.Value())
			}
		}
	})
}

// FuzzBodyHasher: the hash does not depend on how the body is split, and
// equals the hash of a byte-by-byte reference canonicalisation.
func FuzzBodyHasher(f *testing.F) {
	f.Add([]byte(" a  b \t\r\n\r\n \r\n"), uint8(3), true, int16(-1))
	f.Add([]byte("cr\ronly\r\n\n\r"), uint8(1), false, int16(4))
	f.Fuzz(func(t *testing.T, body []byte, chunk uint8, relaxed bool, limit int16) {
		key := BodyKey{Relaxed: relaxed, Limit: int64(limit)}
		if limit < 0 {
			key.Limit = -1
		}
		whole := NewBodyHasher(key)
		whole.Write(body)
		parts := NewBodyHasher(key)
		n := int(chunk) + 1
		for rest := body; len(rest) > 0; rest = rest[min(n, len(rest)):] {
			parts.Write(rest[:min(n, len(rest))])
		}
		want := referenceCanon(body, relaxed)
		if key.Limit >= 0 && int64(len(want)) > key.Limit {
			want = want[:key.Limit]
		}
		sum := sha256.Sum256(want)
		if !bytes.Equal(whole.Finish(), parts.Finish()) || !bytes.Equal(whole.Finish(), sum[:]) {
			t.Fatalf("%q relaxed=%v l=%d: hashes differ (reference %q)", body, relaxed, limit, want)
		}
	})
}

// referenceCanon is RFC 6376 §3.4.3/§3.4.4 written the obvious way, on
// the whole body: lines end at LF (with or without CR before it).
func referenceCanon(body []byte, relaxed bool) []byte {
	s := strings.ReplaceAll(string(body), "\r\n", "\n")
	lines := strings.Split(s, "\n")
	if relaxed {
		for i, l := range lines {
			l = strings.TrimRight(l, " \t")
			for strings.Contains(l, "  ") || strings.Contains(l, "\t") {
				l = strings.ReplaceAll(strings.ReplaceAll(l, "\t", " "), "  ", " ")
			}
			lines[i] = l
		}
	}
	for len(lines) > 0 && lines[len(lines)-1] == "" {
		lines = lines[:len(lines)-1]
	}
	if len(lines) == 0 {
		if relaxed {
			return nil
		}
		return []byte("\r\n")
	}
	return []byte(strings.Join(lines, "\r\n") + "\r\n")
}
