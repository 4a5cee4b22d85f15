package aggregate

import (
	"strings"
	"testing"
)

func TestParseDestination(t *testing.T) {
	for _, tc := range []struct {
		uri, addr, domain string
		max               int64
		err               string
	}{
		{"mailto:dmarc@example.com", "dmarc@example.com", "example.com", 0, ""},
		{"MAILTO:dmarc@Example.COM!10m", "dmarc@Example.COM", "example.com", 10 << 20, ""},
		{"mailto:dmarc@example.com!500", "dmarc@example.com", "example.com", 500, ""},
		{"mailto:dmarc%21x@example.com!2k", "dmarc!x@example.com", "example.com", 2048, ""},
		{"mailto:dmarc@example.com?subject=x", "dmarc@example.com", "example.com", 0, ""},
		{"https://example.com/dmarc", "", "", 0, "only mailto:"},
		{"mailto:dmarc@example.com!10x", "", "", 0, "size limit"},
		{"mailto:dmarc@example.com!", "", "", 0, "size limit"},
		{"mailto:dmarc@example.com!-5", "", "", 0, "size limit"},
		{"mailto:no-at-sign", "", "", 0, "not a mail address"},
		{"mailto:a@[192.0.2.1]", "", "", 0, "not a domain name"},
		{"mailto:%zz@example.com", "", "", 0, "invalid URL escape"},
	} {
		t.Run(tc.uri, func(t *testing.T) {
			d, err := ParseDestination(tc.uri)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || d.Address != tc.addr || d.Domain != tc.domain || d.MaxSize != tc.max {
				t.Fatalf("%+v %v", d, err)
			}
		})
	}
}

func FuzzParseDestination(f *testing.F) {
	for _, s := range []string{"mailto:dmarc@example.com!10m", "mailto:a%40b@c!1t", "mailto:@", "mailto:a@b?x!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, uri string) {
		d, err := ParseDestination(uri)
		if err != nil {
			return
		}
		if d.Domain == "" || !strings.Contains(d.Address, "@") || d.MaxSize < 0 {
			t.Fatalf("%q: %+v", uri, d)
		}
	})
}
