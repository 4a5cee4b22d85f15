package resolver

import "context"

// Probe asks the servers for the root's NS RRset, bypassing the cache, and
// returns nil when one of them answered (any rcode but SERVFAIL and
// REFUSED). Health checks use it to tell that DNS is reachable.
func (r *Resolver) Probe(ctx context.Context) error {
	_, _, err := r.exchangeAll(ctx, ".", TypeNS)
	return err
}
