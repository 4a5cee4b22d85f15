package dkim

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
)

// The hostile shapes of issue 12 and 13: what an outside sender can
// put in a message to make verification expensive. Each is a function of
// a size n so that the cost can be compared between n and 4n.
type hostileShape struct {
	name string
	// build returns a message of size proportional to n.
	build func(n int) string
	n     int // the size the benchmark uses; the test uses n/4 and n
}

// hostileBody is the body of every hostile message, and hostileBH its
// relaxed body hash, so that verification goes past the body hash to the
// expensive header hash.
const hostileBody = "Hello.\r\n"

func hostileBH() string {
	h := dkimcore.NewBodyHasher(dkimcore.BodyKey{Relaxed: true, Limit: -1})
	h.Write([]byte(hostileBody))
	return base64.StdEncoding.EncodeToString(h.Finish())
}

// garbageB is a b= value of the size of an RSA-2048 signature that is
// not one.
var garbageB = base64.StdEncoding.EncodeToString(sha256.New().Sum(make([]byte, 224)))

func hostileSig(h string) string {
	return "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=sel;\r\n" +
		"\th=" + h + ";\r\n\tbh=" + hostileBH() + ";\r\n\tb=" + garbageB + "\r\n"
}

var hostileShapes = []hostileShape{
	{
		// 80,000 short fields and one signature whose h= lists 8,000
		// names: a tenth of them present many times (over-signed), the
		// rest absent. go-msgauth rescanned the header per name.
		name: "fields×names", n: 80000,
		build: func(n int) string {
			var b strings.Builder
			names := make([]string, 0, n/10)
			for i := 0; i < n/10; i++ {
				if i%10 == 0 {
					names = append(names, fmt.Sprintf("x-%d", i%100))
				} else {
					names = append(names, fmt.Sprintf("x-absent-%d", i))
				}
			}
			b.WriteString(hostileSig("from:" + strings.Join(names, ":")))
			for i := 0; i < n; i++ {
				fmt.Fprintf(&b, "X-%d: %d\r\n", i%100, i)
			}
			b.WriteString("From: a@example.com\r\n\r\n" + hostileBody)
			return b.String()
		},
	},
	{
		// 500 signatures, each listing every field of a large header.
		name: "signatures", n: 500,
		build: func(n int) string {
			var b strings.Builder
			h := "from" + strings.Repeat(":x-trace", 200)
			for i := 0; i < n; i++ {
				b.WriteString(hostileSig(h))
			}
			for i := 0; i < 200; i++ {
				fmt.Fprintf(&b, "X-Trace: %d\r\n", i)
			}
			b.WriteString("From: a@example.com\r\n\r\n" + hostileBody)
			return b.String()
		},
	},
	{
		// A header of n KiB (4 MiB at most, the milter's cap): long
		// folded fields, all signed by a signature listing them all.
		name: "header KiB", n: 4000,
		build: func(n int) string {
			var b strings.Builder
			line := "X-Long: " + strings.Repeat("word  \t", 140) + "\r\n\t" + strings.Repeat("more ", 20) + "\r\n"
			count := n * 1024 / len(line)
			b.WriteString(hostileSig("from" + strings.Repeat(":x-long", count)))
			for i := 0; i < count; i++ {
				b.WriteString(line)
			}
			b.WriteString("From: a@example.com\r\n\r\n" + hostileBody)
			return b.String()
		},
	},
}

func hostileVerifier(t testing.TB) *Verifier {
	rk, _ := testKeys(t)
	z := dnstest.NewZone()
	addTXT(z, "sel._domainkey.example.com", keyRecord(t, rk, ""))
	return &Verifier{DNS: z}
}

// verifyHostile verifies msg and checks that the signatures did not
// pass (b= is garbage) for the reason of a computed header hash.
func verifyHostile(t testing.TB, v *Verifier, msg string) {
	res, err := v.Verify(context.Background(), strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if len(res) == 0 || res[0].Status != Fail || res[0].Reason != "signature did not verify" {
		t.Fatalf("got %+v", res[0])
	}
}

// TestCostIsLinear guards the linear bound of the package doc: for each
// hostile shape, verifying the message of size 4n costs less than 10 times
// the message of size n (linear gives 4; the quadratic selection this
// replaced gave 16). Costs are the least CPU time of a few runs, which
// other processes on the machine do not inflate, with the garbage
// collector off.
func TestCostIsLinear(t *testing.T) {
	if testing.Short() {
		t.Skip("measures CPU time")
	}
	v := hostileVerifier(t)
	for _, sh := range hostileShapes {
		t.Run(sh.name, func(t *testing.T) {
			small, large := sh.build(sh.n/4), sh.build(sh.n)
			if len(large) > MaxHeaderBytes {
				t.Fatalf("%d bytes: over the header cap", len(large))
			}
			// No garbage collection while measuring: its share of the CPU
			// depends on the heap, not on the work measured.
			defer debug.SetGCPercent(debug.SetGCPercent(-1))
			cost := func(msg string) time.Duration {
				best := time.Duration(1 << 62)
				for range 5 {
					runtime.GC()
					start := processCPU()
					verifyHostile(t, v, msg)
					best = min(best, processCPU()-start)
				}
				return best
			}
			cost(small) // warm the key cache and the allocator
			cs, cl := cost(small), cost(large)
			ratio := float64(cl) / float64(max(cs, time.Millisecond))
			t.Logf("%s: %d bytes %v, %d bytes %v: ×%.1f", sh.name, len(small), cs, len(large), cl, ratio)
			if ratio > 10 {
				t.Errorf("4× the size cost ×%.1f the CPU: worse than linear", ratio)
			}
			if cl > 2*time.Second {
				t.Errorf("%d bytes took %v of CPU", len(large), cl)
			}
		})
	}
}

// BenchmarkHostile verifies each hostile shape at its full size (about
// 1 MB, 500 signatures, 4 MiB); MB/s and cpu-µs/op give the linear
// constant.
func BenchmarkHostile(b *testing.B) {
	v := hostileVerifier(b)
	for _, sh := range hostileShapes {
		b.Run(sh.name, func(b *testing.B) {
			msg := sh.build(sh.n)
			b.SetBytes(int64(len(msg)))
			defer reportCPU(b)()
			for b.Loop() {
				verifyHostile(b, v, msg)
			}
		})
	}
}
