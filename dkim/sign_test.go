package dkim

import (
	"crypto"
	"io"
	"math/rand/v2"
	"strings"
	"sync/atomic"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
)

// splitFields splits a CRLF message into header fields and body.
func splitSignFields(msg string) ([]HeaderField, string) {
	head, body, _ := strings.Cut(msg, "\r\n\r\n")
	var fs []HeaderField
	for _, line := range strings.Split(head, "\r\n") {
		if (line[0] == ' ' || line[0] == '\t') && len(fs) > 0 {
			fs[len(fs)-1].Value += "\r\n" + line
			continue
		}
		name, value, _ := strings.Cut(line, ":")
		fs = append(fs, HeaderField{name, value})
	}
	return fs, body
}

// streamSign signs msg through a SignStream, the body in chunks of n.
func streamSign(t *testing.T, o SignOptions, msg string, n int) string {
	t.Helper()
	fs, body := splitSignFields(msg)
	st, err := NewSignStream(o, fs)
	if err != nil {
		t.Fatal(err)
	}
	for b := body; len(b) > 0; {
		k := min(n, len(b))
		if _, err := st.Write([]byte(b[:k])); err != nil {
			t.Fatal(err)
		}
		b = b[k:]
	}
	field, err := st.Finish()
	if err != nil {
		t.Fatal(err)
	}
	return field + "\r\n" + msg
}

// TestSignStreamVerifies: messages of the differential generator, signed
// through the stream with both key types and every canonicalization,
// verify with our verifier and go-msgauth's; tampered copies fail both.
func TestSignStreamVerifies(t *testing.T) {
	rk, ek := testKeys(t)
	z := dnstest.NewZone()
	addTXT(z, "rsa._domainkey.example.com", keyRecord(t, rk, ""))
	addTXT(z, "ed._domainkey.example.com", keyRecord(t, ek, ""))
	g := messageGen{rand.New(rand.NewPCG(7, 2026))}
	signed := 0
	for i := 0; i < 120; i++ {
		msg := g.message()
		if !strings.Contains(msg, "\r\n\r\n") {
			msg += "\r\n\r\n"
		}
		if fs, _ := splitSignFields(msg); !hasField(fs, "From") {
			msg = "From: someone@example.com\r\n" + msg
		}
		o := SignOptions{Domain: "example.com", Selector: "rsa", Key: rk, HeaderCanon: g.canon(), BodyCanon: g.canon()}
		if i%2 == 1 {
			o.Selector, o.Key = "ed", ek
		}
		out := streamSign(t, o, msg, 1+g.r.IntN(40))
		ours := verify(t, &Verifier{DNS: z}, out)
		theirs := oracle(t, z, out)
		if len(ours) != 1 || ours[0].Status != Pass || len(theirs) != 1 || theirs[0].Status != Pass {
			t.Fatalf("message %d (%s): ours %+v, go-msgauth %+v\n%q", i, o.Selector, ours, theirs, out)
		}
		signed++
		for what, m := range g.tamper(out) {
			if r := verify(t, &Verifier{DNS: z}, m); len(r) == 1 && r[0].Status == Pass && oracle(t, z, m)[0].Status != Pass {
				t.Errorf("message %d, %s: ours passes, go-msgauth does not", i, what)
			}
		}
	}
	if signed != 120 {
		t.Errorf("%d signed", signed)
	}
}

func hasField(fs []HeaderField, name string) bool {
	for _, f := range fs {
		if strings.EqualFold(f.Name, name) {
			return true
		}
	}
	return false
}

func TestSignedFields(t *testing.T) {
	fs := []HeaderField{{"Received", " x"}, {"From", " a@example.com"}, {"To", " b"}, {"to", " c"}, {"Subject", " s"}}
	for _, tc := range []struct {
		list []SignHeader
		want string
	}{
		{nil, "From:From:Reply-To:Subject:Subject:Date:To:To:To:Cc:Message-ID:In-Reply-To:References:MIME-Version:Content-Type:Content-Transfer-Encoding"},
		{[]SignHeader{{"To", SignOnce}, {"Cc", SignOnce}}, "To:From"},
		{[]SignHeader{{"To", SignAll}, {"From", SignOver}}, "To:To:From:From"},
	} {
		got, err := signedFields(tc.list, fs)
		if err != nil || strings.Join(got, ":") != tc.want {
			t.Errorf("%v: %q, %v; want %s", tc.list, strings.Join(got, ":"), err, tc.want)
		}
	}
	if _, err := signedFields(nil, fs[2:]); err != ErrNoFrom {
		t.Errorf("no From: %v", err)
	}
	many := []HeaderField{}
	for range 80000 {
		many = append(many, HeaderField{"From", " a@example.com"})
	}
	if _, err := signedFields(nil, many); err == nil || !strings.Contains(err.Error(), "more than 64") {
		t.Errorf("80000 From fields: %v", err)
	}
}

func TestParseSignHeader(t *testing.T) {
	for in, want := range map[string]string{"From": "From", "+From": "+From", "=List-Id": "=List-Id", " subject: ": "subject"} {
		h, err := ParseSignHeader(in)
		if err != nil || h.String() != want {
			t.Errorf("%q: %v, %v; want %s", in, h, err, want)
		}
	}
	for _, in := range []string{"", "+", "fr om", "Authentication-Results", "+dkim-signature", "received", "a\r\nb"} {
		if h, err := ParseSignHeader(in); err == nil {
			t.Errorf("%q: accepted as %v", in, h)
		}
	}
}

func FuzzParseSignHeader(f *testing.F) {
	for _, s := range []string{"From", "+From", "=List-Id", "fr om", "+", "Received", "x:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseSignHeader(s)
		if err != nil {
			return
		}
		again, err := ParseSignHeader(h.String())
		if err != nil || again != h {
			t.Fatalf("%q → %v → %v, %v", s, h, again, err)
		}
	})
}

// countingKey counts the private-key operations.
type countingKey struct {
	crypto.Signer
	n atomic.Int32
}

func (k *countingKey) Sign(r io.Reader, d []byte, o crypto.SignerOpts) ([]byte, error) {
	k.n.Add(1)
	return k.Signer.Sign(r, d, o)
}

// TestSignAbort: an aborted message costs no signature, and the stream
// refuses to go on.
func TestSignAbort(t *testing.T) {
	_, ek := testKeys(t)
	k := &countingKey{Signer: ek}
	fs, body := splitSignFields(crlf("From: a@example.com\nSubject: x\n\nbody\n"))
	st, err := NewSignStream(SignOptions{Domain: "example.com", Selector: "ed", Key: k}, fs)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte(body))
	st.Abort()
	if _, err := st.Finish(); err == nil {
		t.Error("Finish after Abort gave a signature")
	}
	if _, err := st.Write([]byte("more")); err == nil {
		t.Error("Write after Abort succeeded")
	}
	if n := k.n.Load(); n != 0 {
		t.Errorf("%d private-key operations for an aborted message", n)
	}
}

// The signer is go-msgauth's: a message it signs through the stream is
// byte for byte what its own Sign gives, apart from b= (RSA signatures
// are deterministic, but t= may differ by a second).
func TestSignStreamIsGoMsgauth(t *testing.T) {
	rk, _ := testKeys(t)
	msg := crlf("From: a@example.com\nTo: b@example.net\nSubject: hello\n\nbody  \n\n")
	out := streamSign(t, SignOptions{Domain: "example.com", Selector: "rsa", Key: rk,
		Headers: []SignHeader{{"From", SignOnce}, {"To", SignOnce}}}, msg, 3)
	ref := sign(t, msg, &msgdkim.SignOptions{Domain: "example.com", Selector: "rsa", Signer: rk,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed,
		HeaderKeys: []string{"From", "To"}})
	bh := func(s string) string {
		i := strings.Index(s, "bh=")
		return s[i : i+strings.IndexByte(s[i:], ';')]
	}
	if bh(out) != bh(ref) {
		t.Errorf("body hash %s, go-msgauth %s", bh(out), bh(ref))
	}
}
