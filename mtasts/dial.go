package mtasts

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/mailsidecar/sidecar/resolver"
)

// DialFunc is the signature of net.Dialer.DialContext and of
// http.Transport.DialContext.
type DialFunc func(ctx context.Context, network, addr string) (net.Conn, error)

// DialVia returns a DialFunc that looks the host of "host:port" up through
// q — sidecar's own resolver, not the system's — and dials its addresses in
// turn (IPv4 first) with dial (a plain net.Dialer when nil).
//
// A host with neither A nor AAAA records (NXDOMAIN or NODATA for both)
// gives a *net.DNSError with IsNotFound set: the policy host does not
// exist, a permanent failure. A lookup error with no address from the
// other type gives a *net.DNSError with IsTemporary set.
func DialVia(q resolver.Querier, dial DialFunc) DialFunc {
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, port, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, err
		}
		ips, err := lookupHost(ctx, q, host, network)
		if err != nil {
			return nil, err
		}
		var errs []error
		for _, ip := range ips {
			c, err := dial(ctx, network, net.JoinHostPort(ip, port))
			if err == nil {
				return c, nil
			}
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
		}
		return nil, errors.Join(errs...)
	}
}

// lookupHost returns the addresses of host usable over network ("tcp",
// "tcp4", "tcp6"), A records first.
func lookupHost(ctx context.Context, q resolver.Querier, host, network string) ([]string, error) {
	types := []resolver.Type{resolver.TypeA, resolver.TypeAAAA}
	switch network {
	case "tcp4":
		types = types[:1]
	case "tcp6":
		types = types[1:]
	}
	var ips []string
	var failed error
	for _, t := range types {
		ans, err := q.Query(ctx, host, t)
		if err != nil {
			failed = err
			continue
		}
		for _, rec := range ans.Records {
			if rec.IP.IsValid() {
				ips = append(ips, rec.IP.String())
			}
		}
	}
	switch {
	case len(ips) > 0:
		return ips, nil
	case failed != nil:
		return nil, &net.DNSError{Err: failed.Error(), Name: host, IsTemporary: true,
			IsTimeout: errors.Is(failed, resolver.ErrTimeout)}
	}
	return nil, &net.DNSError{Err: "no A or AAAA record", Name: host, IsNotFound: true}
}

// NewResolvingHTTPClient is NewHTTPClient whose connections go to the
// addresses q gives for the policy host (see DialVia).
func NewResolvingHTTPClient(roots *x509.CertPool, timeout time.Duration, q resolver.Querier) *http.Client {
	c := NewHTTPClient(roots, timeout)
	tr := c.Transport.(*http.Transport)
	tr.DialContext = DialVia(q, tr.DialContext)
	return c
}
