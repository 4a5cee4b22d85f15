package dmarc

import "testing"

// The From values simpleFromDomain takes must give what the address
// parser gives; the others must be left to it.
func TestSimpleFromAgreesWithParser(t *testing.T) {
	names := []string{"", "Alice ", "Alice Smith ", "  Bob\t", "J-P_x ", "a.b ", "\"Alice\" ", "=?utf-8?q?A?= ", "Al(c)ice ", "Ali, ce "}
	locals := []string{"alice", "a.b", "a+tag", "a_b-c", ".a", "a.", "a..b", "a\"b", "", "a b", "a=b", "ä"}
	domains := []string{"sender.example", "Sender.EXAMPLE", "x-y.example", "a..example", ".example", "example.", "", "[192.0.2.1]", "exa mple", "éxample", "ex_ample", "example.com>"}
	taken := 0
	for _, n := range names {
		for _, l := range locals {
			for _, d := range domains {
				for _, v := range []string{l + "@" + d, n + "<" + l + "@" + d + ">", " " + n + "<" + l + "@" + d + "> ", n + "<" + l + "@" + d + ">, bob@" + d, l + "@" + d + " (c)"} {
					got, ok := simpleFromDomain(v)
					if !ok {
						continue
					}
					taken++
					gotN, gotErr := normalizeDomain(got)
					want, wantErr := parsedFromDomain(v)
					if (gotErr == nil) != (wantErr == nil) || gotN != want {
						t.Errorf("%q: simple %q %v, parser %q %v", v, gotN, gotErr, want, wantErr)
					}
				}
			}
		}
	}
	if taken == 0 {
		t.Fatal("the simple path took nothing")
	}
	for _, v := range []string{"Alice <alice@sender.example>", "alice@sender.example", "<alice@sender.example>"} {
		if d, ok := simpleFromDomain(v); !ok || d != "sender.example" {
			t.Errorf("%q: %q %v", v, d, ok)
		}
	}
}
