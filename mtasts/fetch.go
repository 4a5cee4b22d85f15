package mtasts

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"time"
)

// DefaultFetchTimeout bounds one policy fetch: connection, TLS handshake,
// request and body.
const DefaultFetchTimeout = 10 * time.Second

// Fetch errors. A fetch error wraps ErrFetch, and also ErrTemporary when
// trying again later may succeed (network errors, timeouts, HTTP 5xx).
var (
	ErrFetch     = errors.New("MTA-STS policy fetch failed")
	ErrTemporary = errors.New("temporary failure")
	ErrRedirect  = errors.New("redirect refused (RFC 8461 §3.3)")
	// A permanent fetch error wraps ErrWebPKI when the policy host's
	// certificate did not validate, ErrPolicyInvalid when the answer was
	// no valid policy (media type, size, syntax): RFC 8460's
	// sts-webpki-invalid and sts-policy-invalid.
	ErrWebPKI        = errors.New("PKIX validation failed")
	ErrPolicyInvalid = errors.New("invalid policy")
)

// PolicyURL is where a domain's policy is published (RFC 8461 §3.3).
func PolicyURL(domain string) string {
	return "https://mta-sts." + domain + "/.well-known/mta-sts.txt"
}

// NewHTTPClient returns the client Fetch is meant for: PKIX validation
// against roots (nil: the system's roots), TLS 1.2 or later, no
// redirects, no proxy, no keep-alive between fetches, and timeout for the
// whole exchange (DefaultFetchTimeout when zero).
func NewHTTPClient(roots *x509.CertPool, timeout time.Duration) *http.Client {
	if timeout <= 0 {
		timeout = DefaultFetchTimeout
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            (&net.Dialer{Timeout: timeout}).DialContext,
		TLSClientConfig:        &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:    timeout,
		ResponseHeaderTimeout:  timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: 16 << 10,
	}
	return &http.Client{Transport: tr, Timeout: timeout, CheckRedirect: noRedirects}
}

func noRedirects(*http.Request, []*http.Request) error { return ErrRedirect }

// LoadRoots reads PEM certificates from file, for private test beds
// (mta_sts_ca_file). An empty file name gives nil: the system's roots.
func LoadRoots(file string) (*x509.CertPool, error) {
	if file == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", file)
	}
	return pool, nil
}

// Fetch gets and parses a domain's policy with client (which should come
// from NewHTTPClient: Fetch refuses redirects itself too). It accepts only
// a 200 answer of media type text/plain and at most MaxPolicySize octets.
// It returns the body as well, for the cache file.
func Fetch(ctx context.Context, client *http.Client, domain string) (*Policy, []byte, error) {
	fail := func(temp bool, format string, a ...any) (*Policy, []byte, error) {
		err := fmt.Errorf("%w: %s: %s", ErrFetch, PolicyURL(domain), fmt.Sprintf(format, a...))
		if temp {
			err = fmt.Errorf("%w (%w)", err, ErrTemporary)
		}
		return nil, nil, err
	}
	failAs := func(kind error, format string, a ...any) (*Policy, []byte, error) {
		_, _, err := fail(false, format, a...)
		return nil, nil, fmt.Errorf("%w (%w)", err, kind)
	}
	if client.Timeout > 0 {
		// A deadline of our own, started before the client's: a body cut
		// short by the client's timeout can end as if complete (an
		// HTTP/2 stream closed cleanly after the reset), and must not be
		// taken for a policy.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, client.Timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, PolicyURL(domain), nil)
	if err != nil {
		return fail(false, "%v", err)
	}
	req.Header.Set("User-Agent", "sidecar-mtasts")
	c := *client
	if c.CheckRedirect == nil {
		c.CheckRedirect = noRedirects
	}
	resp, err := c.Do(req)
	if err != nil {
		if errors.Is(err, ErrRedirect) {
			return fail(false, "redirect refused (RFC 8461 §3.3)")
		}
		var de *net.DNSError
		if errors.As(err, &de) && de.IsNotFound {
			return fail(false, "policy host: %v", de)
		}
		var cv *tls.CertificateVerificationError
		if errors.As(err, &cv) {
			return failAs(ErrWebPKI, "certificate: %v", cv.Err)
		}
		var ne net.Error
		if errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout() {
			return fail(true, "Timeout: %v", err)
		}
		return fail(true, "%v", err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode >= 500:
		return fail(true, "HTTP status %s", resp.Status)
	case resp.StatusCode != http.StatusOK:
		return fail(false, "HTTP status %s (RFC 8461 §3.3 accepts only 200)", resp.Status)
	}
	mt, _, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" {
		return failAs(ErrPolicyInvalid, "media type %q, want text/plain", resp.Header.Get("Content-Type"))
	}
	if resp.ContentLength > MaxPolicySize {
		return failAs(ErrPolicyInvalid, "policy of %d octets, above %d", resp.ContentLength, MaxPolicySize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxPolicySize+1))
	if err == nil && ctx.Err() != nil {
		err = fmt.Errorf("Timeout: the body did not end within %v", client.Timeout)
	}
	if err != nil {
		return fail(true, "reading the body: %v", err)
	}
	if len(body) > MaxPolicySize {
		return failAs(ErrPolicyInvalid, "policy larger than %d octets", MaxPolicySize)
	}
	p, err := ParsePolicy(body)
	if err != nil {
		return failAs(ErrPolicyInvalid, "%v", err)
	}
	return p, body, nil
}
