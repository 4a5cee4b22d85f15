package checks

import (
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/stage"
)

// hostileDKIMMessage is issue 13's attack message: fields short header
// fields and one DKIM-Signature whose h= lists names names, a key in the
// sender's own DNS, a correct bh= and a garbage b=. go-msgauth v0.7.0's
// verifier rescanned the whole header for every name in h=: 1 MB cost
// 45 s of CPU through the milter.
func hostileDKIMMessage(fields, names int) string {
	var b strings.Builder
	h := make([]string, names)
	for i := range h {
		h[i] = fmt.Sprintf("x%d", i%97)
	}
	body := "hello\r\n"
	bh := sha256.Sum256([]byte(body))
	fmt.Fprintf(&b, "DKIM-Signature: v=1; a=rsa-sha256; d=sender.example; s=rsa; c=relaxed/relaxed;\r\n"+
		"\th=from:%s;\r\n\tbh=%s;\r\n\tb=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\r\n",
		strings.Join(h, ":"), base64.StdEncoding.EncodeToString(bh[:]))
	b.WriteString("From: alice@sender.example\r\n")
	for i := 0; i < fields; i++ {
		fmt.Fprintf(&b, "x%d: y\r\n", i%97)
	}
	b.WriteString("\r\n" + body)
	return b.String()
}

// TestHostileDKIMThroughTheDriverIsLinear guards issue 13 item 1 on the
// daemon's path: the attack message, driven through the stage driver with
// every feature (SPF, DKIM, DMARC, ARC, the DATA ACL), costs CPU time
// linear in its size up to the 4 MiB header cap: 4× the message may cost
// at most 10× the CPU, and the largest well under a second.
func TestHostileDKIMThroughTheDriverIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("measures CPU time")
	}
	p := load(t, varsACL)
	svc := svcFor(authZone())
	send := func(msg string) (acl.Result, *acl.Txn) {
		return deliver(t, p, svc, delivery{ip: "192.0.2.5", helo: "h", sender: "alice@sender.example",
			rcpts: []string{"bob@example.org"}, msg: msg})
	}
	small, large := hostileDKIMMessage(30000, 2000), hostileDKIMMessage(120000, 8000)
	if len(large) > stage.MaxHeaderBytes {
		t.Fatalf("%d bytes: over the header cap", len(large))
	}
	if res, txn := send(large); res.Verb != acl.Accept || !strings.Contains(authResults(txn), "dkim=fail") {
		t.Fatalf("verdict %s; %s", res.Verb, authResults(txn))
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	cost := func(msg string) time.Duration {
		best := time.Duration(1 << 62)
		for range 3 {
			runtime.GC()
			start := processCPU()
			send(msg)
			best = min(best, processCPU()-start)
		}
		return best
	}
	cs, cl := cost(small), cost(large)
	ratio := float64(cl) / float64(max(cs, time.Millisecond))
	t.Logf("%d bytes %v, %d bytes %v: ×%.1f", len(small), cs, len(large), cl, ratio)
	if ratio > 10 {
		t.Errorf("4× the message cost ×%.1f the CPU: worse than linear", ratio)
	}
	if cl > time.Second {
		t.Errorf("%d bytes took %v of CPU", len(large), cl)
	}
}
