package dkim

import (
	"bytes"
	"strings"
	"testing"

	msgdkim "github.com/emersion/go-msgauth/dkim"
)

// FuzzDifferential compares the core with go-msgauth on arbitrary
// messages, seeded with signed ones so that mutations reach the body
// hash, header selection and signature checks. Inputs in the classes
// where the core refuses (or accepts) what go-msgauth does not, because
// an RFC says so (README.md, "DKIM verification"), are left out by
// knownDeviation. Crashers are kept in testdata/fuzz/FuzzDifferential
// and replayed by go test.
func FuzzDifferential(f *testing.F) {
	rk, ek := testKeys(f)
	for _, o := range []*msgdkim.SignOptions{
		{Domain: "example.com", Selector: "rsa", Signer: rk, HeaderCanonicalization: msgdkim.CanonicalizationRelaxed, BodyCanonicalization: msgdkim.CanonicalizationRelaxed},
		{Domain: "example.com", Selector: "ed", Signer: ek},
		{Domain: "example.com", Selector: "ed", Signer: ek, HeaderKeys: []string{"From", "From", "Subject", "X-Absent"}, HeaderCanonicalization: msgdkim.CanonicalizationRelaxed},
	} {
		f.Add([]byte(sign(f, message, o)))
	}
	f.Add([]byte("DKIM-Signature: v=1; a=ed25519-sha256; d=example.com; s=ed; h=from; bh=; b=\r\nFrom: a\r\n\r\n"))
	z := diffZone(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) > 64<<10 || knownDeviation(msg) {
			return
		}
		ours := verify(t, &Verifier{DNS: z}, string(msg))
		theirs := oracle(t, z, string(msg))
		for i := range min(len(ours), len(theirs)) {
			if strictReason(ours[i]) {
				ours[i] = theirs[i] // a refusal the RFC asks for: listed in the README
			}
		}
		if d := sameVerdict(ours, theirs); d != "" {
			t.Fatalf("%s\n%q", d, msg)
		}
	})
}

// knownDeviation reports whether msg holds what RFC 5322 does not allow
// in a message and the two verifiers read differently: a CR not followed
// by LF, a header line without a colon or with an empty or non-printable
// field name, bytes that go-msgauth takes for Unicode white space
// (it strips them from tags; RFC 6376 FWS is SP, HTAB and CRLF only).
func knownDeviation(msg []byte) bool {
	for i, c := range msg {
		if c == '\r' && (i+1 == len(msg) || msg[i+1] != '\n') || c == '\v' || c == '\f' || c >= 0x80 || c == 0 {
			return true
		}
	}
	head, _, _ := bytes.Cut(msg, []byte("\n\r\n"))
	head, _, _ = bytes.Cut(head, []byte("\n\n"))
	for i, line := range strings.Split(string(head), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" || (line[0] == ' ' || line[0] == '\t') && i > 0 {
			continue
		}
		name, _, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		if !ok || name == "" || strings.ContainsAny(name, " \t") {
			return true
		}
	}
	return false
}

// strictReason reports whether our result is a refusal RFC 6376 asks for
// where go-msgauth is lenient: tag-list syntax (§3.2), t= and x= of 1 to
// 12 digits (§3.5), c= with an unknown part (§3.5), i= without "@"
// (§3.5), a key record whose v= is not first (§3.6.1).
func strictReason(r Result) bool {
	if r.Status != PermError {
		return false
	}
	for _, p := range []string{"malformed signature tags", "malformed t=", "malformed x=", "x= (expiration) is not after",
		"unsupported header canonicalization", "unsupported body canonicalization", "domain mismatch", "incompatible public key version"} {
		if strings.HasPrefix(r.Reason, p) {
			return true
		}
	}
	return false
}
