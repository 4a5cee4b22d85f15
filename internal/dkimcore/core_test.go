package dkimcore

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"math/rand/v2"
	"strings"
	"testing"
)

func TestParseTagList(t *testing.T) {
	good := map[string]string{
		"":                          "",
		"a=1":                       "a=1",
		"a=1;":                      "a=1",
		" a = 1 ; b=2 ;  ":          "a=1|b=2",
		"a=;b=x":                    "a=|b=x",
		"h=from : to\r\n\t: date":   "h=from : to\r\n\t: date",
		"v=DKIM1; p=MIGf MA0G\r\n ": "v=DKIM1|p=MIGf MA0G",
		"k_1=x=y":                   "k_1=x=y",
	}
	for in, want := range good {
		l, err := ParseTagList(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		var got []string
		for _, tg := range l {
			got = append(got, tg.Name+"="+tg.Value)
		}
		if strings.Join(got, "|") != want {
			t.Errorf("%q: got %q, want %q", in, strings.Join(got, "|"), want)
		}
	}
	bad := []string{";", "a=1;;b=2", "a=1; ;", "novalue", "=x", "_=x", "1a=x", "a b=c", "a=1; a=2", "a=x\x00y", "a=x;y"}
	for _, in := range bad {
		if _, err := ParseTagList(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	// The b= span covers the FWS around the value.
	l, _ := ParseTagList("a=1; b= AbC\r\n dE= ; c=2")
	b := l.Find("b")
	if s := "a=1; b= AbC\r\n dE= ; c=2"[b.Start:b.End]; s != " AbC\r\n dE= " {
		t.Errorf("b span %q", s)
	}
}

func TestRelaxHeader(t *testing.T) {
	f, err := NewField([]byte("SUBJect \t:  Hello \t  world \r\n\t again  \r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(CanonHeader(nil, &f, true)); got != "subject:Hello world again\r\n" {
		t.Errorf("relaxed %q", got)
	}
	if got := string(CanonHeader(nil, &f, false)); got != "SUBJect \t:  Hello \t  world \r\n\t again  \r\n" {
		t.Errorf("simple %q", got)
	}
}

// TestBodyCanon checks both body canonicalisations against expected
// output, writing the input in every split to exercise the state held
// across chunks.
func TestBodyCanon(t *testing.T) {
	cases := []struct{ in, relaxed, simple string }{
		{"", "", "\r\n"},
		{"\r\n\r\n", "", "\r\n"},
		{"a", "a\r\n", "a\r\n"},
		{"a\r\n", "a\r\n", "a\r\n"},
		{" a  b \t\r\n\r\n \r\n", " a b\r\n", " a  b \t\r\n\r\n \r\n"},
		{"x \r\n\r\ny\r\n\r\n\r\n", "x\r\n\r\ny\r\n", "x \r\n\r\ny\r\n"},
		{"bare\nlf\n\n", "bare\r\nlf\r\n", "bare\r\nlf\r\n"},
		{"cr\ronly\r", "cr\ronly\r\r\n", "cr\ronly\r\r\n"},
		{"tab\t\tend\t", "tab end\r\n", "tab\t\tend\t\r\n"},
	}
	for _, tc := range cases {
		for _, relaxed := range []bool{true, false} {
			want := tc.simple
			if relaxed {
				want = tc.relaxed
			}
			wantSum := sha256.Sum256([]byte(want))
			for split := 0; split <= len(tc.in); split++ {
				b := NewBodyHasher(BodyKey{Relaxed: relaxed, Limit: -1})
				b.Write([]byte(tc.in[:split]))
				b.Write([]byte(tc.in[split:]))
				if got := b.Finish(); hex.EncodeToString(got) != hex.EncodeToString(wantSum[:]) {
					t.Errorf("%q relaxed=%v split %d: hash differs from that of %q", tc.in, relaxed, split, want)
					break
				}
			}
		}
	}
	// l= limits what is hashed; a body shorter than l= is flagged.
	b := NewBodyHasher(BodyKey{Relaxed: true, Limit: 3})
	b.Write([]byte("abcdef\r\n"))
	if sum := sha256.Sum256([]byte("abc")); hex.EncodeToString(b.Finish()) != hex.EncodeToString(sum[:]) || b.Short() {
		t.Error("l=3")
	}
	b = NewBodyHasher(BodyKey{Relaxed: true, Limit: 30})
	b.Write([]byte("abc"))
	if b.Finish(); !b.Short() {
		t.Error("l=30 on a 5-octet body not flagged")
	}
}

func TestSplitHeader(t *testing.T) {
	fields := SplitHeader([]byte(" stray continuation\nA: 1\n  folded\nno colon here\nB :2\r\n\r\nC: body\r\n"), Strict)
	if len(fields) != 2 || fields[0].Raw != "A: 1\r\n  folded\r\n" || fields[1].Name != "B" || fields[1].LName != "b" || fields[1].Value() != "2" {
		t.Errorf("%+v", fields)
	}
}

// TestHashSelectedPaths: the map-free scan and the indexed one select the
// same fields.
func TestHashSelectedPaths(t *testing.T) {
	fields := SplitHeader([]byte("A: 1\r\nB: 1\r\nA: 2\r\nC: 1\r\nA: 3\r\nb: 2\r\n\r\n"), Strict)
	names := []string{"a", "b", "a", "x", "", "a", "a", "c", "b", "b"}
	for _, skip := range []*Field{nil, &fields[4], &fields[0]} {
		small, big := sha256.New(), sha256.New()
		hashSelectedSmall(small, nil, fields, names, true, skip)
		HashSelected(big, nil, fields, IndexFields(fields), names, true, skip)
		if hex.EncodeToString(small.Sum(nil)) != hex.EncodeToString(big.Sum(nil)) {
			t.Errorf("skip %v: the two selections differ", skip)
		}
	}
	// And the order is bottom-up: a, b, a -> "A: 3", "b: 2", "A: 2".
	h, want := sha256.New(), sha256.New()
	hashSelectedSmall(h, nil, fields, []string{"a", "b", "a"}, true, nil)
	want.Write([]byte("a:3\r\nb:2\r\na:2\r\n"))
	if hex.EncodeToString(h.Sum(nil)) != hex.EncodeToString(want.Sum(nil)) {
		t.Error("selection order")
	}
}

// Relaxed body canonicalisation against the reference on plain lines
// with a tab, a bare CR, two spaces or a final space at every offset of
// lines of every length up to 40, in one write.
func TestRelaxedPlainLines(t *testing.T) {
	for n := 0; n <= 40; n++ {
		base := []byte(strings.Repeat("ab c", 10)[:n])
		for at := 0; at <= n; at++ {
			for _, ins := range []string{"\t", "\r", "  ", " ", "x"} {
				line := append(append(append([]byte(nil), base[:at]...), ins...), base[at:]...)
				body := append(append(append([]byte(nil), line...), "\r\n"...), line...)
				body = append(body, '\n')
				h := NewBodyHasher(BodyKey{Relaxed: true, Limit: -1})
				h.Write(body)
				want := sha256.Sum256(referenceCanon(body, true))
				if !bytes.Equal(h.Finish(), want[:]) {
					t.Fatalf("%q: hash differs from the reference %q", body, referenceCanon(body, true))
				}
			}
		}
	}
}

// TestRelaxedRunsAgainstReference: bodies of long lines drawn from text,
// SP, HTAB, CR, LF and a C0 control, weighted so that the eight-byte scan
// of relaxedRun meets every byte at every lane, give the reference hash
// written whole and in chunks of every size up to 17.
func TestRelaxedRunsAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabets := []string{
		"abcdefgh abcdefgh\r\n",           // prose: no anomaly but line ends
		"abc  \t\r\n\r\n\x00\x0c\x7f\xe9", // every class
		"a \r\n",                          // spaces next to line ends
		"ab\r\r\n\n",                      // bare CR, bare LF
	}
	for _, alpha := range alphabets {
		for n := range 300 {
			body := randomBytes(rng, n, alpha, alpha, 1)
			want := sha256.Sum256(referenceCanon(body, true))
			for chunk := 0; chunk <= 17; chunk++ {
				h := NewBodyHasher(BodyKey{Relaxed: true, Limit: -1})
				for rest := body; len(rest) > 0; {
					k := len(rest)
					if chunk > 0 {
						k = min(chunk, k)
					}
					h.Write(rest[:k])
					rest = rest[k:]
				}
				if !bytes.Equal(h.Finish(), want[:]) {
					t.Fatalf("%q in chunks of %d: hash differs from the reference %q", body, chunk, referenceCanon(body, true))
				}
			}
		}
	}
}

// TestRelaxedRun checks where runs end.
func TestRelaxedRun(t *testing.T) {
	tests := []struct {
		in   string
		want int
	}{
		{"abcdefghijklmnop", 16},
		{"abc def ghi jkl mno", 19},
		{"abcdefg\r\nhijklmn\r\n", 16},          // the final line end is held back
		{"abcdefg\r\n\r\n\r\nhijklmn", 20},      // empty lines between text are kept
		{"abcdefgh  ijkl", 8},                   // two spaces
		{"abcdefghijklmno ", 15},                // a space at the end of the chunk
		{"abcdefghijklmno \r\nx", 15},           // a space before the line end
		{"abcdefghijklmnop\tq", 16},             // a tab
		{"abcdefg\r\nhijklmnopq\rr", 19},        // a bare CR
		{"abcdefg\r\nhijklmno\nq", 17},          // a bare LF
		{"abcdefg\r\n hijklmn opq\r\n  r", 21},  // a line that starts with one space, then two
		{"abcdefg\r", 7},                        // a CR at the end: its LF may follow
		{"abcdefg\x00\x01\x0c\x1f\x7f\xff", 13}, // controls and high bytes are text
		{"abcdefgh\r\nijklmnop", 18},            // a CRLF across two words
	}
	for _, tt := range tests {
		if got := relaxedRun([]byte(tt.in), 0); got != tt.want {
			t.Errorf("relaxedRun(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}

// BenchmarkRelaxedBody10KB is the relaxed body hash of 10 KB of prose
// lines (SHA-256 included) in one write, as the milter hands it over.
func BenchmarkRelaxedBody10KB(b *testing.B) {
	body := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog, again and again and again.\r\n"), 140)
	b.SetBytes(int64(len(body)))
	h := NewBodyHasher(BodyKey{Relaxed: true, Limit: -1})
	for b.Loop() {
		h.reset(h.key)
		h.Write(body)
		h.Finish()
	}
}

// BenchmarkSHA256Body10KB is the floor of BenchmarkRelaxedBody10KB: the
// hash of the same bytes.
func BenchmarkSHA256Body10KB(b *testing.B) {
	body := bytes.Repeat([]byte("The quick brown fox jumps over the lazy dog, again and again and again.\r\n"), 140)
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		sha256.Sum256(body)
	}
}

// The eight-byte scans of tag values and of base64 values find every
// byte that matters at every lane: against byte-wise references.
func TestWordScansAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const alpha = "AZaz09+/=\x00\x1f \t\r\n\x7f;\xc3"
	for n := range 40 {
		for range 200 {
			b := randomBytes(rng, n, "ABCDEFGHabcdefgh0123+/", alpha, 8)
			s := string(b)
			wantValid := true
			var stripped []byte
			for _, c := range b {
				if !IsFWS(c) && (c < 0x21 || c == 0x7f || c == ';') {
					wantValid = false
				}
				if !IsFWS(c) {
					stripped = append(stripped, c)
				}
			}
			if got := validTagValue(s); got != wantValid {
				t.Fatalf("validTagValue(%q) = %v", s, got)
			}
			want, wantErr := base64.StdEncoding.DecodeString(string(stripped))
			got, err := DecodeBase64To([]byte("x"), s)
			if (err != nil) != (wantErr != nil) || err == nil && !bytes.Equal(got, append([]byte("x"), want...)) {
				t.Fatalf("DecodeBase64To(%q) = %q, %v; want %q, %v", s, got, err, want, wantErr)
			}
		}
	}
}

// LowerName lowers field names in ASCII, whatever the spelling, common or
// not.
func TestLowerName(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"From", "from"}, {"from", "from"}, {"FROM", "from"},
		{"Message-ID", "message-id"}, {"Message-Id", "message-id"}, {"MESSAGE-ID", "message-id"},
		{"DKIM-Signature", "dkim-signature"}, {"Dkim-Signature", "dkim-signature"},
		{"ARC-Seal", "arc-seal"}, {"Received-SPF", "received-spf"}, {"CC", "cc"}, {"Cc", "cc"},
		{"X-Custom-Header", "x-custom-header"}, {"x-custom", "x-custom"}, {"Ünicode-X", "Ünicode-x"},
	} {
		if got := LowerName(tt.in); got != tt.want {
			t.Errorf("LowerName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// RelaxHeader against RFC 6376 §3.4.2 written the obvious way, on values
// long enough for the eight-byte skip to meet every byte at every lane.
func TestRelaxHeaderAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const alpha = "abcdefgh0123+/=;  \t\t\r\n\r\n\x00\x7f\xc3"
	for n := range 60 {
		for range 100 {
			v := string(randomBytes(rng, n, alpha, alpha, 1))
			// The reference: unfold CRLF, WSP runs to one SP, trim the ends.
			ref := strings.ReplaceAll(v, "\r\n", "")
			ref = strings.ReplaceAll(ref, "\t", " ")
			for strings.Contains(ref, "  ") {
				ref = strings.ReplaceAll(ref, "  ", " ")
			}
			want := "x:" + strings.Trim(ref, " ") + "\r\n"
			if got := string(RelaxHeader(nil, "x", v)); got != want {
				t.Fatalf("RelaxHeader(%q) = %q, want %q", v, got, want)
			}
		}
	}
}

// randomBytes returns n bytes drawn from common, each replaced by one
// drawn from rare with probability 1/every.
func randomBytes(rng *rand.Rand, n int, common, rare string, every int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = common[rng.IntN(len(common))]
		if rng.IntN(every) == 0 {
			b[i] = rare[rng.IntN(len(rare))]
		}
	}
	return b
}
