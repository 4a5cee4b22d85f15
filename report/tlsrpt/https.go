package tlsrpt

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/mailsidecar/sidecar/mtasts"
)

// DeliveryError is a failed delivery to a rua destination; Temporary
// ones are tried again on the next run.
type DeliveryError struct {
	Dest      string
	Temporary bool
	Err       error
}

func (e *DeliveryError) Error() string {
	kind := "refused"
	if e.Temporary {
		kind = "failed, to be tried again"
	}
	return fmt.Sprintf("%s: %s: %v", e.Dest, kind, e.Err)
}

func (e *DeliveryError) Unwrap() error { return e.Err }

// Post sends the gzip'd report to an https: rua (RFC 8460 §5.4): a POST
// with Content-Type application/tlsrpt+gzip. A 2xx answer is success;
// 5xx, 408, 429 and failures without an answer (network, timeout) are
// temporary; any other answer (a redirect, 4xx) and a certificate that
// does not validate are permanent. client should come from
// mtasts.NewResolvingHTTPClient: PKIX validation, no redirects, host
// names through sidecar's resolver.
func Post(ctx context.Context, client *http.Client, u *url.URL, gz []byte) error {
	fail := func(temp bool, err error) error {
		return &DeliveryError{Dest: u.String(), Temporary: temp, Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), bytes.NewReader(gz))
	if err != nil {
		return fail(false, err)
	}
	req.Header.Set("Content-Type", MediaType)
	req.Header.Set("User-Agent", "sidecar-tlsrpt")
	resp, err := client.Do(req)
	if err != nil {
		var cv *tls.CertificateVerificationError
		return fail(!errors.As(err, &cv) && !errors.Is(err, mtasts.ErrRedirect), err)
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch c := resp.StatusCode; {
	case c >= 200 && c < 300:
		return nil
	case c >= 500 || c == http.StatusRequestTimeout || c == http.StatusTooManyRequests:
		return fail(true, fmt.Errorf("HTTP status %s", resp.Status))
	default:
		return fail(false, fmt.Errorf("HTTP status %s", resp.Status))
	}
}
