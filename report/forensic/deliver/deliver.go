// Package deliver sends the spooled DMARC failure reports (package
// report/forensic) to their ruf destinations over SMTP: each destination
// verified as RFC 9990 and RFC 9991 require for a destination outside the
// policy domain, the report mail handed to report_smtp. A temporary
// failure (DNS, 4xx, a server that cannot be reached) is tried again
// with a growing delay; a permanent one (5xx, a destination not verified
// or whose size limit the report exceeds) is dropped. The spool is the
// only state, so reports survive restarts. The daemon runs the Sender;
// the package does not log: each outcome is an Event.
package deliver

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/mailsidecar/sidecar/report/aggregate"
	"github.com/mailsidecar/sidecar/report/forensic"
	"github.com/mailsidecar/sidecar/report/mailout"
	"github.com/mailsidecar/sidecar/resolver"
)

// Defaults of a Sender.
const (
	DefaultMinBackoff = time.Minute
	DefaultMaxBackoff = time.Hour
	DefaultMaxAge     = 48 * time.Hour
	DefaultPoll       = time.Minute
)

// Event is the outcome of one attempt at one destination, or of a spool
// file that could not be read.
type Event struct {
	ID           string // the spool file
	PolicyDomain string
	URI          string
	Result       string // forensic.ResultSent, ResultTemporary, ResultFailed or ResultExpired
	Attempts     int    // attempts made for the report, this one included
	Err          error
}

// Sender delivers the reports of one spool directory.
type Sender struct {
	Dir  string
	DNS  resolver.Querier
	SMTP *mailout.Client
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Event, when set, is told every outcome.
	Event func(Event)
	// MinBackoff, MaxBackoff: the delay after the first failed attempt,
	// doubled at each one up to MaxBackoff. MaxAge: a report still not
	// delivered that long after it was spooled is dropped. Poll: how
	// often the spool is looked at when nothing wakes the sender.
	MinBackoff, MaxBackoff, MaxAge, Poll time.Duration
}

func (s *Sender) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func orDefault(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// Run sends until ctx ends: at once, whenever a report is spooled, when
// the next retry is due, and every Poll.
func (s *Sender) Run(ctx context.Context) {
	poll := orDefault(s.Poll, DefaultPoll)
	for {
		wait := poll
		var wake <-chan struct{}
		if sp := s.spool(); sp != nil {
			wake = sp.Wake()
			if next := s.Pass(ctx, sp); !next.IsZero() {
				wait = min(wait, max(next.Sub(s.now()), 0))
			}
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-wake:
		case <-timer.C:
		}
		timer.Stop()
	}
}

// spool opens the spool when its directory exists: a host that never
// spooled a report has none, and the sender does not create it.
func (s *Sender) spool() *forensic.Spool {
	if sp := forensic.Lookup(s.Dir); sp != nil {
		return sp
	}
	if fi, err := os.Stat(s.Dir); err != nil || !fi.IsDir() {
		return nil
	}
	sp, err := forensic.OpenSpool(s.Dir)
	if err != nil {
		return nil
	}
	return sp
}

// Pass makes one pass over the spool: every report whose attempt is due
// is tried. It returns when the earliest report left is due next (zero
// when none is left).
func (s *Sender) Pass(ctx context.Context, sp *forensic.Spool) time.Time {
	defer sp.LockSend()()
	ids, err := sp.IDs()
	if err != nil {
		s.event(Event{Result: forensic.ResultTemporary, Err: err})
		return time.Time{}
	}
	var next time.Time
	for _, id := range ids {
		if ctx.Err() != nil {
			return next
		}
		e, err := sp.Load(id)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			forensic.Count(forensic.ResultFailed)
			s.event(Event{ID: id, Result: forensic.ResultFailed, Err: err})
			sp.Remove(id)
			continue
		}
		if !e.Next.IsZero() && e.Next.After(s.now()) {
			if next.IsZero() || e.Next.Before(next) {
				next = e.Next
			}
			continue
		}
		if n := s.attempt(ctx, sp, e); !n.IsZero() && (next.IsZero() || n.Before(next)) {
			next = n
		}
	}
	return next
}

// attempt tries every destination left of e, then removes it or
// schedules its next attempt (returned; zero when it is done).
func (s *Sender) attempt(ctx context.Context, sp *forensic.Spool, e *forensic.Entry) time.Time {
	e.Attempts++
	var left []string
	for _, uri := range e.RUF {
		err := s.send(ctx, e, uri)
		ev := Event{ID: e.ID, PolicyDomain: e.Report.PolicyDomain, URI: uri, Attempts: e.Attempts, Err: err, Result: forensic.ResultSent}
		switch {
		case err == nil:
		case temporary(err):
			ev.Result = forensic.ResultTemporary
			left = append(left, uri)
		default:
			ev.Result = forensic.ResultFailed
		}
		forensic.Count(ev.Result)
		s.event(ev)
	}
	now := s.now()
	if len(left) > 0 && now.Sub(e.Created) >= orDefault(s.MaxAge, DefaultMaxAge) {
		for _, uri := range left {
			forensic.Count(forensic.ResultExpired)
			s.event(Event{ID: e.ID, PolicyDomain: e.Report.PolicyDomain, URI: uri, Attempts: e.Attempts, Result: forensic.ResultExpired,
				Err: fmt.Errorf("not delivered %s after it was spooled; dropped", now.Sub(e.Created).Round(time.Second))})
		}
		left = nil
	}
	if len(left) == 0 {
		if err := sp.Remove(e.ID); err != nil {
			s.event(Event{ID: e.ID, PolicyDomain: e.Report.PolicyDomain, Result: forensic.ResultTemporary, Err: err})
		}
		return time.Time{}
	}
	e.RUF = left
	e.Next = now.Add(s.backoff(e.Attempts))
	if err := sp.Update(e); err != nil {
		s.event(Event{ID: e.ID, PolicyDomain: e.Report.PolicyDomain, Result: forensic.ResultTemporary, Err: err})
	}
	return e.Next
}

// backoff is the delay after the n-th failed attempt.
func (s *Sender) backoff(n int) time.Duration {
	d, limit := orDefault(s.MinBackoff, DefaultMinBackoff), orDefault(s.MaxBackoff, DefaultMaxBackoff)
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// send delivers the report to one ruf URI.
func (s *Sender) send(ctx context.Context, e *forensic.Entry, uri string) error {
	d, err := aggregate.ParseDestination(uri)
	if err != nil {
		return err
	}
	if err := aggregate.Verify(ctx, s.DNS, e.Report.PolicyDomain, d.Domain); err != nil {
		return err
	}
	msg := e.Report.Mail(d.Address, s.now())
	if d.MaxSize > 0 && int64(len(msg)) > d.MaxSize {
		return fmt.Errorf("%w: %d bytes, limit %d", aggregate.ErrTooLarge, len(msg), d.MaxSize)
	}
	return s.SMTP.Send(ctx, e.Report.Sender, []string{d.Address}, msg)
}

// temporary: a DNS failure while verifying, or an SMTP failure that is
// not a 5xx reply.
func temporary(err error) bool {
	return errors.Is(err, aggregate.ErrTemporary) || mailout.Temporary(err)
}

func (s *Sender) event(e Event) {
	if s.Event != nil {
		s.Event(e)
	}
}
