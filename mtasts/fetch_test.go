package mtasts

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/testpki"
)

const goodPolicy = "version: STSv1\nmode: enforce\nmx: mx1.example.test\nmx: *.mx.example.test\nmax_age: 86400\n"

// TestFetchHostile: the fetch accepts a policy only as RFC 8461 §3.3
// says, and refuses every hostile answer with its reason; a hostile
// server cannot make it read more than MaxPolicySize octets or wait past
// the timeout.
func TestFetchHostile(t *testing.T) {
	ca := testpki.NewCA(t)
	ps := newPolicyServer(t, ca.Leaf(t, "mta-sts.good.test", "mta-sts.redirect.test", "mta-sts.type.test",
		"mta-sts.huge.test", "mta-sts.hugecl.test", "mta-sts.missing.test", "mta-sts.error.test",
		"mta-sts.slow.test", "mta-sts.slowbody.test", "mta-sts.badage.test", "mta-sts.wild.test", "mta-sts.html.test"))
	ps.set("good.test", serve(goodPolicy))
	ps.set("redirect.test", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "https://mta-sts.good.test/.well-known/mta-sts.txt", http.StatusFound)
	})
	ps.set("type.test", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte(goodPolicy))
	})
	huge := goodPolicy + strings.Repeat("x: y\n", MaxPolicySize/5+1)
	ps.set("huge.test", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.(http.Flusher).Flush() // chunked: no Content-Length to refuse early
		for i := 0; i < 1000; i++ {
			if _, err := w.Write([]byte(huge)); err != nil {
				return
			}
		}
	})
	ps.set("hugecl.test", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", strconv.Itoa(len(huge)))
		w.Write([]byte(huge))
	})
	ps.set("missing.test", http.NotFound)
	ps.set("error.test", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "busy", http.StatusServiceUnavailable) })
	ps.set("slow.test", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	ps.set("slowbody.test", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte("version: STSv1\n"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	ps.set("badage.test", serve("version: STSv1\nmode: enforce\nmx: a.test\nmax_age: 31557601\n"))
	ps.set("wild.test", serve("version: STSv1\nmode: enforce\nmx: mail.*.test\nmax_age: 86400\n"))
	ps.set("html.test", serve("<html>policy</html>"))

	const timeout = 400 * time.Millisecond
	client := ps.client(ca.Pool, timeout)
	tests := []struct {
		domain string
		why    string // "" for success
		temp   bool
	}{
		{"good.test", "", false},
		{"redirect.test", "redirect refused", false},
		{"type.test", `media type "text/html"`, false},
		{"huge.test", "larger than 65536", false},
		{"hugecl.test", "above 65536", false},
		{"missing.test", "404", false},
		{"error.test", "503", true},
		{"slow.test", "Timeout", true},
		{"slowbody.test", "", true},
		{"badage.test", "above 31557600", false},
		{"wild.test", "wildcard", false},
		{"html.test", "line 1", false},
	}
	for _, tt := range tests {
		t.Run(tt.domain, func(t *testing.T) {
			start := time.Now()
			p, body, err := Fetch(context.Background(), client, tt.domain)
			if took := time.Since(start); took > timeout+time.Second {
				t.Errorf("took %v, past the %v timeout", took, timeout)
			}
			if tt.why == "" && !tt.temp {
				if err != nil || p.Mode != ModeEnforce || string(body) != goodPolicy {
					t.Fatalf("Fetch = %+v, %v", p, err)
				}
				return
			}
			if err == nil || !errors.Is(err, ErrFetch) || !strings.Contains(err.Error(), tt.why) {
				t.Fatalf("Fetch = %+v, %v; want an error with %q", p, err, tt.why)
			}
			if errors.Is(err, ErrTemporary) != tt.temp {
				t.Errorf("temporary %v, want %v: %v", errors.Is(err, ErrTemporary), tt.temp, err)
			}
			t.Logf("%s: %v", tt.domain, err)
		})
	}

	// A certificate from another CA, and one for another name.
	other := testpki.NewCA(t)
	if _, _, err := Fetch(context.Background(), ps.client(other.Pool, timeout), "good.test"); err == nil ||
		errors.Is(err, ErrTemporary) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted CA: %v", err)
	}
	ps.set("noname.test", serve(goodPolicy))
	if _, _, err := Fetch(context.Background(), client, "noname.test"); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("certificate for another name: %v", err)
	}
	// A client without CheckRedirect still refuses redirects.
	c2 := *client
	c2.CheckRedirect = nil
	if _, _, err := Fetch(context.Background(), &c2, "redirect.test"); err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Errorf("redirect with a default client: %v", err)
	}
	// The kind of each permanent failure, for TLS reports (RFC 8460
	// sts-webpki-invalid, sts-policy-invalid, or neither: a fetch error).
	kinds := []struct {
		domain string
		client *http.Client
		kind   error
	}{
		{"noname.test", client, ErrWebPKI}, {"good.test", ps.client(other.Pool, timeout), ErrWebPKI},
		{"type.test", client, ErrPolicyInvalid}, {"huge.test", client, ErrPolicyInvalid}, {"hugecl.test", client, ErrPolicyInvalid},
		{"badage.test", client, ErrPolicyInvalid}, {"wild.test", client, ErrPolicyInvalid}, {"html.test", client, ErrPolicyInvalid},
		{"missing.test", client, nil}, {"redirect.test", client, nil}, {"error.test", client, nil},
	}
	for _, k := range kinds {
		_, _, err := Fetch(context.Background(), k.client, k.domain)
		webpki, invalid := errors.Is(err, ErrWebPKI), errors.Is(err, ErrPolicyInvalid)
		if err == nil || webpki != (k.kind == ErrWebPKI) || invalid != (k.kind == ErrPolicyInvalid) {
			t.Errorf("%s: %v: webpki %v, invalid policy %v; want %v", k.domain, err, webpki, invalid, k.kind)
		}
	}
}
