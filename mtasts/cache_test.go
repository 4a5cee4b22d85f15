package mtasts

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/fakeclock"
	"github.com/mailsidecar/sidecar/resolver"

	"github.com/mailsidecar/sidecar/internal/testkit/testpki"
)

type cacheBed struct {
	ca   *testpki.CA
	ps   *policyServer
	dns  *txtDNS
	clk  *fakeclock.Clock
	file string
}

func newCacheBed(t *testing.T) *cacheBed {
	ca := testpki.NewCA(t)
	b := &cacheBed{ca: ca, ps: newPolicyServer(t, ca.Leaf(t, "mta-sts.example.test", "mta-sts.other.test")),
		dns: &txtDNS{}, clk: fakeclock.New(time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)),
		file: filepath.Join(t.TempDir(), "mta-sts.json")}
	return b
}

func (b *cacheBed) cache(t *testing.T) *Cache {
	c, err := New(Options{DNS: b.dns, HTTP: b.ps.client(b.ca.Pool, time.Second), File: b.file, Now: b.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func policyText(mode Mode, maxAge int, mx ...string) string {
	s := "version: STSv1\nmode: " + string(mode) + "\n"
	for _, m := range mx {
		s += "mx: " + m + "\n"
	}
	return s + "max_age: " + itoa(maxAge) + "\n"
}

func TestCacheLookup(t *testing.T) {
	b := newCacheBed(t)
	ctx := context.Background()
	const day = 86400
	b.dns.set("_mta-sts.example.test", "v=STSv1; id=one")
	b.ps.set("example.test", serve(policyText(ModeEnforce, day, "mx.example.test")))
	c := b.cache(t)

	check := func(step string, r Result, err error, src Source, mode Mode, id string) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		got := ""
		if r.Policy != nil {
			got = string(r.Policy.Mode)
		}
		if r.Source != src || got != string(mode) || r.ID != id {
			t.Fatalf("%s: source %s mode %q id %q (%s); want %s %q %q", step, r.Source, got, r.ID, r.Reason, src, mode, id)
		}
		t.Logf("%s: %s %s id=%s: %s", step, r.Source, got, r.ID, r.Reason)
	}

	r, err := c.Lookup(ctx, "Example.Test.")
	check("first lookup fetches", r, err, SourceFetched, ModeEnforce, "one")
	if r.TTL != 60*time.Second || !r.Expires.Equal(b.clk.Now().Add(day*time.Second)) {
		t.Errorf("TTL %v, expires %v", r.TTL, r.Expires)
	}
	hits := b.ps.hits.Load()
	r, err = c.Lookup(ctx, "example.test")
	check("same id: the cache", r, err, SourceCache, ModeEnforce, "one")
	if b.ps.hits.Load() != hits {
		t.Error("same id fetched again")
	}

	// A DNS failure never turns the cached enforce into nothing.
	b.dns.fail("_mta-sts.example.test", resolver.ErrServFail)
	r, err = c.Lookup(ctx, "example.test")
	check("TXT SERVFAIL", r, err, SourceKept, ModeEnforce, "one")
	// The TXT record gone: the policy applies until it expires.
	b.dns.set("_mta-sts.example.test")
	r, err = c.Lookup(ctx, "example.test")
	check("TXT gone", r, err, SourceKept, ModeEnforce, "one")

	// A new id with a failing server: the cached policy is kept.
	b.dns.set("_mta-sts.example.test", "v=STSv1; id=two")
	b.ps.set("example.test", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) })
	r, err = c.Lookup(ctx, "example.test")
	check("new id, 500", r, err, SourceKept, ModeEnforce, "one")
	// ... and with an invalid new policy.
	b.ps.set("example.test", serve("version: STSv1\nmode: enforce\nmx: *.*.bad\nmax_age: 1\n"))
	r, err = c.Lookup(ctx, "example.test")
	check("new id, invalid policy", r, err, SourceKept, ModeEnforce, "one")
	if !strings.Contains(r.Reason, "wildcard") {
		t.Errorf("reason %q does not say why the new policy was refused", r.Reason)
	}
	// A new id with a good policy: fetched, testing now.
	b.ps.set("example.test", serve(policyText(ModeTesting, day, "*.example.test")))
	r, err = c.Lookup(ctx, "example.test")
	check("new id", r, err, SourceFetched, ModeTesting, "two")

	// Past max_age with the server down and the TXT failing: nothing to
	// keep, so a temporary failure, never "no policy".
	b.clk.Add(day*time.Second + time.Second)
	b.dns.fail("_mta-sts.example.test", resolver.ErrTimeout)
	if r, err := c.Lookup(ctx, "example.test"); !errors.Is(err, ErrTemporary) {
		t.Fatalf("expired, TXT timeout: %+v, %v; want ErrTemporary", r, err)
	}
	b.dns.set("_mta-sts.example.test", "v=STSv1; id=two")
	b.ps.set("example.test", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 503) })
	if r, err := c.Lookup(ctx, "example.test"); !errors.Is(err, ErrTemporary) {
		t.Fatalf("expired, 503: %+v, %v; want ErrTemporary", r, err)
	}
	// A permanent failure with nothing cached: no policy (RFC 8461 §3.3).
	b.ps.set("example.test", http.NotFound)
	r, err = c.Lookup(ctx, "example.test")
	check("expired, 404", r, err, SourceNone, "", "")
	// No TXT record at all.
	r, err = c.Lookup(ctx, "nosts.test")
	check("no TXT", r, err, SourceNone, "", "")
	if !strings.Contains(r.Reason, "no MTA-STS TXT record") {
		t.Errorf("reason %q", r.Reason)
	}
	// Two records: no policy.
	b.dns.set("_mta-sts.other.test", "v=STSv1; id=a", "v=STSv1; id=b")
	r, err = c.Lookup(ctx, "other.test")
	check("two TXT records", r, err, SourceNone, "", "")
}

// TestCachePersistsAndRefreshes: the policies survive a restart through
// the file; a refresh before expiry extends them, a failed one keeps them;
// an expired policy is dropped.
func TestCachePersistsAndRefreshes(t *testing.T) {
	b := newCacheBed(t)
	ctx := context.Background()
	const maxAge = 4 * 3600
	b.dns.set("_mta-sts.example.test", "v=STSv1; id=one")
	b.ps.set("example.test", serve(policyText(ModeEnforce, maxAge, "mx.example.test", "*.mx.example.test")))
	c := b.cache(t)
	if _, err := c.Lookup(ctx, "example.test"); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(b.file)
	if err != nil || !strings.Contains(string(data), "*.mx.example.test") {
		t.Fatalf("cache file: %v\n%s", err, data)
	}

	// A restart with the HTTPS server and the DNS down: the policy is there.
	b.ps.set("example.test", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "down", 500) })
	b.dns.fail("_mta-sts.example.test", resolver.ErrServFail)
	c2 := b.cache(t)
	r, err := c2.Lookup(ctx, "example.test")
	if err != nil || r.Policy == nil || r.Policy.Mode != ModeEnforce || len(r.Policy.MX) != 2 || r.Source != SourceKept {
		t.Fatalf("after restart: %+v, %v", r, err)
	}

	// Not due yet: nothing refreshed.
	if n, errs := c2.Refresh(ctx); n != 0 || len(errs) != 0 {
		t.Fatalf("refresh before due: %d %v", n, errs)
	}
	// Due (half of max_age), the server failing: the policy is kept.
	b.clk.Add(maxAge / 2 * time.Second)
	b.dns.set("_mta-sts.example.test", "v=STSv1; id=one")
	n, errs := c2.Refresh(ctx)
	if n != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), "kept") {
		t.Fatalf("failed refresh: %d %v", n, errs)
	}
	if e := c2.Entries(); len(e) != 1 || e[0].Policy.Mode != ModeEnforce {
		t.Fatalf("failed refresh dropped the policy: %+v", e)
	}
	// The server back: retried after RetryInterval, and the expiry moves.
	b.ps.set("example.test", serve(policyText(ModeEnforce, maxAge, "mx.example.test")))
	if n, _ := c2.Refresh(ctx); n != 0 {
		t.Fatal("retried before RetryInterval")
	}
	b.clk.Add(RetryInterval)
	if n, errs := c2.Refresh(ctx); n != 1 || len(errs) != 0 {
		t.Fatalf("refresh: %d %v", n, errs)
	}
	e := c2.Entries()
	if len(e) != 1 || !e[0].Expires().Equal(b.clk.Now().Add(maxAge*time.Second)) || len(e[0].Policy.MX) != 1 {
		t.Fatalf("after refresh: %+v", e)
	}
	// The refreshed policy is in the file.
	c3 := b.cache(t)
	if e := c3.Entries(); len(e) != 1 || len(e[0].Policy.MX) != 1 {
		t.Fatalf("file after refresh: %+v", e)
	}
	// Expired, never refreshed: dropped, and gone from the file.
	b.clk.Add(maxAge*time.Second + time.Second)
	c3.Refresh(ctx)
	if e := c3.Entries(); len(e) != 0 {
		t.Fatalf("expired entry kept: %+v", e)
	}
	if c4 := b.cache(t); len(c4.Entries()) != 0 {
		t.Fatal("expired entry loaded")
	}
}

// TestCacheLookupRefreshesInBackground: a lookup of a policy due for
// refresh answers from the cache at once and refreshes it behind.
func TestCacheLookupRefreshesInBackground(t *testing.T) {
	b := newCacheBed(t)
	ctx := context.Background()
	b.dns.set("_mta-sts.example.test", "v=STSv1; id=one")
	b.ps.set("example.test", serve(policyText(ModeEnforce, 3600, "mx.example.test")))
	c := b.cache(t)
	c.Lookup(ctx, "example.test")
	hits := b.ps.hits.Load()
	b.clk.Add(1800 * time.Second)
	r, err := c.Lookup(ctx, "example.test")
	if err != nil || r.Source != SourceCache {
		t.Fatalf("%+v %v", r, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if e := c.Entries(); len(e) == 1 && e[0].Fetched.Equal(b.clk.Now()) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no background refresh: %d hits before, %d after", hits, b.ps.hits.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestCacheFileHostile: a damaged cache file gives an error and an empty,
// working cache; invalid entries are skipped.
func TestCacheFileHostile(t *testing.T) {
	b := newCacheBed(t)
	for name, content := range map[string]string{
		"not JSON":      "{{{",
		"wrong version": `{"version":2,"entries":[]}`,
		"bad entries": `{"version":1,"entries":[{"domain":"a.test","id":"x","fetched":"2026-11-01T11:00:00Z","policy":"version: STSv1\nmode: enforce\nmx: *.*.a\nmax_age: 100000\n"},
			{"domain":"b.test","id":"x","fetched":"2026-11-01T11:00:00Z","policy":"version: STSv1\nmode: enforce\nmx: mx.b.test\nmax_age: 100000\n"}]}`,
	} {
		os.WriteFile(b.file, []byte(content), 0o600)
		c, err := New(Options{DNS: b.dns, File: b.file, Now: b.clk.Now})
		if err == nil || c == nil {
			t.Errorf("%s: no error", name)
			continue
		}
		if name == "bad entries" && (len(c.Entries()) != 1 || c.Entries()[0].Domain != "b.test") {
			t.Errorf("%s: entries %+v", name, c.Entries())
		}
		t.Logf("%s: %v", name, err)
	}
}
