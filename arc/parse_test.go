package arc

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/internal/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
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
		l, err := parseTagList(in)
		if err != nil {
			t.Errorf("%q: %v", in, err)
			continue
		}
		var got []string
		for _, tg := range l {
			got = append(got, tg.name+"="+tg.value)
		}
		if strings.Join(got, "|") != want {
			t.Errorf("%q: got %q, want %q", in, strings.Join(got, "|"), want)
		}
	}
	bad := []string{";", "a=1;;b=2", "a=1; ;", "novalue", "=x", "_=x", "1a=x", "a b=c", "a=1; a=2", "a=x\x00y", "a=x;y"}
	for _, in := range bad {
		if _, err := parseTagList(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	// The b= span covers the FWS around the value.
	l, _ := parseTagList("a=1; b= AbC\r\n dE= ; c=2")
	b := l.find("b")
	if s := "a=1; b= AbC\r\n dE= ; c=2"[b.start:b.end]; s != " AbC\r\n dE= " {
		t.Errorf("b span %q", s)
	}
}

func TestParseAARValue(t *testing.T) {
	for in, want := range map[string]int{"i=1; x.example; none": 1, " (c) i (c) = (c) 12 (c) ; x": 12} {
		if i, _, err := parseAARValue(in); err != nil || i != want {
			t.Errorf("%q: %d %v", in, i, err)
		}
	}
	for _, in := range []string{"x.example; i=1;", "i=1 x.example;", "i=; x", "i=a; x", "I=1; x", "i=12345; x", ""} {
		if _, _, err := parseAARValue(in); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
}

func TestRelaxHeader(t *testing.T) {
	f, err := newField([]byte("SUBJect \t:  Hello \t  world \r\n\t again  \r\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(canonHeader(nil, &f, true)); got != "subject:Hello world again\r\n" {
		t.Errorf("relaxed %q", got)
	}
	if got := string(canonHeader(nil, &f, false)); got != "SUBJect \t:  Hello \t  world \r\n\t again  \r\n" {
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
				b := newBodyHasher(bodyKey{relaxed: relaxed, limit: -1}, sha256.New())
				b.Write([]byte(tc.in[:split]))
				b.Write([]byte(tc.in[split:]))
				if got := b.finish(); hex.EncodeToString(got) != hex.EncodeToString(wantSum[:]) {
					t.Errorf("%q relaxed=%v split %d: hash differs from that of %q", tc.in, relaxed, split, want)
					break
				}
			}
		}
	}
	// l= limits what is hashed; a body shorter than l= is flagged.
	b := newBodyHasher(bodyKey{relaxed: true, limit: 3}, sha256.New())
	b.Write([]byte("abcdef\r\n"))
	if sum := sha256.Sum256([]byte("abc")); hex.EncodeToString(b.finish()) != hex.EncodeToString(sum[:]) || b.short() {
		t.Error("l=3")
	}
	b = newBodyHasher(bodyKey{relaxed: true, limit: 30}, sha256.New())
	b.Write([]byte("abc"))
	if b.finish(); !b.short() {
		t.Error("l=30 on a 5-octet body not flagged")
	}
}

func TestSplitHeader(t *testing.T) {
	fields := splitHeader([]byte(" stray continuation\nA: 1\n  folded\nno colon here\nB :2\r\n\r\nC: body\r\n"))
	if len(fields) != 2 || fields[0].raw != "A: 1\r\n  folded\r\n" || fields[1].name != "B" || fields[1].lname != "b" || fields[1].value() != "2" {
		t.Errorf("%+v", fields)
	}
}

func TestKeyRecords(t *testing.T) {
	rk := testRSAKey(t)
	rsaRec := keyRecord(t, rk)
	p := rsaRec[strings.Index(rsaRec, "p=")+2:]
	good := []string{
		rsaRec,
		"k=rsa; p=" + p,
		"v=DKIM1; h=sha1:sha256; s=email; t=y; p=" + p[:20] + " \r\n " + p[20:],
		"v=DKIM1; s=*; p=" + p + ";",
		keyRecord(t, testEdKey(3)),
	}
	for _, r := range good {
		if _, err := parseKeyRecord(r); err != nil {
			t.Errorf("%.40q: %v", r, err)
		}
	}
	bad := map[string]string{
		"k=rsa; p=":                     "revoked",
		"v=DKIM2; p=" + p:               "DKIM1",
		"k=rsa; v=DKIM1; p=" + p:        "DKIM1",
		"h=sha1; p=" + p:                "sha256",
		"s=tlsrpt; p=" + p:              "email",
		"k=dsa; p=" + p:                 "unknown key type",
		"p=!!!":                         "base64",
		"k=ed25519; p=" + p:             "32 bytes",
		"v=DKIM1; k=rsa; omgwhatsgoing": "without",
		"v=DKIM1; k=rsa; p=MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAIWmlgix/84GJ+dfgjm7LTc9EPdfkftlgiPpCq4/kbDAZmU0VvYKDljjleJ1dfvS+CGy9U/kk1tG3EeEvb82xAcCAwEAAQ==": "512 bits",
	}
	for r, want := range bad {
		if _, err := parseKeyRecord(r); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: %v, want %q", r, err, want)
		}
	}
	// Several TXT records: the first that decodes wins.
	z := dnstest.NewZone()
	z.AddRecord(resolver.Record{Name: "s._domainkey.x.example", Type: resolver.TypeTXT, TXT: []string{"v=spf1 -all"}},
		resolver.Record{Name: "s._domainkey.x.example", Type: resolver.TypeTXT, TXT: []string{rsaRec[:100], rsaRec[100:]}})
	if _, kerr := lookupKey(context.Background(), z, keyCache{}, "s", "x.example"); kerr != nil {
		t.Errorf("two records: %v", kerr)
	}
	if _, kerr := lookupKey(context.Background(), nil, keyCache{}, "s", "x.example"); kerr == nil || !kerr.temp {
		t.Errorf("no resolver: %v", kerr)
	}
}

// TestDKIMVectorsRFC8463 checks the canonicalisation and both signature
// algorithms against an independent signer: the RFC 8463 example message
// with its ed25519-sha256 and rsa-sha256 DKIM signatures, verified as if
// they were ARC-Message-Signatures (same tags, bar v= and i=).
func TestDKIMVectorsRFC8463(t *testing.T) {
	dir := findSharedTestdata(t)
	data, err := os.ReadFile(filepath.Join(dir, "dkim", "rfc6376.signed.msg"))
	if dir == "" || err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("dkim test data not found beside the repository")
		}
		t.Skip("dkim test data not found beside the repository")
	}
	rsaTXT, err := os.ReadFile(filepath.Join(dir, "dkim", "test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	z := dnstest.NewZone()
	z.AddRecord(resolver.Record{Name: "brisbane._domainkey.football.example.com", Type: resolver.TypeTXT,
		TXT: []string{"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="}})
	z.AddRecord(resolver.Record{Name: "test._domainkey.football.example.com", Type: resolver.TypeTXT,
		TXT: []string{strings.TrimSpace(string(rsaTXT))}})
	hdr, body := splitMessage(data)
	fields := splitHeader(hdr)
	n := 0
	for i := range fields {
		f := &fields[i]
		if f.lname != "dkim-signature" {
			continue
		}
		tags, err := parseTagList(f.value())
		if err != nil {
			t.Fatal(err)
		}
		sig := &Signature{field: f, tags: tags}
		bk, _ := bodyKeyOf(sig)
		bh := newBodyHasher(bk, sha256.New())
		bh.Write(body)
		vf := &verifier{ctx: context.Background(), dns: z, now: fixedNow(), fields: fields,
			bodies: map[bodyKey]*bodyHasher{bk: bh}, keys: keyCache{}}
		a, _ := tags.get("a")
		if verr := vf.verifyAMS(&Set{AMS: sig}); verr != nil {
			t.Errorf("%s: %v", a, verr)
		}
		// A changed header breaks it.
		saved := fields[len(fields)-1].raw
		fields[len(fields)-1].raw = strings.Replace(saved, "@", "@x", 1)
		vf.keys = keyCache{}
		if verr := vf.verifyAMS(&Set{AMS: sig}); verr == nil {
			t.Errorf("%s: verified after a change", a)
		}
		fields[len(fields)-1].raw = saved
		n++
	}
	if n != 2 {
		t.Fatalf("%d signatures", n)
	}
}

func TestParsePrivateKey(t *testing.T) {
	rk := testRSAKey(t)
	ek := testEdKey(5)
	pkcs8 := func(k any) []byte {
		der, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	for name, in := range map[string][]byte{
		"pkcs1":         pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rk)}),
		"pkcs8 rsa":     pkcs8(rk),
		"pkcs8 ed25519": pkcs8(ek),
		"seed":          []byte(base64.StdEncoding.EncodeToString(ek.Seed()) + "\n"),
	} {
		k, err := ParsePrivateKey(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, err := (&Signer{Domain: "a.example", Selector: "s", Key: k}).Seal([]byte(testMessage), &Chain{State: None}, "a.example; none"); err != nil {
			t.Errorf("%s: seal: %v", name, err)
		}
	}
	for _, in := range []string{"", "junk", "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"} {
		if _, err := ParsePrivateKey([]byte(in)); err == nil {
			t.Errorf("%q parsed", in)
		}
	}
	// The RFC 8463 example key: its public half is the brisbane record.
	dir := findSharedTestdata(t)
	if data, err := os.ReadFile(filepath.Join(dir, "dkim", "rfc8032_7_1.key")); dir != "" && err == nil {
		k, err := ParsePrivateKey(data)
		if err != nil {
			t.Fatal(err)
		}
		if got := base64.StdEncoding.EncodeToString(k.Public().(ed25519.PublicKey)); got != "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=" {
			t.Errorf("RFC 8463 key: public %s", got)
		}
	}
}

// TestHashSelectedPaths: the map-free scan and the indexed one select the
// same fields.
func TestHashSelectedPaths(t *testing.T) {
	fields := splitHeader([]byte("A: 1\r\nB: 1\r\nA: 2\r\nC: 1\r\nA: 3\r\nb: 2\r\n\r\n"))
	names := []string{"a", "b", "a", "x", "", "a", "a", "c", "b", "b"}
	for _, skip := range []*field{nil, &fields[4], &fields[0]} {
		small, big := sha256.New(), sha256.New()
		hashSelectedSmall(small, nil, fields, names, true, skip)
		hashSelected(big, nil, fields, indexFields(fields), names, true, skip)
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
