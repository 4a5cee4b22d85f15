package arc

import (
	"bytes"
	"context"
	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
)

// FuzzParseARCHeaders feeds arbitrary header blocks (and whole messages)
// to the ARC header-set parser, the tag-list and key-record parsers and
// the validator. The seeds include a real two-set chain whose keys the
// fuzz zone serves, so mutations reach the verification code too.
// Crashers found are kept as named regression tests in
// TestFuzzRegressions.
func FuzzParseARCHeaders(f *testing.F) {
	s1 := &Signer{Domain: "a.example", Selector: "s", Key: testEdKey(11), Now: fixedNow}
	s2 := &Signer{Domain: "b.example", Selector: "t", Key: testEdKey(12), Now: fixedNow}
	zone := publish(f, dnstest.NewZone(), s1, s2)
	v := &Validator{DNS: zone, Now: fixedNow}
	chain := sealAll(f, v, []byte(testMessage), s1, s2)
	f.Add(chain)
	f.Add([]byte(testMessage))
	f.Add([]byte("ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n" +
		"ARC-Message-Signature: i=1; a=rsa-sha256; c=relaxed/relaxed; d=x.example; s=s; h=from : to; bh=AAAA; b=AAAA\r\n" +
		"ARC-Authentication-Results: i=1; x.example; spf=pass\r\n\r\nbody\r\n"))
	f.Add([]byte("ARC-Authentication-Results: (c) i (c) = 2 ; x\nARC-Seal: i=2;; cv=pass\n"))
	f.Add([]byte("v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="))
	f.Add([]byte("a=1; b = x y ; c=\r\n\t2;"))
	f.Fuzz(func(t *testing.T, data []byte) {
		checkHeaderSet(t, data)
		checkTagList(t, string(data))
		parseKeyRecord(string(data))
		parseAARValue(string(data))
		c, err := v.Validate(context.Background(), bytes.NewReader(data))
		if err != nil || !c.State.Valid() {
			t.Fatalf("Validate: %v, %+v", err, c)
		}
		if c.State == Pass && (c.OldestPass < 1 || c.OldestPass > len(c.Instances)) {
			t.Fatalf("pass with oldest-pass %d of %d", c.OldestPass, len(c.Instances))
		}
	})
}

// checkHeaderSet parses data and checks the invariants of a valid set.
func checkHeaderSet(t *testing.T, data []byte) {
	hs, err := ParseHeaderSet(data)
	if hs == nil {
		t.Fatal("nil HeaderSet")
	}
	if len(hs.Sets) > MaxInstances {
		t.Fatalf("%d sets", len(hs.Sets))
	}
	if err != nil {
		return
	}
	for k, s := range hs.Sets {
		if s.Instance != k+1 || s.aar == nil || s.AMS == nil || s.Seal == nil || s.Seal.CV == "" ||
			s.AMS.Instance != k+1 || s.Seal.Instance != k+1 {
			t.Fatalf("set %d: %+v", k+1, s)
		}
		if (k == 0) != (s.Seal.CV == None) || s.Seal.CV == Fail {
			t.Fatalf("set %d: cv %s", k+1, s.Seal.CV)
		}
	}
}

// checkTagList parses s and checks that each tag's span holds its value.
func checkTagList(t *testing.T, s string) {
	l, err := dkimcore.ParseTagList(s)
	if err != nil {
		return
	}
	seen := map[string]bool{}
	for _, tg := range l {
		if !dkimcore.ValidTagName(tg.Name) || seen[tg.Name] {
			t.Fatalf("tag name %q", tg.Name)
		}
		seen[tg.Name] = true
		if tg.Start < 0 || tg.End > len(s) || tg.Start > tg.End || dkimcore.TrimFWS(s[tg.Start:tg.End]) != tg.Value {
			t.Fatalf("tag %q: span %d-%d does not hold %q", tg.Name, tg.Start, tg.End, tg.Value)
		}
		if strings.ContainsRune(tg.Value, ';') {
			t.Fatalf("tag %q value holds ';'", tg.Name)
		}
	}
}

// TestFuzzRegressions replays inputs that broke, or nearly broke, a
// parser during development, named after what they exercise. The fuzz
// runs found no crasher; any future one is added here.
func TestFuzzRegressions(t *testing.T) {
	cases := map[string]string{
		// A line holding only CR: once indexed content[0] of an empty line.
		"lone_cr_line": "A: 1\r\r\nB: 2\r\n\r\nbody",
		// A continuation line before any field.
		"leading_continuation": " x\r\nARC-Seal: i=1\r\n\r\n",
		// An h= repeating a name far beyond the fields present.
		"long_h_list": "ARC-Seal: i=1; a=rsa-sha256; cv=none; d=x.example; s=s; b=AAAA\r\n" +
			"ARC-Message-Signature: i=1; a=rsa-sha256; d=x.example; s=s; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=; b=AAAA; h=" +
			strings.Repeat("from:", 5000) + "\r\nARC-Authentication-Results: i=1; x.example; none\r\nFrom: a\r\n\r\n",
		// An unterminated comment in the AAR instance.
		"aar_open_comment": "ARC-Authentication-Results: (i=1; x\r\n\r\n",
		// A quoted-pair at the very end of a comment.
		"aar_trailing_backslash": "ARC-Authentication-Results: (\\",
		// Tag values with the span at the end of the input.
		"tag_at_end": "ARC-Seal: i=1; b=",
		// Instance numbers with many digits.
		"huge_instance": "ARC-Seal: i=99999999999999999999; cv=none\r\n\r\n",
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			checkHeaderSet(t, []byte(in))
			checkTagList(t, in)
			v := &Validator{DNS: dnstest.NewZone()}
			if c, err := v.Validate(context.Background(), strings.NewReader(in)); err != nil || !c.State.Valid() {
				t.Fatalf("%v %+v", err, c)
			}
		})
	}
}
