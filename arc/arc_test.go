package arc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/resolver"
)

func threeSealers(t testing.TB) []*Signer {
	rk := testRSAKey(t)
	return []*Signer{
		{Domain: "lists.example", Selector: "arc2025", Key: rk, Now: fixedNow},
		{Domain: "forward.example", Selector: "ed", Key: testEdKey(1), Now: fixedNow},
		{Domain: "mx.receiver.example", Selector: "s1", Key: rk, Now: fixedNow},
	}
}

func TestRoundTripThreeSealers(t *testing.T) {
	signers := threeSealers(t)
	zone := publish(t, dnstest.NewZone(), signers...)
	v := &Validator{DNS: zone, Now: fixedNow}
	msg := sealAll(t, v, []byte(testMessage), signers...)
	c := validate(t, v, msg)
	if c.State != Pass || c.Temp || c.Reason != "" {
		t.Fatalf("chain %s (%s), temp %v", c.State, c.Reason, c.Temp)
	}
	if c.OldestPass != 1 {
		t.Errorf("oldest-pass %d, want 1", c.OldestPass)
	}
	if got := c.DomainList(); got != "lists.example:forward.example:mx.receiver.example" {
		t.Errorf("domains %q", got)
	}
	for k, in := range c.Instances {
		s := signers[k]
		if in.I != k+1 || in.ASDomain != s.Domain || in.ASSelector != s.Selector || in.AMSDomain != s.Domain ||
			!in.AMSValid || !in.ASValid || in.AMSError != "" || in.ASError != "" {
			t.Errorf("instance %d: %+v", k+1, in)
		}
		wantCV := Pass
		if k == 0 {
			wantCV = None
		}
		if in.CV != wantCV {
			t.Errorf("instance %d: cv %s", k+1, in.CV)
		}
		if !strings.HasPrefix(in.AAR, s.Domain+";") {
			t.Errorf("instance %d: AAR %q", k+1, in.AAR)
		}
	}
	if got := c.AuthResult("192.0.2.7"); got != "arc=pass (i=3) header.oldest-pass=1 smtp.remote-ip=192.0.2.7" {
		t.Errorf("AuthResult %q", got)
	}
	// The same chain with LF line breaks validates the same way.
	if c2 := validate(t, v, bytes.ReplaceAll(msg, []byte("\r\n"), []byte("\n"))); c2.State != Pass {
		t.Errorf("LF message: %s (%s)", c2.State, c2.Reason)
	}
}

func TestNoARC(t *testing.T) {
	v := &Validator{DNS: dnstest.NewZone()}
	for _, m := range []string{testMessage, "", "\r\n", "Subject: x\r\n", "no header at all"} {
		c := validate(t, v, []byte(m))
		if c.State != None || len(c.Instances) != 0 || c.AuthResult("") != "arc=none" {
			t.Errorf("%q: %+v", m, c)
		}
	}
}

// TestOldestPass: a field signed by the first AMS but not by the second
// changes after the second seal: the chain still passes (only the newest
// AMS must verify) and the oldest-pass is 2.
func TestOldestPass(t *testing.T) {
	rk := testRSAKey(t)
	s1 := &Signer{Domain: "a.example", Selector: "x", Key: rk, Now: fixedNow, Headers: []string{"from", "subject"}}
	s2 := &Signer{Domain: "b.example", Selector: "y", Key: testEdKey(2), Now: fixedNow, Headers: []string{"from"}}
	zone := publish(t, dnstest.NewZone(), s1, s2)
	v := &Validator{DNS: zone, Now: fixedNow}
	msg := sealAll(t, v, []byte(testMessage), s1, s2)
	msg = bytes.Replace(msg, []byte("Quarterly   figures"), []byte("[list] Quarterly figures"), 1)
	c := validate(t, v, msg)
	if c.State != Pass || c.OldestPass != 2 {
		t.Fatalf("state %s oldest-pass %d (%s)", c.State, c.OldestPass, c.Reason)
	}
	if c.Instances[0].AMSValid || c.Instances[0].AMSError == "" || !c.Instances[1].AMSValid {
		t.Errorf("instances: %+v", c.Instances)
	}
}

// TestBrokenChainSealedAsFail: a body change after the first seal breaks
// the newest AMS; the next sealer seals cv=fail over its own set only, and
// after that nobody adds a set.
func TestBrokenChainSealedAsFail(t *testing.T) {
	signers := threeSealers(t)
	zone := publish(t, dnstest.NewZone(), signers...)
	v := &Validator{DNS: zone, Now: fixedNow}
	msg := sealAll(t, v, []byte(testMessage), signers[0])
	msg = append(msg, "-- \r\nList footer\r\n"...)
	c := validate(t, v, msg)
	if c.State != Fail || c.Temp || !strings.Contains(c.Reason, "body hash") {
		t.Fatalf("tampered: %s (%s)", c.State, c.Reason)
	}
	hdrs, err := signers[1].Seal(msg, c, "forward.example; arc=fail")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(hdrs[0], "cv=fail") || !strings.Contains(hdrs[0], "i=2") {
		t.Fatalf("seal: %s", hdrs[0])
	}
	if err := verifyProducedSet(zone, hdrs, msg); err != nil {
		t.Fatalf("cv=fail set: %v", err)
	}
	msg = prepend(hdrs, msg)
	c = validate(t, v, msg)
	if c.State != Fail || !strings.Contains(c.Reason, "cv=fail") {
		t.Fatalf("after cv=fail seal: %s (%s)", c.State, c.Reason)
	}
	if _, err := signers[2].Seal(msg, c, "mx.receiver.example; arc=fail"); !errors.Is(err, ErrChainFailed) {
		t.Fatalf("sealing a dead chain: %v", err)
	}
	if got := c.DomainList(); got != "lists.example:forward.example" {
		t.Errorf("domains %q", got)
	}
}

func TestTemporaryDNSFailure(t *testing.T) {
	signers := threeSealers(t)
	zone := publish(t, dnstest.NewZone(), signers...)
	v := &Validator{DNS: zone, Now: fixedNow}
	msg := sealAll(t, v, []byte(testMessage), signers...)

	zone.SetFault("ed._domainkey.forward.example", resolver.TypeTXT, dnstest.ServFail)
	c := validate(t, v, msg)
	if c.State != Fail || !c.Temp || !strings.Contains(c.Reason, "temporary") {
		t.Fatalf("servfail: %s temp %v (%s)", c.State, c.Temp, c.Reason)
	}
	if c.Instances[1].ASValid || c.Instances[1].ASError == "" || !c.Instances[0].ASValid || !c.Instances[2].ASValid {
		t.Errorf("instances: %+v", c.Instances)
	}
	_, err := signers[2].Seal(msg, c, "mx.receiver.example; arc=fail")
	if !errors.Is(err, resolver.ErrTemporary) {
		t.Fatalf("seal after temp failure: %v", err)
	}

	// A permanent failure elsewhere makes the verdict final.
	broken := bytes.Replace(msg, []byte("i=1; a=rsa-sha256"), []byte("i=1; a=rsa-sha256"), 1)
	broken = corruptSeal(t, broken, 1)
	c = validate(t, v, broken)
	if c.State != Fail || c.Temp {
		t.Fatalf("servfail plus bad seal: %s temp %v (%s)", c.State, c.Temp, c.Reason)
	}

	// A timeout on the newest AMS key (same key as its seal) is temporary.
	zone.SetFault("ed._domainkey.forward.example", resolver.TypeTXT, dnstest.NoFault)
	zone.SetFault("s1._domainkey.mx.receiver.example", 0, dnstest.Timeout)
	if c = validate(t, v, msg); c.State != Fail || !c.Temp {
		t.Fatalf("timeout: %s temp %v (%s)", c.State, c.Temp, c.Reason)
	}
	// NXDOMAIN is permanent.
	zone2 := publish(t, dnstest.NewZone(), signers[0], signers[1])
	if c = validate(t, &Validator{DNS: zone2}, msg); c.State != Fail || c.Temp || !strings.Contains(c.Reason, "no key") {
		t.Fatalf("no key: %s temp %v (%s)", c.State, c.Temp, c.Reason)
	}
}

// corruptSeal flips one character of the b= value of the ARC-Seal with
// instance i.
func corruptSeal(t *testing.T, msg []byte, i int) []byte {
	t.Helper()
	hdr, body := splitMessage(msg)
	fields := dkimcore.SplitHeader(hdr, dkimcore.Strict)
	var out []byte
	done := false
	for _, f := range fields {
		raw := f.Raw
		if f.LName == "arc-seal" && !done {
			tags, _ := dkimcore.ParseTagList(f.Value())
			if iv, _ := tags.Get("i"); iv == fmt.Sprint(i) {
				b := tags.Find("b")
				pos := f.Colon + 1 + b.Start + 2
				for raw[pos] == ' ' || raw[pos] == '\t' {
					pos++
				}
				c := byte('A')
				if raw[pos] == 'A' {
					c = 'B'
				}
				raw = raw[:pos] + string(c) + raw[pos+1:]
				done = true
			}
		}
		out = append(out, raw...)
	}
	if !done {
		t.Fatalf("no ARC-Seal i=%d", i)
	}
	out = append(out, "\r\n"...)
	return append(out, body...)
}

func TestCorruptedSeals(t *testing.T) {
	signers := threeSealers(t)
	zone := publish(t, dnstest.NewZone(), signers...)
	v := &Validator{DNS: zone, Now: fixedNow}
	msg := sealAll(t, v, []byte(testMessage), signers...)
	// Each seal covers the older ones, so the newest seal is the first to
	// fail whichever is corrupted.
	for i := 1; i <= 3; i++ {
		c := validate(t, v, corruptSeal(t, msg, i))
		if c.State != Fail || c.Temp || c.Reason != "i=3: ARC-Seal: signature did not verify" {
			t.Errorf("seal %d corrupted: %s (%s)", i, c.State, c.Reason)
		}
	}
}

// TestHostileHeaderCount: hundreds of ARC fields are answered with fail at
// once, without a DNS query.
func TestHostileHeaderCount(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&sb, "ARC-Seal: i=%d; a=rsa-sha256; cv=pass; d=x.example; s=s; b=AAAA\r\n", i%50+1)
		fmt.Fprintf(&sb, "ARC-Message-Signature: i=%d; a=rsa-sha256; d=x.example; s=s; h=from; bh=AAAA; b=AAAA\r\n", i%50+1)
	}
	sb.WriteString(testMessage)
	zone := dnstest.NewZone()
	v := &Validator{DNS: zone}
	start := time.Now()
	c := validate(t, v, []byte(sb.String()))
	elapsed := time.Since(start)
	if c.State != Fail {
		t.Fatalf("state %s", c.State)
	}
	if len(zone.Queries()) != 0 {
		t.Errorf("%d DNS queries", len(zone.Queries()))
	}
	if elapsed > 200*time.Millisecond {
		t.Errorf("took %v", elapsed)
	}
	t.Logf("4000 ARC fields: %s in %v", c.Reason, elapsed)

	// Instance numbers beyond 50, and beyond a lowered limit.
	c = validate(t, v, []byte("ARC-Seal: i=51; a=rsa-sha256; cv=pass; d=x.example; s=s; b=AAAA\r\n"+testMessage))
	if c.State != Fail || !strings.Contains(c.Reason, "outside 1 to 50") {
		t.Errorf("i=51: %s (%s)", c.State, c.Reason)
	}
	v.MaxInstances = 5
	c = validate(t, v, []byte("ARC-Seal: i=6; a=rsa-sha256; cv=pass; d=x.example; s=s; b=AAAA\r\n"+testMessage))
	if c.State != Fail || !strings.Contains(c.Reason, "outside 1 to 5") {
		t.Errorf("i=6 with limit 5: %s (%s)", c.State, c.Reason)
	}
}

// TestFiftyInstances builds the longest chain allowed: it passes, and no
// 51st set can be added.
func TestFiftyInstances(t *testing.T) {
	if testing.Short() {
		t.Skip("builds 50 seals")
	}
	s := &Signer{Domain: "hop.example", Selector: "k", Key: testEdKey(7), Now: fixedNow}
	zone := publish(t, dnstest.NewZone(), s)
	v := &Validator{DNS: zone, Now: fixedNow}
	signers := make([]*Signer, 50)
	for i := range signers {
		signers[i] = s
	}
	msg := sealAll(t, v, []byte(testMessage), signers...)
	c := validate(t, v, msg)
	if c.State != Pass || len(c.Instances) != 50 || c.OldestPass != 1 {
		t.Fatalf("50 sets: %s (%s), %d instances, oldest %d", c.State, c.Reason, len(c.Instances), c.OldestPass)
	}
	if _, err := s.Seal(msg, c, "hop.example; arc=pass"); !errors.Is(err, ErrTooManyInstances) {
		t.Fatalf("51st seal: %v", err)
	}
	if c := validate(t, &Validator{DNS: zone, Now: fixedNow, MaxInstances: 49}, msg); c.State != Fail {
		t.Fatalf("50 sets with a limit of 49: %s", c.State)
	}
}

func TestStructureErrors(t *testing.T) {
	signers := threeSealers(t)
	zone := publish(t, dnstest.NewZone(), signers...)
	v := &Validator{DNS: zone, Now: fixedNow}
	msg := sealAll(t, v, []byte(testMessage), signers[:2]...)
	hdr, body := splitMessage(msg)
	fields := dkimcore.SplitHeader(hdr, dkimcore.Strict)
	rebuild := func(keep func(f field) bool, extra ...string) []byte {
		var out []byte
		for _, x := range extra {
			out = append(out, x+"\r\n"...)
		}
		for _, f := range fields {
			if keep(f) {
				out = append(out, f.Raw...)
			}
		}
		return append(append(out, "\r\n"...), body...)
	}
	inst := func(f field) string {
		if f.LName == "arc-authentication-results" {
			i, _, _ := parseAARValue(f.Value())
			return fmt.Sprint(i)
		}
		tags, _ := dkimcore.ParseTagList(f.Value())
		i, _ := tags.Get("i")
		return i
	}
	cases := []struct {
		name string
		msg  []byte
		want string
	}{
		{"gap", rebuild(func(f field) bool { return kindOf(f.LName) == kindNone || inst(f) != "1" }), "i=1 missing"},
		{"no AAR", rebuild(func(f field) bool { return f.LName != "arc-authentication-results" || inst(f) != "2" }), "i=2: no ARC-Authentication-Results"},
		{"duplicate AMS", rebuild(func(field) bool { return true }, "ARC-Message-Signature: i=1; a=rsa-sha256; b=AAAA"), "more than one ARC-Message-Signature"},
		{"bad tag list", rebuild(func(field) bool { return true }, "ARC-Seal: i=2;; cv=pass"), "empty tag-spec"},
		{"AAR without i", rebuild(func(field) bool { return true }, "ARC-Authentication-Results: x.example; none"), "does not start with i="},
	}
	for _, tc := range cases {
		c := validate(t, v, tc.msg)
		if c.State != Fail || !strings.Contains(c.Reason, tc.want) {
			t.Errorf("%s: %s (%s), want a reason with %q", tc.name, c.State, c.Reason, tc.want)
		}
	}
}

// TestStreamMatchesValidate feeds the message through a Stream in random
// chunks and seals from the stream: the result must match Validate and
// Seal on the whole message, byte for byte (both keys sign
// deterministically).
func TestStreamMatchesValidate(t *testing.T) {
	signers := threeSealers(t)
	zone := publish(t, dnstest.NewZone(), signers...)
	v := &Validator{DNS: zone, Now: fixedNow}
	msg := sealAll(t, v, []byte(testMessage), signers[:2]...)
	want := validate(t, v, msg)
	wantHdrs, err := signers[2].Seal(msg, want, "mx.receiver.example; arc=pass")
	if err != nil {
		t.Fatal(err)
	}
	hdr, body := splitMessage(msg)
	rng := rand.New(rand.NewSource(1))
	for round := 0; round < 20; round++ {
		st := v.NewStream()
		st.HashForSealing()
		for _, f := range dkimcore.SplitHeader(hdr, dkimcore.Strict) {
			raw := strings.TrimSuffix(f.Raw, "\r\n")
			if round%2 == 1 {
				raw = strings.ReplaceAll(raw, "\r\n", "\n") // as some MTAs hand them over
			}
			if err := st.Header([]byte(raw)); err != nil {
				t.Fatal(err)
			}
		}
		for rest := body; len(rest) > 0; {
			n := 1 + rng.Intn(len(rest))
			if rng.Intn(3) == 0 {
				n = 1
			}
			st.Write(rest[:n])
			rest = rest[n:]
		}
		got := st.Finish(context.Background())
		if got.State != want.State || got.OldestPass != want.OldestPass || got.DomainList() != want.DomainList() {
			t.Fatalf("round %d: stream %+v, whole %+v", round, got, want)
		}
		hdrs, err := signers[2].SealStream(st, "mx.receiver.example; arc=pass")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Join(hdrs, "\n") != strings.Join(wantHdrs, "\n") {
			t.Fatalf("round %d: SealStream differs:\n%s\n%s", round, strings.Join(hdrs, "\n"), strings.Join(wantHdrs, "\n"))
		}
	}
	st := v.NewStream()
	if _, err := signers[0].SealStream(st, "x.example; none"); err == nil {
		t.Error("SealStream before Finish succeeded")
	}
	st.Finish(context.Background())
	if _, err := signers[0].SealStream(st, "x.example; none"); err == nil {
		t.Error("SealStream without HashForSealing succeeded")
	}
	if err := st.Header([]byte("Subject: late")); err == nil {
		t.Error("a header field after the body was accepted")
	}
	if _, err := st.Write([]byte("late")); err == nil {
		t.Error("body data after Finish was accepted")
	}
	if err := v.NewStream().Header([]byte("not a field")); err == nil {
		t.Error("a line without a colon was accepted")
	}
}

func TestSealErrors(t *testing.T) {
	rk := testRSAKey(t)
	none := &Chain{State: None}
	ok := &Signer{Domain: "a.example", Selector: "s", Key: rk}
	for _, tc := range []struct {
		name  string
		s     *Signer
		chain *Chain
		ar    string
	}{
		{"no key", &Signer{Domain: "a.example", Selector: "s"}, none, "a.example; none"},
		{"bad domain", &Signer{Domain: "a..example", Selector: "s", Key: rk}, none, "a.example; none"},
		{"no chain", ok, nil, "a.example; none"},
		{"empty A-R", ok, none, " ; "},
		{"chain says pass", ok, &Chain{State: Pass, Instances: make([]Instance, 1)}, "a.example; none"},
		{"sign arc-seal", &Signer{Domain: "a.example", Selector: "s", Key: rk, Headers: []string{"from", "ARC-Seal"}}, none, "a.example; none"},
	} {
		if _, err := tc.s.Seal([]byte(testMessage), tc.chain, tc.ar); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// TestHeaderList: names are listed once per field present, "+" adds one.
func TestHeaderList(t *testing.T) {
	s := &Signer{Headers: []string{"From", "received", "+subject", "cc", " to ", "from", "SUBJECT"}}
	got, err := s.headerList(dkimcore.SplitHeader([]byte(testMessage+"Received: x\r\n"), dkimcore.Strict))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, ":") != "from:received:subject:subject:to" {
		t.Errorf("h= %q", strings.Join(got, ":"))
	}
}

func TestAuthResultsFor(t *testing.T) {
	msg := []byte("Authentication-Results: MX.example.net (sidecar 1.0) 1; spf=pass smtp.mailfrom=a.example;\r\n" +
		"  dkim=pass (good \"sig;\" here) header.d=a.example\r\n" +
		"Authentication-Results: other.example; dmarc=fail\r\n" +
		"Authentication-Results: \"mx.example.net\"; dmarc=pass header.from=a.example; none\r\n" +
		"Subject: x\r\n\r\nbody\r\n")
	got, ok := AuthResultsFor(msg, "mx.example.net")
	want := "mx.example.net; spf=pass smtp.mailfrom=a.example; dkim=pass (good \"sig;\" here) header.d=a.example; dmarc=pass header.from=a.example"
	if !ok || got != want {
		t.Errorf("got %q %v\nwant %q", got, ok, want)
	}
	if _, ok := AuthResultsFor(msg, "nobody.example"); ok {
		t.Error("found results for an absent authserv-id")
	}
	if got, _ := AuthResultsFor([]byte("Authentication-Results: x.example; none\r\n\r\n"), "x.example"); got != "x.example; none" {
		t.Errorf("none: %q", got)
	}
}

func TestAuthResultFormats(t *testing.T) {
	c := &Chain{State: Fail, Reason: `i=1: bad (really) \ value`}
	if got := c.AuthResult(""); got != `arc=fail (i=1: bad \(really\) \\ value)` {
		t.Errorf("%q", got)
	}
	if got := (&Chain{State: None}).AuthResult("192.0.2.1"); got != "arc=none" {
		t.Errorf("%q", got)
	}
}

func TestParseState(t *testing.T) {
	for in, want := range map[string]State{"none": None, "Pass": Pass, "FAIL": Fail} {
		if got, ok := ParseState(in); !ok || got != want {
			t.Errorf("%q: %q %v", in, got, ok)
		}
	}
	if _, ok := ParseState(":)"); ok {
		t.Error(":) parsed")
	}
	if !Pass.Valid() || State("temperror").Valid() || Pass.String() != "pass" {
		t.Error("Valid/String")
	}
}

// TestManySignedFields: an AMS listing thousands of names over thousands
// of fields is verified in linear time.
func TestManySignedFields(t *testing.T) {
	var hdr strings.Builder
	var names []string
	for i := 0; i < 5000; i++ {
		fmt.Fprintf(&hdr, "X-Trace: %d\r\n", i)
		names = append(names, "x-trace", fmt.Sprintf("+x-absent-%d", i))
	}
	msg := []byte(hdr.String() + testMessage)
	s := &Signer{Domain: "big.example", Selector: "s", Key: testEdKey(9), Now: fixedNow, Headers: names}
	zone := publish(t, dnstest.NewZone(), s)
	v := &Validator{DNS: zone, Now: fixedNow}
	start := time.Now()
	msg = sealAll(t, v, msg, s)
	c := validate(t, v, msg)
	if c.State != Pass {
		t.Fatalf("%s (%s)", c.State, c.Reason)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
}

// TestConcurrentValidation: one Validator shared by many goroutines (run
// with -race).
func TestConcurrentValidation(t *testing.T) {
	signers := threeSealers(t)
	zone := publish(t, dnstest.NewZone(), signers...)
	v := &Validator{DNS: zone, Now: fixedNow}
	good := sealAll(t, v, []byte(testMessage), signers...)
	bad := corruptSeal(t, good, 2)
	errs := make(chan error, 16)
	for g := 0; g < 16; g++ {
		go func(g int) {
			msg, want := good, Pass
			if g%2 == 1 {
				msg, want = bad, Fail
			}
			for i := 0; i < 5; i++ {
				c, err := v.Validate(context.Background(), bytes.NewReader(msg))
				if err != nil || c.State != want {
					errs <- fmt.Errorf("goroutine %d: %v %v", g, c.State, err)
					return
				}
			}
			errs <- nil
		}(g)
	}
	for g := 0; g < 16; g++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// TestAMSCanonicalisationFallback: an AMS without c= that verifies only
// with relaxed header canonicalisation passes (signers written to the ARC
// drafts; the suite's ams_fields_c_na), while one that names
// c=simple/simple gets no such second chance.
func TestAMSCanonicalisationFallback(t *testing.T) {
	for _, tc := range []struct {
		cTag   string
		want   State
		reason string
	}{
		{"", Pass, ""},
		{"-", Pass, ""},
		{"simple/simple", Fail, "signature did not verify"},
	} {
		s := &Signer{Domain: "lists.example", Selector: "s", Key: testRSAKey(t), Now: fixedNow, amsCTag: tc.cTag}
		v := &Validator{DNS: publish(t, dnstest.NewZone(), s), Now: fixedNow}
		// A body that is the same under both body canonicalisations, so
		// that only the header hash tells them apart.
		hdr, _, _ := strings.Cut(testMessage, "\r\n\r\n")
		msg := sealAll(t, v, []byte(hdr+"\r\n\r\nHello.\r\n"), s)
		if tc.cTag == "-" && bytes.Contains(msg, []byte(" c=")) {
			t.Fatalf("c= not removed:\n%s", msg)
		}
		c := validate(t, v, msg)
		if c.State != tc.want || !strings.Contains(c.Reason, tc.reason) {
			t.Errorf("c=%q: %s (%s), want %s (%s)", tc.cTag, c.State, c.Reason, tc.want, tc.reason)
		}
	}
}
