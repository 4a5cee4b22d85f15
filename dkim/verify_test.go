package dkim

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	msgdkim "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

// rfc8463Zone publishes the RFC 8463 Appendix A keys: brisbane (Ed25519,
// A.2) and test (the RFC 6376 RSA key, A.1 of RFC 8463), from the shared
// test data.
func rfc8463Zone(t *testing.T) *dnstest.Zone {
	t.Helper()
	rsaTXT, err := os.ReadFile(sharedTestdata(t, "dkim/test.txt"))
	if err != nil {
		t.Fatal(err)
	}
	z := dnstest.NewZone()
	addTXT(z, "brisbane._domainkey.football.example.com",
		"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=")
	addTXT(z, "test._domainkey.football.example.com", strings.TrimSpace(string(rsaTXT)))
	return z
}

func TestRFC8463Example(t *testing.T) { runRFC8463Example(t, rfc8463Zone(t)) }

// TestRFC8463ExampleOverTheWire verifies the example with the keys fetched
// by the real resolver from a loopback DNS server, as the daemon does.
func TestRFC8463ExampleOverTheWire(t *testing.T) {
	runRFC8463Example(t, dnstest.NewResolver(t, rfc8463Zone(t)))
}

func runRFC8463Example(t *testing.T, dns resolver.Querier) {
	raw, err := os.ReadFile(sharedTestdata(t, "dkim/rfc6376.signed.msg"))
	if err != nil {
		t.Fatal(err)
	}
	v := &Verifier{DNS: dns}
	want := []string{
		`dkim=pass header.d=football.example.com header.i=@football.example.com header.s=brisbane header.a=ed25519-sha256 header.b="9/dsDChY"`,
		`dkim=pass header.d=football.example.com header.i=@football.example.com header.s=test header.a=rsa-sha256 header.b=icKcLSEZ`,
	}
	check := func(t *testing.T, res []Result) {
		t.Helper()
		if len(res) != len(want) {
			t.Fatalf("got %d results, want %d: %+v", len(res), len(want), res)
		}
		for i, r := range res {
			if got := r.AuthResult().String(); got != want[i] {
				t.Errorf("result %d:\n got %s\nwant %s (err %v)", i, got, want[i], r.Err)
			}
		}
	}
	t.Run("LF", func(t *testing.T) { check(t, verify(t, v, string(raw))) })
	t.Run("CRLF", func(t *testing.T) { check(t, verify(t, v, crlf(string(raw)))) })
	t.Run("byte by byte", func(t *testing.T) {
		s := v.NewStream(context.Background())
		msg := crlf(string(raw))
		for i := 0; i < len(msg); i++ {
			if _, err := s.Write([]byte{msg[i]}); err != nil {
				t.Fatal(err)
			}
		}
		res, err := s.Close()
		if err != nil {
			t.Fatal(err)
		}
		check(t, res)
	})
	t.Run("fields", func(t *testing.T) {
		// The milter's way: header fields (raw values with their leading
		// space and CRLF folding), end of header, body chunks.
		msg := crlf(string(raw))
		head, body, _ := strings.Cut(msg, "\r\n\r\n")
		s := v.NewStream(context.Background())
		for _, f := range splitFields(head) {
			if err := s.WriteField(f.name, f.value); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.EndHeader(); err != nil {
			t.Fatal(err)
		}
		for len(body) > 0 {
			n := min(7, len(body))
			s.Write([]byte(body[:n]))
			body = body[n:]
		}
		res, err := s.Close()
		if err != nil {
			t.Fatal(err)
		}
		check(t, res)
	})
	t.Run("tampered body", func(t *testing.T) {
		res := verify(t, v, strings.Replace(string(raw), "hungry", "thirsty", 1))
		for _, r := range res {
			if r.Status != Fail || r.Reason != "body hash did not verify" {
				t.Errorf("%s: got %s (%s), want fail (body hash did not verify)", r.Selector, r.Status, r.Reason)
			}
		}
	})
}

// message is a test message with headers a c=simple signer and verifier
// must keep byte for byte: two spaces after a colon, a tab after another,
// tab folding, trailing white space.
const message = "From: Joe SixPack <joe@example.com>\r\n" +
	"To: Suzie Q <suzie@shopping.example.net>,\r\n\tother <other@example.net>\r\n" +
	"Subject:  two spaces \r\n" +
	"X-Tab:\tvalue\r\n" +
	"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n" +
	"Message-ID: <20030712040037.46341.5F8J@example.com>\r\n" +
	"\r\n" +
	"Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n"

type signedCase struct {
	name   string
	signer func() crypto.Signer
	algo   string
}

func signers(t *testing.T) []signedCase {
	rk, ek := testKeys(t)
	return []signedCase{
		{"rsa", func() crypto.Signer { return rk }, "rsa-sha256"},
		{"ed25519", func() crypto.Signer { return ek }, "ed25519-sha256"},
	}
}

func TestSignedMessages(t *testing.T) {
	for _, sc := range signers(t) {
		t.Run(sc.name, func(t *testing.T) {
			z := dnstest.NewZone()
			addTXT(z, "sel._domainkey.example.com", keyRecord(t, sc.signer(), ""))
			v := &Verifier{DNS: z}
			for _, can := range []msgdkim.Canonicalization{msgdkim.CanonicalizationSimple, msgdkim.CanonicalizationRelaxed} {
				opts := &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: sc.signer(),
					HeaderCanonicalization: can, BodyCanonicalization: can,
					HeaderKeys: []string{"From", "To", "Subject", "X-Tab", "Date", "Message-ID"}}
				signed := sign(t, message, opts)
				cases := []struct {
					name   string
					msg    string
					status Status
					reason string
				}{
					{"intact", signed, Pass, ""},
					{"LF line ends", strings.ReplaceAll(signed, "\r\n", "\n"), Pass, ""},
					{"body tampered", strings.Replace(signed, "game", "match", 1), Fail, "body hash did not verify"},
					{"body appended", signed + "P.S. buy now\r\n", Fail, "body hash did not verify"},
					{"header tampered", strings.Replace(signed, "two spaces", "two spaces!", 1), Fail, "signature did not verify"},
				}
				if can == msgdkim.CanonicalizationSimple {
					cases = append(cases, struct {
						name   string
						msg    string
						status Status
						reason string
					}{"spacing changed (simple)", strings.Replace(signed, "Subject:  two", "Subject: two", 1), Fail, "signature did not verify"})
				} else {
					cases = append(cases, struct {
						name   string
						msg    string
						status Status
						reason string
					}{"spacing changed (relaxed)", strings.Replace(signed, "Subject:  two", "Subject: two", 1), Pass, ""})
				}
				for _, c := range cases {
					t.Run(string(can)+"/"+c.name, func(t *testing.T) {
						res := verify(t, v, c.msg)
						if len(res) != 1 {
							t.Fatalf("got %d results", len(res))
						}
						r := res[0]
						if r.Status != c.status || !strings.HasPrefix(r.Reason, c.reason) {
							t.Fatalf("got %s (%s), want %s (%s…); err %v", r.Status, r.Reason, c.status, c.reason, r.Err)
						}
						if r.Domain != "example.com" || r.Selector != "sel" || r.Algorithm != sc.algo || len(r.BPrefix) != 8 || r.Identifier != "@example.com" {
							t.Errorf("tags: %+v", r)
						}
					})
				}
			}
		})
	}
}

// TestSimpleFieldsAsMilterPassesThem feeds a c=simple signed message the
// way the milter gets it from Postfix with SMFIP_HDR_LEADSPC: each value
// keeps its leading white space and folding.
func TestSimpleFieldsAsMilterPassesThem(t *testing.T) {
	rk, _ := testKeys(t)
	z := dnstest.NewZone()
	addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, ""))
	v := &Verifier{DNS: z}
	signed := sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk})
	head, body, _ := strings.Cut(signed, "\r\n\r\n")
	feed := func(strip bool) Result {
		s := v.NewStream(context.Background())
		for _, f := range splitFields(head) {
			value := f.value
			if strip { // what an MTA without leading-space mode would give
				value = " " + strings.TrimLeft(value, " \t")
			}
			s.WriteField(f.name, value)
		}
		s.EndHeader()
		s.Write([]byte(body))
		res, err := s.Close()
		if err != nil || len(res) != 1 {
			t.Fatalf("results %v, err %v", res, err)
		}
		return res[0]
	}
	if r := feed(false); r.Status != Pass {
		t.Errorf("exact values: %s (%s)", r.Status, r.Reason)
	}
	if r := feed(true); r.Status != Fail {
		t.Errorf("normalised values: %s, want fail for c=simple", r.Status)
	}
}

func TestKeyProblems(t *testing.T) {
	rk, ek := testKeys(t)
	signed := sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk})
	edSigned := sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: ek})
	cases := []struct {
		name   string
		zone   func(z *dnstest.Zone)
		msg    string
		status Status
		reason string
	}{
		{"NXDOMAIN", func(z *dnstest.Zone) {}, signed, PermError, "no key for signature"},
		{"NODATA", func(z *dnstest.Zone) { z.AddName("sel._domainkey.example.com") }, signed, PermError, "no key for signature"},
		{"timeout", func(z *dnstest.Zone) { z.SetFault("sel._domainkey.example.com", 0, dnstest.Timeout) }, signed, TempError, "key unavailable: DNS timeout"},
		{"SERVFAIL", func(z *dnstest.Zone) { z.SetFault("sel._domainkey.example.com", resolver.TypeTXT, dnstest.ServFail) }, signed, TempError, "key unavailable: DNS SERVFAIL"},
		{"revoked", func(z *dnstest.Zone) { addTXT(z, "sel._domainkey.example.com", "v=DKIM1; k=rsa; p=") }, signed, PermError, "key revoked"},
		{"two key records", func(z *dnstest.Zone) {
			addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, ""))
			addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, ""))
		}, signed, PermError, "multiple TXT records found for key"},
		{"garbage key", func(z *dnstest.Zone) { addTXT(z, "sel._domainkey.example.com", "v=DKIM1; p=!!!!") }, signed, PermError, "key syntax error"},
		{"wrong key type", func(z *dnstest.Zone) { addTXT(z, "sel._domainkey.example.com", keyRecord(t, ek, "")) }, signed, PermError, "inappropriate key algorithm"},
		{"signed with another key", func(z *dnstest.Zone) { addTXT(z, "sel._domainkey.example.com", keyRecord(t, ek, "")) }, sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: ed2(t)}), Fail, "signature did not verify"},
		{"testing key t=y", func(z *dnstest.Zone) { addTXT(z, "sel._domainkey.example.com", keyRecord(t, ek, "t=y; ")) }, edSigned, Pass, ""},
		{"strict key t=s, i= subdomain", func(z *dnstest.Zone) { addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, "t=s; ")) },
			sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk, Identifier: "joe@mail.example.com"}), PermError, "i= domain is not d="},
		{"strict key t=s, i= same domain", func(z *dnstest.Zone) { addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, "t=s; ")) },
			sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk, Identifier: "joe@example.com"}), Pass, ""},
		{"key for web only (s=)", func(z *dnstest.Zone) { addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, "s=web; ")) }, signed, PermError, "inappropriate service"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			z := dnstest.NewZone()
			c.zone(z)
			res := verify(t, &Verifier{DNS: z}, c.msg)
			if len(res) != 1 {
				t.Fatalf("got %d results", len(res))
			}
			r := res[0]
			if r.Status != c.status || !strings.HasPrefix(r.Reason, c.reason) {
				t.Fatalf("got %s (%s), want %s (%s…); err %v", r.Status, r.Reason, c.status, c.reason, r.Err)
			}
			if c.name == "testing key t=y" && !r.Testing {
				t.Error("Testing not set for t=y")
			}
			if c.status != Pass {
				ar := r.AuthResult().String()
				if !strings.Contains(ar, "dkim="+string(c.status)+" ("+c.reason) {
					t.Errorf("A-R %q lacks the reason comment", ar)
				}
			}
		})
	}
}

// ed2 is a second Ed25519 key, different from the published one.
func ed2(t *testing.T) crypto.Signer {
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestLengthTag(t *testing.T) {
	// go-msgauth cannot sign with l=; the tag is added to a valid
	// signature. The l= check comes before any hashing, so the
	// signature's b= does not matter: l= is refused as local policy.
	rk, _ := testKeys(t)
	z := dnstest.NewZone()
	addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, ""))
	signed := sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk})
	withL := strings.Replace(signed, "DKIM-Signature: ", "DKIM-Signature: l=10; ", 1)
	res := verify(t, &Verifier{DNS: z}, withL)
	if len(res) != 1 || res[0].Status != Policy || res[0].Reason != "body length limit (l=) not accepted" {
		t.Fatalf("got %+v", res)
	}
	if got, want := res[0].AuthResult().String(), "dkim=policy (body length limit \\(l=\\) not accepted) header.d=example.com"; !strings.HasPrefix(got, want) {
		t.Errorf("A-R %q, want prefix %q", got, want)
	}
}

func TestExpiration(t *testing.T) {
	rk, _ := testKeys(t)
	z := dnstest.NewZone()
	addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, ""))
	now := time.Now()
	cases := []struct {
		name    string
		expires time.Time
		clock   time.Time
		status  Status
	}{
		{"valid", now.Add(time.Hour), now, Pass},
		{"expired by the verifier's clock", now.Add(time.Hour), now.Add(2 * time.Hour), Fail},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			signed := sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk, Expiration: c.expires})
			clock := c.clock
			res := verify(t, &Verifier{DNS: z, Now: func() time.Time { return clock }}, signed)
			if len(res) != 1 || res[0].Status != c.status {
				t.Fatalf("got %+v, want %s", res, c.status)
			}
			if c.status == Fail && res[0].Reason != "signature expired" {
				t.Errorf("reason %q", res[0].Reason)
			}
		})
	}
	t.Run("expired by the real clock", func(t *testing.T) {
		// go-msgauth checks x= against the real clock before anything
		// else; the Verifier's clock (1970) would not find it expired.
		signed := sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk})
		i := strings.Index(signed, " t=")
		j := i + strings.IndexByte(signed[i:], ';')
		old := signed
		signed = signed[:i] + " t=1000; x=2000" + signed[j:]
		if signed == old {
			t.Fatal("no t= tag")
		}
		res := verify(t, &Verifier{DNS: z, Now: func() time.Time { return time.Unix(1500, 0) }}, signed)
		if len(res) != 1 || res[0].Status != Fail || res[0].Reason != "signature expired" {
			t.Fatalf("got %+v", res)
		}
	})
	t.Run("x= before t=", func(t *testing.T) {
		signed := sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk})
		// Inserting x= breaks the signature too, but the tag error wins.
		bad := strings.Replace(signed, "DKIM-Signature: ", "DKIM-Signature: x=1; ", 1)
		res := verify(t, &Verifier{DNS: z, Now: func() time.Time { return time.Unix(0, 0) }}, bad)
		if len(res) != 1 || res[0].Status != PermError || !strings.Contains(res[0].Reason, "x= (expiration) is not after t=") {
			t.Fatalf("got %+v", res)
		}
	})
}

func TestManySignaturesCapped(t *testing.T) {
	rk, _ := testKeys(t)
	z := dnstest.NewZone()
	msg := message
	const n = 12
	for i := 0; i < n; i++ {
		sel := fmt.Sprintf("s%d", i)
		addTXT(z, sel+"._domainkey.example.com", keyRecord(t, rk, ""))
		msg = sign(t, msg, &msgdkim.SignOptions{Domain: "example.com", Selector: sel, Signer: rk,
			HeaderKeys: []string{"From", "To", "Subject"}})
	}
	v := &Verifier{DNS: z, MaxSignatures: 8}
	res := verify(t, v, msg)
	if len(res) != n {
		t.Fatalf("got %d results, want %d", len(res), n)
	}
	for i, r := range res {
		// The last signature added is on top.
		if want := fmt.Sprintf("s%d", n-1-i); r.Selector != want {
			t.Errorf("result %d: selector %s, want %s", i, r.Selector, want)
		}
		want := Pass
		if i >= 8 {
			want = Policy
		}
		if r.Status != want {
			t.Errorf("result %d: %s (%s), want %s", i, r.Status, r.Reason, want)
		}
		if i >= 8 && r.Reason != "too many signatures" {
			t.Errorf("result %d: reason %q", i, r.Reason)
		}
	}
	if q := len(z.Queries()); q != 8 {
		t.Errorf("%d key queries, want 8", q)
	}
	// The default cap is 8 too.
	z.ResetQueries()
	res = verify(t, &Verifier{DNS: z}, msg)
	if res[7].Status != Pass || res[8].Status != Policy || len(z.Queries()) != 8 {
		t.Errorf("default cap: %s %s, %d queries", res[7].Status, res[8].Status, len(z.Queries()))
	}
}

func TestUnsignedAndOddMessages(t *testing.T) {
	z := dnstest.NewZone()
	v := &Verifier{DNS: z}
	for name, msg := range map[string]string{
		"unsigned":         message,
		"empty":            "",
		"header only":      "From: a@example.com\r\nSubject: x",
		"empty header":     "\r\nbody\r\n",
		"no body, LF only": "From: a@example.com\n",
	} {
		t.Run(name, func(t *testing.T) {
			if res := verify(t, v, msg); res != nil {
				t.Errorf("got %+v", res)
			}
		})
	}
	if q := z.Queries(); len(q) != 0 {
		t.Errorf("queries for unsigned messages: %v", q)
	}
	t.Run("signed, header only", func(t *testing.T) {
		rk, _ := testKeys(t)
		addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, ""))
		signed := sign(t, "From: a@example.com\r\nSubject: x\r\n\r\n", &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk})
		head := strings.TrimSuffix(signed, "\r\n\r\n")
		for _, m := range []string{head, head + "\r\n"} {
			res := verify(t, v, m)
			if len(res) != 1 || res[0].Status != Pass {
				t.Errorf("got %+v", res)
			}
		}
	})
	t.Run("malformed signature", func(t *testing.T) {
		res := verify(t, v, "DKIM-Signature: v=1; a=rsa-sha256; d=example.com; s\r\n"+message)
		if len(res) != 1 || res[0].Status != PermError || res[0].Domain != "example.com" {
			t.Errorf("got %+v", res)
		}
	})
}

func TestHeaderTooLarge(t *testing.T) {
	s := (&Verifier{DNS: dnstest.NewZone()}).NewStream(context.Background())
	s.Write([]byte("DKIM-Signature: v=1; d=example.com; s=sel; b=abcdefghijkl\r\n"))
	line := []byte("X-Filler: " + strings.Repeat("x", 1000) + "\r\n")
	for i := 0; i < MaxHeaderBytes/len(line)+1; i++ {
		s.Write(line)
	}
	s.Write([]byte("\r\nbody\r\n"))
	res, err := s.Close()
	if err != ErrHeaderTooLarge {
		t.Fatalf("err %v", err)
	}
	if len(res) != 1 || res[0].Status != TempError || res[0].BPrefix != "abcdefgh" {
		t.Fatalf("got %+v", res)
	}
}

func TestHeaderTooLargeOneWrite(t *testing.T) {
	msg := "DKIM-Signature: v=1; d=example.com; s=sel; b=abcdefghijkl\r\n" +
		strings.Repeat("X-Filler: "+strings.Repeat("x", 1000)+"\r\n", MaxHeaderBytes/1000+1) + "\r\nbody\r\n"
	res, err := (&Verifier{DNS: dnstest.NewZone()}).Verify(context.Background(), strings.NewReader(msg))
	if err != ErrHeaderTooLarge || len(res) != 1 || res[0].Status != TempError {
		t.Fatalf("got %+v, %v", res, err)
	}
	s := (&Verifier{DNS: dnstest.NewZone()}).NewStream(context.Background())
	s.Write([]byte(msg))
	if _, err := s.Close(); err != ErrHeaderTooLarge {
		t.Fatalf("one write: %v", err)
	}
}

func TestHeaderTooLargeFields(t *testing.T) {
	s := (&Verifier{DNS: dnstest.NewZone()}).NewStream(context.Background())
	s.WriteField("DKIM-Signature", " v=1; d=example.com; s=sel; b=abcdefghijkl")
	filler := strings.Repeat("x", 1000)
	for i := 0; i < MaxHeaderBytes/1000+1; i++ {
		s.WriteField("X-Filler", filler)
	}
	if err := s.EndHeader(); err != nil {
		t.Fatal(err)
	}
	s.Write([]byte("body\r\n"))
	res, err := s.Close()
	if err != ErrHeaderTooLarge || len(res) != 1 || res[0].Status != TempError {
		t.Fatalf("got %+v, %v", res, err)
	}
}

func TestAbortDoesNotBlockOrLeak(t *testing.T) {
	rk, _ := testKeys(t)
	z := dnstest.NewZone()
	addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, ""))
	v := &Verifier{DNS: z}
	msg := message
	for i := 0; i < 3; i++ {
		msg = sign(t, msg, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk})
	}
	before := runtime.NumGoroutine()
	for i := 0; i < 50; i++ {
		s := v.NewStream(context.Background())
		s.Write([]byte(msg[:len(msg)-20]))
		s.Abort()
		if _, err := s.Write([]byte("x")); err != ErrClosed {
			t.Fatalf("Write after Abort: %v", err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		t.Errorf("%d goroutines after aborts, %d before", g, before)
	}
}

func TestStatusWithoutSignatureEnd(t *testing.T) {
	s := (&Verifier{DNS: dnstest.NewZone()}).NewStream(context.Background())
	if err := s.End(); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteField("From", " x"); err != ErrHeaderEnded {
		t.Errorf("WriteField after End: %v", err)
	}
	if err := s.End(); err != nil {
		t.Errorf("second End: %v", err)
	}
}

// FuzzStream feeds arbitrary messages in arbitrary chunks: no panic, no
// hang, and the same results as feeding it at once.
func FuzzStream(f *testing.F) {
	f.Add([]byte(message), 3)
	f.Add([]byte("DKIM-Signature: v=1; d=example.com; s=s; a=rsa-sha256; b=x; bh=y; h=from\r\nFrom: a@example.com\r\n\r\nbody"), 1)
	f.Add([]byte("\n\nDKIM-Signature: x\n"), 2)
	f.Add([]byte(" DKIM-Signature: v=1\r\n\r\n"), 5)
	f.Fuzz(func(t *testing.T, msg []byte, chunk int) {
		if chunk <= 0 || chunk > len(msg)+1 {
			chunk = len(msg) + 1
		}
		v := &Verifier{DNS: dnstest.NewZone(), MaxSignatures: 3}
		whole, err1 := v.Verify(context.Background(), strings.NewReader(string(msg)))
		s := v.NewStream(context.Background())
		for rest := msg; len(rest) > 0; {
			n := min(chunk, len(rest))
			if _, err := s.Write(rest[:n]); err != nil {
				t.Fatal(err)
			}
			rest = rest[n:]
		}
		parts, err2 := s.Close()
		if (err1 == nil) != (err2 == nil) || len(whole) != len(parts) {
			t.Fatalf("whole %v %v, chunked %v %v", whole, err1, parts, err2)
		}
		for i := range whole {
			if whole[i].Status != parts[i].Status || whole[i].Domain != parts[i].Domain || whole[i].BPrefix != parts[i].BPrefix {
				t.Fatalf("result %d: %+v vs %+v", i, whole[i], parts[i])
			}
			if whole[i].Status == Pass {
				t.Fatalf("pass without a key: %+v", whole[i])
			}
			_ = whole[i].AuthResult().String()
		}
	})
}

// TestEverySplitPoint writes a signed message in two pieces, split at
// every offset: the header end may fall anywhere, even inside "\r\n\r\n".
func TestEverySplitPoint(t *testing.T) {
	rk, _ := testKeys(t)
	z := dnstest.NewZone()
	addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, ""))
	v := &Verifier{DNS: z}
	for _, msg := range []string{
		sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk}),
		strings.ReplaceAll(sign(t, message, &msgdkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: rk}), "\r\n", "\n"),
	} {
		for i := 0; i <= len(msg); i++ {
			s := v.NewStream(context.Background())
			s.Write([]byte(msg[:i]))
			s.Write([]byte(msg[i:]))
			res, err := s.Close()
			if err != nil || len(res) != 1 || res[0].Status != Pass {
				t.Fatalf("split at %d: %+v %v", i, res, err)
			}
		}
	}
	// An empty header: the signature-like line is body.
	const sig = "DKIM-Signature: v=1; d=example.com; s=sel; b=x\r\n"
	for _, msg := range []string{"\r\n" + sig, "\n" + sig, "\r\n", "\n"} {
		for i := 0; i <= len(msg); i++ {
			s := v.NewStream(context.Background())
			s.Write([]byte(msg[:i]))
			s.Write([]byte(msg[i:]))
			if res, err := s.Close(); res != nil || err != nil {
				t.Fatalf("%q split at %d: %+v %v", msg, i, res, err)
			}
		}
	}
}

// TestLargeBodyStreams covers bodies beyond BodyBuffer, which go through
// the pipe to a go-msgauth goroutine instead of being kept.
func TestLargeBodyStreams(t *testing.T) {
	rk, ek := testKeys(t)
	z := dnstest.NewZone()
	addTXT(z, "rsa._domainkey.example.com", keyRecord(t, rk, ""))
	addTXT(z, "ed._domainkey.example.com", keyRecord(t, ek, ""))
	v := &Verifier{DNS: z}
	body := strings.Repeat("A line of a large body, repeated until it is well past the buffer.\r\n", 4*BodyBuffer/60)
	head, _, _ := strings.Cut(message, "\r\n\r\n")
	msg := head + "\r\n\r\n" + body
	msg = sign(t, msg, &msgdkim.SignOptions{Domain: "example.com", Selector: "rsa", Signer: rk})
	msg = sign(t, msg, &msgdkim.SignOptions{Domain: "example.com", Selector: "ed", Signer: ek,
		HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed})
	for _, chunk := range []int{len(msg), 65536, 4096, 1000} {
		s := v.NewStream(context.Background())
		for rest := msg; len(rest) > 0; {
			n := min(chunk, len(rest))
			s.Write([]byte(rest[:n]))
			rest = rest[n:]
		}
		res, err := s.Close()
		if err != nil || len(res) != 2 || res[0].Status != Pass || res[1].Status != Pass {
			t.Fatalf("chunk %d: %+v %v", chunk, res, err)
		}
		if s.pw == nil {
			t.Fatalf("chunk %d: the body was not streamed", chunk)
		}
	}
	tampered := strings.Replace(msg, "well past", "far past", 1)
	res := verify(t, v, tampered)
	if len(res) != 2 || res[0].Status != Fail || res[1].Status != Fail {
		t.Fatalf("tampered: %+v", res)
	}
	// Abort in the middle of a streamed body leaves no goroutine behind.
	before := runtime.NumGoroutine()
	for i := 0; i < 20; i++ {
		s := v.NewStream(context.Background())
		s.Write([]byte(msg[:len(msg)/2]))
		s.Abort()
	}
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if g := runtime.NumGoroutine(); g > before+2 {
		t.Errorf("%d goroutines after aborts, %d before", g, before)
	}
}

func TestSignatureValuesMatchesSplitFields(t *testing.T) {
	for _, hdr := range []string{
		"DKIM-Signature: a\r\n b\r\nFrom: x\r\n",
		" DKIM-Signature: lead\r\ndkim-signature:c\r\n\tcont\r\nX: y\r\n  DKIM-Signature: z\r\n",
		"DKIM-Signature : spaced\nnot a field\nDKIM-Signature\n",
		"", "\r\n", "DKIM-Signature: x",
	} {
		var want []string
		for _, f := range splitFields(hdr) {
			if strings.EqualFold(f.name, headerFieldName) {
				want = append(want, f.value)
			}
		}
		got := signatureValues([]byte(hdr))
		if strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("%q: got %q, want %q", hdr, got, want)
		}
	}
}

// A check's signature reads the same tags as the generic reader, reusing
// what the check read: with and without i=, in any case, with FWS, with
// a d= outside ASCII, and for checks that stop before reading d=.
func TestCheckSignatureIsReadSignature(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, v := range []string{
		" v=1; a=rsa-sha256; d=Example.COM; s=sel; h=From; bh=AAAA; b=abc\r\n\tdefghij",
		" v=1; a=RSA-SHA256; d=example.com; i=user@Sub.Example.com; s=sel; h=from; bh=AAAA; b=AB CD EF GH IJ",
		" v=1; a=rsa-sha256; d=ex\u00c4mple.com; s=s; h=From; bh=A; b=B",
		" v=1; a=rsa-sha256; d=; s=s; h=From; bh=A; b=B",
		" v=1; a=rsa-sha256; d=example.com; i=x@other.org; s=s; h=From; bh=A; b=B",
		" v=2; a=rsa-sha256; d=example.com; s=s; h=From; bh=A; b=B",
		" v=1; a=rsa-sha256; d=example.com; s=s; h=To; bh=A; b=B",
	} {
		f, err := dkimcore.NewField([]byte("DKIM-Signature:" + v))
		if err != nil {
			t.Fatal(err)
		}
		var c sigCheck
		c.prepare(&f, now)
		if c.tags == nil {
			t.Fatalf("%q: tags did not parse", v)
		}
		if got, want := c.signature(), readSignature(c.tags.Get); got != want {
			t.Errorf("%q:\n got %+v\nwant %+v", v, got, want)
		}
	}
}

// The fields WriteField marks are those SplitHeader finds in the same
// text; the fields it cannot vouch for are split by SplitHeader.
func TestMarkedFieldsAreSplitFields(t *testing.T) {
	fields := [][2]string{
		{"From", " a@example.com"}, {"Subject", " folded\r\n\tline"}, {"X-Empty", ""},
		{"DKIM-Signature", " v=1; a=rsa-sha256;\r\n b=abc"}, {"Name ", " trailing space in name"},
		{"To", " bare\nLF"}, {"X", " CR\ronly"}, {" Lead", " space"}, {"X-Fold-End", " x\r\n"},
		{"Odd:Name", " colon"}, {"X-Unfolded", " a\r\nB: b"}, {"x-lower", "v"},
	}
	for mask := 0; mask < 1<<len(fields); mask += 7 {
		s := (&Verifier{}).NewStream(context.Background())
		var hdr strings.Builder
		for i, f := range fields {
			if mask&(1<<i) != 0 {
				s.WriteField(f[0], f[1])
				hdr.WriteString(f[0] + ":" + f[1] + "\r\n")
			}
		}
		if !s.marked || hdr.Len() == 0 {
			continue
		}
		got := fieldsOf(nil, hdr.String(), s.sc.marks)
		want := dkimcore.SplitHeaderString(hdr.String(), dkimcore.Lenient)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("mask %b:\nmarked %+v\n split %+v", mask, got, want)
		}
	}
	for _, f := range fields[4:11] {
		if markable(f[0], f[1]) {
			t.Errorf("%q: %q marked", f[0], f[1])
		}
	}
}

// The Results of a message keep their tags when the stream's pooled
// header memory serves the next message.
func TestResultsOutliveThePooledHeader(t *testing.T) {
	rk, _ := testKeys(t)
	z := dnstest.NewZone()
	for _, name := range []string{"sel._domainkey.example.com", "other._domainkey.example.org"} {
		addTXT(z, name, keyRecord(t, rk, ""))
	}
	verify := func(domain, selector string) []Result {
		v := &Verifier{DNS: z}
		signed := sign(t, message, &msgdkim.SignOptions{Domain: domain, Selector: selector, Signer: rk})
		head, body, _ := strings.Cut(signed, "\r\n\r\n")
		s := v.NewStream(context.Background())
		for _, f := range splitFields(head) {
			s.WriteField(f.name, f.value)
		}
		s.EndHeader()
		s.Write([]byte(body))
		res, err := s.Close()
		if err != nil || len(res) != 1 || res[0].Status != Pass {
			t.Fatalf("%s: %+v, %v", domain, res, err)
		}
		return res
	}
	first := verify("example.com", "sel")
	want := fmt.Sprint(first)
	for range 20 {
		verify("example.org", "other")
	}
	if got := fmt.Sprint(first); got != want || first[0].Domain != "example.com" || first[0].Selector != "sel" {
		t.Errorf("first results changed:\n%s\nwas\n%s", got, want)
	}
}
