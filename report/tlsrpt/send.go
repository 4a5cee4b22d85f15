package tlsrpt

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/mailsidecar/sidecar/report/mailout"
	"github.com/mailsidecar/sidecar/resolver"
)

// Status is what became of a report for one destination.
type Status string

// Statuses. Sent, Refused and NoRecord are kept in the State; Deferred is
// tried again on the next run; Skipped means the State says it was done.
const (
	Sent     Status = "sent"
	Refused  Status = "refused"   // a permanent failure: 5xx, HTTP 4xx, bad certificate
	NoRecord Status = "no-record" // no (valid) _smtp._tls record: nowhere to send
	Deferred Status = "deferred"  // a temporary failure (4xx, network, DNS)
	Skipped  Status = "skipped"   // done by an earlier run
)

// Outcome is what Send did for one destination of a report; Dest is ""
// for the record lookup.
type Outcome struct {
	Report string // the report's file name
	Dest   string
	Status Status
	Err    error
}

// Sender delivers reports to the rua destinations of their policy
// domains (RFC 8460 §3, §5).
type Sender struct {
	DNS   resolver.Querier // for _smtp._tls
	SMTP  *mailout.Client  // mailto: destinations, through the local MTA
	HTTP  *http.Client     // https: destinations
	From  string           // envelope sender and From address of report mail
	State *State
	Now   func() time.Time // time.Now when nil
}

// Send delivers r to every destination of its domain's record that the
// State does not name as done, and records what it did. An error writing
// the State stops it.
func (s *Sender) Send(ctx context.Context, r *Report) ([]Outcome, error) {
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	name := r.FileName()
	if e, ok := s.State.Lookup(name, ""); ok {
		return []Outcome{{Report: name, Status: Skipped, Err: errors.New(string(e.Status) + " " + e.Detail)}}, nil
	}
	rec, err := Discover(ctx, s.DNS, r.PolicyDomain())
	if err != nil {
		if errors.Is(err, resolver.ErrTemporary) {
			return []Outcome{{Report: name, Status: Deferred, Err: err}}, nil
		}
		o := Outcome{Report: name, Status: NoRecord, Err: err}
		return []Outcome{o}, s.State.Record(name, "", StateEntry{Time: now(), Status: NoRecord, Detail: err.Error()})
	}
	gz, err := r.Gzip()
	if err != nil {
		return nil, err
	}
	var out []Outcome
	for _, u := range rec.RUA {
		dest := u.String()
		if _, ok := s.State.Lookup(name, dest); ok {
			out = append(out, Outcome{Report: name, Dest: dest, Status: Skipped})
			continue
		}
		err := s.deliver(ctx, r, u, gz, now())
		o := Outcome{Report: name, Dest: dest, Status: Sent, Err: err}
		var de *DeliveryError
		switch {
		case err == nil:
		case mailout.Temporary(err) || errors.As(err, &de) && de.Temporary:
			o.Status = Deferred
		default:
			o.Status = Refused
		}
		out = append(out, o)
		if o.Status == Deferred {
			continue
		}
		e := StateEntry{Time: now(), Status: o.Status}
		if err != nil {
			e.Detail = err.Error()
		}
		if err := s.State.Record(name, dest, e); err != nil {
			return out, err
		}
	}
	return out, nil
}

func (s *Sender) deliver(ctx context.Context, r *Report, u *url.URL, gz []byte, now time.Time) error {
	if u.Scheme == "https" {
		return Post(ctx, s.HTTP, u, gz)
	}
	to, err := url.PathUnescape(u.Opaque)
	if err != nil {
		return &DeliveryError{Dest: u.String(), Err: err}
	}
	msg, err := r.Mail(s.From, to, now)
	if err != nil {
		return err
	}
	return s.SMTP.Send(ctx, s.From, []string{to}, msg)
}
