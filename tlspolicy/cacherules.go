package tlspolicy

import "time"

// servesStale reports whether a decision of level l may still answer
// after its lifetime, while its refresh runs (RFC 8767 §4, serve-stale),
// and whether a failed refresh leaves it in force (RFC 8767 §4: stale
// data is used when resolution fails). Only a decision that no fresher
// DNS answer could make stricter qualifies, so that a stale answer never
// weakens the policy beyond what the DNS says:
//
//   - dane-only, the strictest level: the MTA authenticates the server
//     with the TLSA records it looks up itself (RFC 7672 §2.2, §3); records
//     that changed meanwhile are the ones it checks, records that went
//     away make it defer, so a stale dane-only can delay mail but never
//     lets it go out less protected;
//   - temp: the MTA defers (RFC 7672 §2.1.1), and a failure is retried
//     once per FailureTTL anyway (RFC 9520 §3.2), so a dead next hop does
//     not hold its requests for the resolver's timeouts.
//
// Every other level could be made stricter by a fresh answer and is never
// served past its lifetime: none, may and dane (a TLSA record or a
// signed MX RRset that appeared makes them dane-only), encrypt (a TLSA
// record that became usable) and secure (TLSA records that appeared:
// DANE wins over MTA-STS, RFC 8461 §2). Their lifetime already includes
// the floor (CacheMinTTL): a TLSA record that appears is picked up at most
// the floor after the DNS stopped saying it was absent.
func servesStale(l Level) bool {
	return l == LevelDANEOnly || l == LevelTemp
}

// keep caches a decision made from DNS at the Decider's clock's now and
// returns it as made. A failure (LevelTemp) never replaces a cached
// decision that may still answer — a fresh one, or a stale one that
// servesStale: that stays in force and its next refresh waits FailureTTL
// (never a downgrade, RFC 7672 §2.1.1; RFC 8767 §4); otherwise the failure
// is cached for FailureTTL (RFC 2308 §7.1, RFC 9520 §3.2), so that a
// failing next hop costs one decision per FailureTTL however many
// deliveries ask.
func (dc *Decider) keep(key string, d *Decision) *made {
	m := &made{d: d}
	if dc.cache == nil {
		return m
	}
	now := dc.now().UnixNano()
	if d.Level == LevelTemp {
		dc.count(&dc.failures, EventFailure)
		if old := dc.cache.get(key); old != nil && old.dec.d.Level != LevelTemp && now < old.staleUntil {
			old.retryAt.Store(now + int64(dc.failTTL))
			return m
		}
		if dc.failTTL > 0 {
			dc.cache.put(dc.newEntry(key, m, now, dc.failTTL))
		}
		return m
	}
	if life := dc.lifetime(d); life > 0 {
		dc.cache.put(dc.newEntry(key, m, now, life))
	}
	return m
}

// lifetime is how long a successful decision is cached: the smallest TTL
// of the DNS answers it used, at least the floor, at most the ceiling; a
// decision from the configuration alone, the ceiling.
func (dc *Decider) lifetime(d *Decision) time.Duration {
	if (!d.MXLookup && len(d.Hosts) == 0 || d.NextHop.IP.IsValid()) && d.STS == nil {
		return dc.maxTTL
	}
	return min(max(d.TTL, dc.minTTL), dc.maxTTL)
}

// newEntry makes the cache entry of a decision made at now, living life.
// The refresh starts in the last tenth of the life, at least its last
// second, at most its second half (an entry at the floor, from answers of
// TTL 0, is refreshed once, not on every hit); a failure is retried only
// after its life (RFC 9520 §3.2), as a stale entry.
func (dc *Decider) newEntry(key string, m *made, now int64, life time.Duration) *entry {
	e := &entry{key: key, dec: m, expires: now + int64(life)}
	e.refreshAt = e.expires
	if m.d.Level != LevelTemp {
		e.refreshAt -= int64(min(max(life/10, time.Second), life/2))
	}
	e.staleUntil = e.expires
	if servesStale(m.d.Level) {
		e.staleUntil += int64(dc.staleTTL)
	}
	return e
}
