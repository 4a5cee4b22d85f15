package store

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// DeliveryStatus is what became of a report at one rua destination.
type DeliveryStatus string

// Statuses. Sent and Failed are final; a Temporary failure is tried again
// by the next run.
const (
	DeliverySent      DeliveryStatus = "sent"
	DeliveryFailed    DeliveryStatus = "failed"
	DeliveryTemporary DeliveryStatus = "temporary"
)

// Delivery is the record of one report at one destination.
type Delivery struct {
	PolicyDomain string
	Begin, End   time.Time
	URI          string
	ReportID     string
	Status       DeliveryStatus
	Detail       string
	Attempts     int
	Updated      time.Time
}

// LookupDelivery returns the record of the report of domain for the
// period starting at begin at uri; ok is false when there is none.
func (s *Store) LookupDelivery(ctx context.Context, domain string, begin time.Time, uri string) (d Delivery, ok bool, err error) {
	var b, e, u int64
	var status string
	err = s.db.QueryRowContext(ctx, "SELECT range_begin, range_end, report_id, status, detail, attempts, updated FROM deliveries WHERE policy_domain = "+
		s.ph(1)+" AND range_begin = "+s.ph(2)+" AND uri = "+s.ph(3), domain, begin.Unix(), uri).
		Scan(&b, &e, &d.ReportID, &status, &d.Detail, &d.Attempts, &u)
	if errors.Is(err, sql.ErrNoRows) {
		return Delivery{}, false, nil
	}
	if err != nil {
		return Delivery{}, false, s.fail("deliveries", err)
	}
	d.PolicyDomain, d.URI, d.Status = domain, uri, DeliveryStatus(status)
	d.Begin, d.End, d.Updated = time.Unix(b, 0), time.Unix(e, 0), time.Unix(u, 0)
	return d, true, nil
}

// RecordDelivery records an attempt, counting it.
func (s *Store) RecordDelivery(ctx context.Context, d Delivery) error {
	q := "INSERT INTO deliveries (policy_domain, range_begin, range_end, uri, report_id, status, detail, attempts, updated) VALUES (" +
		s.ph(1) + "," + s.ph(2) + "," + s.ph(3) + "," + s.ph(4) + "," + s.ph(5) + "," + s.ph(6) + "," + s.ph(7) + ",1," + s.ph(8) + ")" +
		" ON CONFLICT (policy_domain, range_begin, uri) DO UPDATE SET status = excluded.status, detail = excluded.detail," +
		" report_id = excluded.report_id, attempts = deliveries.attempts + 1, updated = excluded.updated"
	if _, err := s.db.ExecContext(ctx, q, d.PolicyDomain, d.Begin.Unix(), d.End.Unix(), d.URI, d.ReportID, string(d.Status), d.Detail, d.Updated.Unix()); err != nil {
		return s.fail("deliveries", err)
	}
	return nil
}
