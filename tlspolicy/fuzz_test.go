package tlspolicy

import (
	"bufio"
	"context"
	"strings"
	"testing"
)

func FuzzNetstring(f *testing.F) {
	for _, s := range []string{"23:policy dane.example.com,", "0:,", "5:abc,", "99999999:", ":", "3:abc", "00:,", "1:x,2:yz,"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := readNetstring(bufio.NewReader(strings.NewReader(string(data))), MaxRequest)
		if err != nil {
			return
		}
		if len(s) > MaxRequest {
			t.Fatalf("accepted %d octets", len(s))
		}
		if enc := string(appendNetstring(nil, s)); !strings.HasPrefix(string(data), enc) {
			t.Fatalf("round trip: %q is not a prefix of %q", enc, data)
		}
	})
}

func FuzzTCPTable(f *testing.F) {
	for _, s := range []string{"get example.com", "get %5Bmx.example.com%5D%3A587", "get %", "get %zz", "get a%2", "put a b", "get "} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if dec := mustDecode(t, encodeTCPTable(line)); dec != line {
			t.Fatalf("decode(encode(%q)) = %q", line, dec)
		}
		enc := encodeTCPTable(line)
		if strings.ContainsAny(enc, " \t\r\n") {
			t.Fatalf("encoding %q has white space", enc)
		}
		if dec, err := decodeTCPTable(line); err == nil {
			if again := mustDecode(t, encodeTCPTable(dec)); again != dec {
				t.Fatalf("round trip of decoded %q gave %q", dec, again)
			}
		}
		s := NewServer(nil)
		reply, closeAfter := s.lineRequest(context.Background(), fuzzEnv, "fuzz", line)
		checkLineReply(t, line, reply)
		if strings.HasPrefix(line, "get ") {
			if closeAfter {
				t.Fatalf("tcp_table request %q closes the connection", line)
			}
			if !strings.HasPrefix(reply, "200 ") && !strings.HasPrefix(reply, "500 ") && !strings.HasPrefix(reply, "400 ") {
				t.Fatalf("tcp_table reply %q", reply)
			}
			if strings.ContainsAny(strings.TrimSuffix(reply[4:], "\n"), " \t\r") {
				t.Fatalf("tcp_table reply %q is not encoded", reply)
			}
		}
	})
}

func FuzzLineProtocol(f *testing.F) {
	for _, s := range []string{"dane example.com", "dane [mx.example.com]:587", "ocsp mx.example.com", "policy dane.example.com",
		"dane ", "ocsp [", "dane .example.com", "dane \x00\xff", "policy mixed.example.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		if strings.ContainsAny(line, "\n") {
			return // the framing splits lines first
		}
		s := NewServer(nil)
		reply, _ := s.lineRequest(context.Background(), fuzzEnv, "fuzz", line)
		checkLineReply(t, line, reply)
		if verb, _, _ := strings.Cut(line, " "); verb == "dane" {
			tok, _, _ := strings.Cut(reply, " ")
			switch tok {
			case "require", "try", "none", "defer":
			default:
				t.Fatalf("dane reply %q", reply)
			}
		}
		m := s.socketmap(context.Background(), fuzzEnv, "fuzz", line)
		if !strings.HasPrefix(m, "OK ") && !strings.HasPrefix(m, "NOTFOUND ") && !strings.HasPrefix(m, "TEMP ") && !strings.HasPrefix(m, "PERM ") {
			t.Fatalf("socketmap reply %q", m)
		}
	})
}

var fuzzEnv = TestEnv(testZone(), nil)

func mustDecode(t *testing.T, s string) string {
	t.Helper()
	d, err := decodeTCPTable(s)
	if err != nil {
		t.Fatalf("decode %q: %v", s, err)
	}
	return d
}

func checkLineReply(t *testing.T, req, reply string) {
	t.Helper()
	if !strings.HasSuffix(reply, "\n") || strings.Count(reply, "\n") != 1 || strings.ContainsAny(reply, "\r\x00") {
		t.Fatalf("request %q: reply %q is not one line", req, reply)
	}
}

// FuzzParseNextHop: a next hop that parses has a canonical form (the
// decision cache's key) that parses to the same next hop, every label of
// its name 1 to 63 octets of [a-z0-9_-].
func FuzzParseNextHop(f *testing.F) {
	for _, s := range []string{"example.com", "Example.COM.", "[mx.example.com]:587", "example.com:2525", "[192.0.2.1]", "[IPv6:2001:db8::1]:25",
		"a..b", "-.x", strings.Repeat("a", 64) + ".com", "[x", "[x]y", "x:0", "x:+1", " x ", "_25._tcp.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseNextHop(s)
		if err != nil {
			return
		}
		k := h.String()
		h2, err := ParseNextHop(k)
		if err != nil || h2 != h || h2.String() != k {
			t.Fatalf("%q parsed as %+v, key %q, which parses as %+v (%v)", s, h, k, h2, err)
		}
		if h.IP.IsValid() {
			return
		}
		for _, label := range strings.Split(h.Name, ".") {
			if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyz0123456789_-") != "" {
				t.Fatalf("%q: name %q has label %q", s, h.Name, label)
			}
		}
	})
}
