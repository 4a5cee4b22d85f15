package aggregate

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/mailsidecar/sidecar/report/mailout"
	"github.com/mailsidecar/sidecar/report/store"
	"github.com/mailsidecar/sidecar/resolver"
)

// Verify is RFC 9990 external destination verification: a report for
// policyDomain may go to a mailbox in another organisation only when
// "<policyDomain>._report._dmarc.<destDomain>" has a TXT record starting
// with "v=DMARC1". Destinations in the policy domain or one of its
// parent or child domains need none. The error wraps ErrTemporary for a
// DNS failure (try again later), ErrNotVerified otherwise.
func Verify(ctx context.Context, dns resolver.Querier, policyDomain, destDomain string) error {
	p, d := strings.ToLower(strings.TrimSuffix(policyDomain, ".")), strings.ToLower(strings.TrimSuffix(destDomain, "."))
	if p == d || strings.HasSuffix(p, "."+d) || strings.HasSuffix(d, "."+p) {
		return nil
	}
	name := p + "._report._dmarc." + d
	ans, err := dns.Query(ctx, name, resolver.TypeTXT)
	if err != nil {
		return fmt.Errorf("%w: %s TXT: %v", ErrTemporary, name, err)
	}
	for _, r := range ans.Records {
		txt := strings.Join(r.TXT, "")
		if len(txt) >= 8 && strings.EqualFold(txt[:8], "v=DMARC1") && (len(txt) == 8 || txt[8] == ';' || txt[8] == ' ') {
			return nil
		}
	}
	return fmt.Errorf("%w: no v=DMARC1 TXT record at %s", ErrNotVerified, name)
}

// Errors of a delivery.
var (
	ErrTemporary   = errors.New("temporary failure")
	ErrNotVerified = errors.New("destination not verified")
	ErrTooLarge    = errors.New("report larger than the destination's size limit")
	ErrRejected    = errors.New("rejected")
)

// Mail is the report mail (RFC 9990 section 5): From the reporter, To the
// destination, the subject "Report Domain: … Submitter: … Report-ID: …",
// a short text part and the gzip file as an application/gzip attachment.
// RFC 7489 section 7.2.1.1 asks for the same subject, media type and
// file name; only the text part names the format's RFC.
func Mail(r *Report, gz []byte, from, to string, now time.Time) []byte {
	var b bytes.Buffer
	_, submitter, _ := strings.Cut(from, "@")
	boundary := randomToken()
	name := r.FileName("")
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", "<"+from+">")
	h("To", "<"+to+">")
	h("Subject", mime.QEncoding.Encode("utf-8", fmt.Sprintf("Report Domain: %s Submitter: %s Report-ID: <%s>", r.Domain(), submitter, r.Metadata.ReportID)))
	h("Date", now.Format(time.RFC1123Z))
	h("Message-ID", "<"+r.Metadata.ReportID+"."+randomToken()[:8]+"@"+submitter+">")
	h("Report-Domain", r.Domain())
	h("Report-ID", "<"+r.Metadata.ReportID+">")
	h("MIME-Version", "1.0")
	h("Content-Type", `multipart/mixed; boundary="`+boundary+`"`)
	fmt.Fprintf(&b, "\r\nThis is a DMARC aggregate report (%s) in MIME format.\r\n", r.Format.RFC())
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", boundary)
	fmt.Fprintf(&b, "DMARC aggregate report for %s from %s\r\nperiod %s to %s (UTC), %d records.\r\n",
		r.Domain(), r.Metadata.OrgName, time.Unix(r.Metadata.DateRange.Begin, 0).UTC().Format(time.RFC3339),
		time.Unix(r.Metadata.DateRange.End, 0).UTC().Format(time.RFC3339), len(r.Records))
	fmt.Fprintf(&b, "\r\n--%s\r\nContent-Type: application/gzip; name=\"%s\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"%s\"\r\n\r\n", boundary, name, name)
	enc := base64.StdEncoding.EncodeToString(gz)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	fmt.Fprintf(&b, "--%s--\r\n", boundary)
	return b.Bytes()
}

func randomToken() string {
	var r [12]byte
	rand.Read(r[:])
	return hex.EncodeToString(r[:])
}

// smtpError maps a failure of mailout to the errors of a delivery: a
// temporary one (4xx, no answer, a configuration to mend) wraps
// ErrTemporary, a permanent refusal (5xx) ErrRejected.
func smtpError(err error) error {
	if err == nil {
		return nil
	}
	if mailout.Temporary(err) {
		return fmt.Errorf("%w: %v", ErrTemporary, err)
	}
	return fmt.Errorf("%w: %v", ErrRejected, err)
}

// Sender delivers reports to their rua destinations and records what
// became of each in the store: a report sent, rejected (5xx), too large
// or to an unverified destination is not tried again; a temporary
// failure is tried by the next run.
type Sender struct {
	Store *store.Store
	DNS   resolver.Querier
	SMTP  *mailout.Client
	From  string
	Now   func() time.Time
}

// Outcome is what Send did for one destination.
type Outcome struct {
	Domain, URI string
	Status      store.DeliveryStatus // "" when nothing was done (already final)
	Err         error
}

// Send delivers r to each of its rua destinations not yet done.
func (s *Sender) Send(ctx context.Context, r *Report, begin, end time.Time) ([]Outcome, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	var gz []byte
	var out []Outcome
	for _, uri := range r.RUA {
		prev, ok, err := s.Store.LookupDelivery(ctx, r.Domain(), begin, uri)
		if err != nil {
			return out, err
		}
		if ok && prev.Status != store.DeliveryTemporary {
			out = append(out, Outcome{Domain: r.Domain(), URI: uri})
			continue
		}
		if gz == nil {
			if gz, err = r.Gzip(); err != nil {
				return out, err
			}
		}
		err = s.deliver(ctx, r, gz, uri, now())
		status := store.DeliverySent
		switch {
		case errors.Is(err, ErrTemporary):
			status = store.DeliveryTemporary
		case err != nil:
			status = store.DeliveryFailed
		}
		detail := ""
		if err != nil {
			detail = err.Error()
		}
		if rerr := s.Store.RecordDelivery(ctx, store.Delivery{PolicyDomain: r.Domain(), Begin: begin, End: end, URI: uri,
			ReportID: r.Metadata.ReportID, Status: status, Detail: detail, Updated: now()}); rerr != nil {
			// A sent report that could not be recorded will be sent
			// again; say so rather than hide it.
			return append(out, Outcome{Domain: r.Domain(), URI: uri, Status: status, Err: err}), rerr
		}
		out = append(out, Outcome{Domain: r.Domain(), URI: uri, Status: status, Err: err})
	}
	return out, nil
}

func (s *Sender) deliver(ctx context.Context, r *Report, gz []byte, uri string, now time.Time) error {
	d, err := ParseDestination(uri)
	if err != nil {
		return err
	}
	if err := Verify(ctx, s.DNS, r.Domain(), d.Domain); err != nil {
		return err
	}
	msg := Mail(r, gz, s.From, d.Address, now)
	if d.MaxSize > 0 && int64(len(msg)) > d.MaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(msg), d.MaxSize)
	}
	return smtpError(s.SMTP.Send(ctx, s.From, []string{d.Address}, msg))
}
