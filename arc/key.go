package arc

import (
	"context"
	"errors"
	"strings"

	"github.com/mailsidecar/sidecar/internal/ascii"
	"github.com/mailsidecar/sidecar/internal/dkimcore"
	"github.com/mailsidecar/sidecar/resolver"
)

// parseKeyRecord decodes a DKIM key record through the shared cache of
// parsed records, and checks that it may sign mail with SHA-256, as both
// ARC signatures do.
func parseKeyRecord(txt string) (*publicKey, error) {
	k, err := dkimcore.ParseKeyRecordCached(txt)
	if err != nil {
		return nil, err
	}
	if !k.AllowsHash("sha256") {
		return nil, errors.New("key record: h= does not allow sha256")
	}
	if !k.AllowsEmail() {
		return nil, errors.New("key record: s= does not allow email")
	}
	return k, nil
}

// keyError is a failed key retrieval. temp marks a DNS failure worth
// retrying (RFC 6376 §6.1.2 TEMPFAIL); other failures are permanent.
type keyError struct {
	temp bool
	msg  string
}

func (e *keyError) Error() string { return e.msg }

// keyCache holds the keys fetched during one validation, so that a sealer
// whose key signs both the AMS and the AS is looked up once.
type keyCache map[string]keyEntry

type keyEntry struct {
	key *publicKey
	err *keyError
}

// lookupKey fetches and decodes the key selector._domainkey.domain. When
// the name holds several TXT records, the first that decodes is used.
func lookupKey(ctx context.Context, dns resolver.Querier, cache keyCache, selector, domain string) (*publicKey, *keyError) {
	name := selector + "._domainkey." + domain
	lname := ascii.Lower(name)
	if e, ok := cache[lname]; ok {
		return e.key, e.err
	}
	key, kerr := fetchKey(ctx, dns, name)
	cache[lname] = keyEntry{key, kerr}
	return key, kerr
}

func fetchKey(ctx context.Context, dns resolver.Querier, name string) (*publicKey, *keyError) {
	if dns == nil {
		return nil, &keyError{temp: true, msg: "no DNS resolver configured"}
	}
	ans, err := dns.Query(ctx, name, resolver.TypeTXT)
	if err != nil {
		if errors.Is(err, resolver.ErrTemporary) || ctx.Err() != nil {
			return nil, &keyError{temp: true, msg: "key " + name + ": " + err.Error()}
		}
		return nil, &keyError{msg: "key " + name + ": " + err.Error()}
	}
	if ans.NXDomain() || len(ans.Records) == 0 {
		return nil, &keyError{msg: "no key at " + name}
	}
	var first error
	for _, rr := range ans.Records {
		if rr.Type != resolver.TypeTXT {
			continue
		}
		k, err := parseKeyRecord(strings.Join(rr.TXT, ""))
		if err == nil {
			return k, nil
		}
		if first == nil {
			first = err
		}
	}
	if first == nil {
		return nil, &keyError{msg: "no key at " + name}
	}
	return nil, &keyError{msg: name + ": " + first.Error()}
}
