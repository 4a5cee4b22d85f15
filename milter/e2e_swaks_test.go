package milter

import (
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
)

// e2eMTA is a running MTA with our milter in front of it.
type e2eMTA struct {
	name        string
	swaks       string // path of swaks
	smtp, smtp6 string // host:port of its SMTP listeners; smtp6 "" without ::1
	sendmail    bool
}

// swaks sends one message through the MTA at addr and returns the
// server's replies (see swaksReplies) and the transcript.
func (mta e2eMTA) send(t *testing.T, addr, from, to, token string, extra ...string) ([]string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	args := []string{"--server", host, "--port", port, "--helo", "client.example.org",
		"--from", from, "--to", to,
		"--header", "Subject: " + token, "--add-header", "X-Tag: " + token,
		"--body", "Hello from the end-to-end test.\n"}
	if strings.Contains(host, ":") {
		args = append(args, "-6")
	}
	transcript, _ := swaksRun(t, mta.swaks, append(args, extra...)...)
	if strings.Contains(transcript, "IPv6 not available") {
		e2eSkip(t, "swaks cannot speak IPv6: install libio-socket-inet6-perl")
	}
	return swaksReplies(transcript), transcript
}

// wantReplies checks that the replies, in order, match the given patterns
// (other replies may come between them). A pattern is a prefix of the
// reply, or "PREFIX|TEXT": the reply starts with PREFIX and contains TEXT
// (Sendmail puts "<address>... " between the code and a milter's text).
func wantReplies(t *testing.T, transcript string, replies []string, prefixes ...string) {
	t.Helper()
	i := 0
	for _, r := range replies {
		if i == len(prefixes) {
			break
		}
		prefix, text, _ := strings.Cut(prefixes[i], "|")
		if strings.HasPrefix(r, prefix) && strings.Contains(r, text) {
			i++
		}
	}
	if i < len(prefixes) {
		t.Fatalf("SMTP replies lack %q (after %q):\n%s", prefixes[i], prefixes[:i], transcript)
	}
}

// checkAR checks that the message carries exactly one
// Authentication-Results header with our authserv-id, with the SPF result
// and domain given, as the first field of the header block (above the
// MTA's own Received, with Postfix and with Sendmail).
func checkAR(t *testing.T, mta e2eMTA, fields []string, spf, domain string) {
	t.Helper()
	ours, first := ourAR(fields)
	if len(ours) != 1 {
		t.Fatalf("%d Authentication-Results headers with our authserv-id, want 1:\n%s", len(ours), strings.Join(fields, "\n"))
	}
	if clause := arClause(ours[0], "spf"); !strings.HasPrefix(clause, "spf="+spf+" ") || !strings.HasSuffix(clause, " smtp.mailfrom="+domain) {
		t.Errorf("our Authentication-Results %q: SPF clause %q, want spf=%s … smtp.mailfrom=%s", ours[0], clause, spf, domain)
	}
	if first != 0 {
		t.Errorf("our Authentication-Results is field %d, not at the top:\n%s", first, strings.Join(fields, "\n"))
	}
}

// arClause returns the result clause of a method ("spf=pass reason=…
// smtp.mailfrom=…") of an Authentication-Results field, "" if none.
func arClause(field, method string) string {
	var clauses []string
	start, quoted := 0, false
	for i := 0; i < len(field); i++ {
		switch field[i] {
		case '\\':
			i++
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				clauses = append(clauses, strings.TrimSpace(field[start:i]))
				start = i + 1
			}
		}
	}
	clauses = append(clauses, strings.TrimSpace(field[start:]))
	for _, c := range clauses[1:] {
		if strings.HasPrefix(c, method+"=") {
			return c
		}
	}
	return ""
}

// checkSidecar checks the X-Sidecar header the DATA ACL added.
func checkSidecar(t *testing.T, fields []string, want string) {
	t.Helper()
	got := fieldsNamed(fields, "X-Sidecar")
	if len(got) != 1 || got[0] != "X-Sidecar: "+want {
		t.Errorf("X-Sidecar headers %q, want [%q]", got, "X-Sidecar: "+want)
	}
}

func runE2EScenarios(t *testing.T, mta e2eMTA, m *e2eMilter, sink *e2eSink) {
	const rcpt = "rcpt@dest.example"

	t.Run("spf-pass", func(t *testing.T) {
		token := e2eToken(t, mta.name, "spf-pass")
		replies, tr := mta.send(t, mta.smtp, "alice@spf-pass.example", rcpt, token)
		wantReplies(t, tr, replies, "220", "250", "250", "250", "354", "250", "221")
		fields, _ := sink.wait(t, token)
		checkAR(t, mta, fields, "pass", "spf-pass.example")
		checkSidecar(t, fields, fmt.Sprintf("client=127.0.0.1 helo=client.example.org from=alice@spf-pass.example rcpts=<%s> tag=<%s> spf=pass", rcpt, token))
	})

	t.Run("spf-fail-annotated", func(t *testing.T) {
		token := e2eToken(t, mta.name, "spf-fail")
		replies, tr := mta.send(t, mta.smtp, "mallory@spf-fail.example", rcpt, token)
		wantReplies(t, tr, replies, "220", "250", "250", "250", "354", "250")
		fields, _ := sink.wait(t, token)
		checkAR(t, mta, fields, "fail", "spf-fail.example")
	})

	t.Run("spf-fail-denied", func(t *testing.T) {
		m.use(m.deny)
		defer m.use(m.annotate)
		token := e2eToken(t, mta.name, "spf-deny")
		replies, tr := mta.send(t, mta.smtp, "mallory@spf-fail.example", rcpt, token)
		// Refused at MAIL FROM with the ACL's message; no DATA follows.
		wantReplies(t, tr, replies, "220", "250", "!550 5.7.23 |SPF check failed for spf-fail.example")
		for _, r := range replies {
			if strings.HasPrefix(r, "354") {
				t.Errorf("DATA was accepted after the sender was refused:\n%s", tr)
			}
		}
		// The same configuration lets an SPF pass through.
		token = e2eToken(t, mta.name, "spf-deny-pass")
		replies, tr = mta.send(t, mta.smtp, "alice@spf-pass.example", rcpt, token)
		wantReplies(t, tr, replies, "220", "250", "250", "250", "354", "250")
		fields, _ := sink.wait(t, token)
		checkAR(t, mta, fields, "pass", "spf-pass.example")
	})

	t.Run("rejected-then-accepted-recipient", func(t *testing.T) {
		token := e2eToken(t, mta.name, "rcpts")
		replies, tr := mta.send(t, mta.smtp, "alice@spf-pass.example", "nobody@dest.example,"+rcpt, token)
		wantReplies(t, tr, replies, "220", "250", "250",
			"!550 5.1.1 |<nobody@dest.example>: no such user here", "250", "354", "250")
		fields, _ := sink.wait(t, token)
		// MAIL FROM, HELO and the client survive the refused recipient.
		checkAR(t, mta, fields, "pass", "spf-pass.example")
		checkSidecar(t, fields, fmt.Sprintf("client=127.0.0.1 helo=client.example.org from=alice@spf-pass.example rcpts=<%s> tag=<%s> spf=pass", rcpt, token))
	})

	t.Run("two-messages-one-connection", func(t *testing.T) {
		c := dialSMTP(t, mta.smtp)
		c.must(250, "EHLO client.example.org")
		tok1, tok2 := e2eToken(t, mta.name, "first"), e2eToken(t, mta.name, "second")
		// The first message carries X-Tag, the second does not: a header
		// of the first must not leak into the second (Sendmail sends no
		// ABORT between them).
		msg1 := "From: <alice@spf-pass.example>\r\nTo: <" + rcpt + ">\r\nSubject: " + tok1 + "\r\nX-Tag: " + tok1 + "\r\n\r\nfirst\r\n"
		msg2 := "From: <mallory@spf-fail.example>\r\nTo: <" + rcpt + ">\r\nSubject: " + tok2 + "\r\n\r\nsecond\r\n"
		if code, text := c.send("alice@spf-pass.example", []string{rcpt}, msg1); code != 250 {
			t.Fatalf("first message: %d %s", code, text)
		}
		if code, text := c.send("mallory@spf-fail.example", []string{rcpt}, msg2); code != 250 {
			t.Fatalf("second message: %d %s", code, text)
		}
		c.must(221, "QUIT")
		f1, _ := sink.wait(t, tok1)
		checkAR(t, mta, f1, "pass", "spf-pass.example")
		checkSidecar(t, f1, fmt.Sprintf("client=127.0.0.1 helo=client.example.org from=alice@spf-pass.example rcpts=<%s> tag=<%s> spf=pass", rcpt, tok1))
		f2, _ := sink.wait(t, tok2)
		checkAR(t, mta, f2, "fail", "spf-fail.example")
		checkSidecar(t, f2, fmt.Sprintf("client=127.0.0.1 helo=client.example.org from=mallory@spf-fail.example rcpts=<%s> tag=<> spf=fail", rcpt))
	})

	t.Run("forged-authentication-results", func(t *testing.T) {
		token := e2eToken(t, mta.name, "forged")
		replies, tr := mta.send(t, mta.smtp, "mallory@spf-fail.example", rcpt, token,
			"--add-header", "Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=spf-fail.example",
			"--add-header", "Authentication-Results: forged.example; dmarc=pass header.from=spf-fail.example",
			"--add-header", "Authentication-Results: other.example; dkim=pass header.d=spf-fail.example")
		wantReplies(t, tr, replies, "220", "250", "250", "250", "354", "250")
		fields, _ := sink.wait(t, token)
		// Ours says fail; the forged pass under our id and the one under
		// an id of authres_strip_ids are gone; another host's stays.
		checkAR(t, mta, fields, "fail", "spf-fail.example")
		ars := fieldsNamed(fields, "Authentication-Results")
		for _, f := range ars {
			if strings.Contains(f, "forged.example") {
				t.Errorf("A-R of authres_strip_ids kept: %q", f)
			}
		}
		if !slices.Contains(ars, "Authentication-Results: other.example; dkim=pass header.d=spf-fail.example") {
			t.Errorf("another host's A-R was removed: %q", ars)
		}
		if len(ars) != 2 {
			t.Errorf("A-R headers %q, want ours and other.example's", ars)
		}
	})

	t.Run("ipv6-client", func(t *testing.T) {
		if mta.smtp6 == "" {
			e2eSkip(t, "%s: ::1 cannot be bound here", t.Name())
		}
		token := e2eToken(t, mta.name, "ipv6")
		replies, tr := mta.send(t, mta.smtp6, "alice@spf-pass.example", rcpt, token)
		wantReplies(t, tr, replies, "220", "250", "250", "250", "354", "250")
		fields, _ := sink.wait(t, token)
		checkAR(t, mta, fields, "pass", "spf-pass.example")
		checkSidecar(t, fields, fmt.Sprintf("client=::1 helo=client.example.org from=alice@spf-pass.example rcpts=<%s> tag=<%s> spf=pass", rcpt, token))
	})
}
