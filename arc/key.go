package arc

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/mailsidecar/sidecar/internal/ascii"
	"github.com/mailsidecar/sidecar/resolver"
)

// Key sizes accepted for RSA (RFC 8301 §3.2: verifiers MUST NOT consider
// signatures with keys under 1024 bits valid). The upper bound keeps a
// hostile key record from costing unbounded CPU.
const (
	minRSABits = 1024
	maxRSABits = 8192
)

// publicKey is a decoded DKIM key record (RFC 6376 §3.6.1, RFC 8463).
type publicKey struct {
	rsa *rsa.PublicKey
	ed  ed25519.PublicKey
}

// keyType names the k= of the key.
func (k *publicKey) keyType() string {
	if k.ed != nil {
		return "ed25519"
	}
	return "rsa"
}

// parseKeyRecord decodes a DKIM key record. Whitespace inside p= is
// ignored (the value is base64 with FWS allowed). A record with an empty
// p= is a revoked key.
func parseKeyRecord(txt string) (*publicKey, error) {
	tags, err := parseTagList(txt)
	if err != nil {
		return nil, fmt.Errorf("key record: %w", err)
	}
	if v, ok := tags.get("v"); ok && (v != "DKIM1" || tags[0].name != "v") {
		return nil, errors.New("key record: v= is not DKIM1 or not first")
	}
	if h, ok := tags.get("h"); ok && !inColonList(h, "sha256") {
		return nil, errors.New("key record: h= does not allow sha256")
	}
	if s, ok := tags.get("s"); ok && !inColonList(s, "*") && !inColonList(s, "email") {
		return nil, errors.New("key record: s= does not allow email")
	}
	k, ok := tags.get("k")
	if !ok {
		k = "rsa"
	}
	p, ok := tags.get("p")
	if !ok {
		return nil, errors.New("key record: no p=")
	}
	p = stripFWS(p)
	if p == "" {
		return nil, errors.New("key revoked (empty p=)")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, errors.New("key record: p= is not base64")
	}
	switch k {
	case "rsa":
		pub, err := parseRSAKey(der)
		if err != nil {
			return nil, err
		}
		return &publicKey{rsa: pub}, nil
	case "ed25519":
		if len(der) != ed25519.PublicKeySize {
			return nil, errors.New("key record: Ed25519 key is not 32 bytes")
		}
		return &publicKey{ed: ed25519.PublicKey(der)}, nil
	}
	return nil, fmt.Errorf("key record: unknown key type k=%s", k)
}

func parseRSAKey(der []byte) (*rsa.PublicKey, error) {
	var pub *rsa.PublicKey
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		p, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, errors.New("key record: k=rsa but p= is not an RSA key")
		}
		pub = p
	} else if p, err2 := x509.ParsePKCS1PublicKey(der); err2 == nil {
		pub = p // some publish the bare PKCS#1 structure
	} else {
		return nil, errors.New("key record: p= is not an RSA public key")
	}
	if bits := pub.N.BitLen(); bits < minRSABits || bits > maxRSABits {
		return nil, fmt.Errorf("RSA key of %d bits (allowed %d to %d)", bits, minRSABits, maxRSABits)
	}
	return pub, nil
}

// inColonList reports whether a colon-separated list contains want.
func inColonList(list, want string) bool {
	for _, e := range strings.Split(list, ":") {
		if trimFWS(e) == want {
			return true
		}
	}
	return false
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
		k, err := parseKeyRecordCached(strings.Join(rr.TXT, ""))
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

// parsedKeys remembers decoded key records by their text, which saves the
// base64 and ASN.1 decoding when a sealer's key is seen again. The text
// determines the result, so sharing it between validators is safe. It is
// emptied when it grows past maxParsedKeys.
var parsedKeys struct {
	sync.Mutex
	m map[string]parsedKey
}

type parsedKey struct {
	key *publicKey
	err error
}

const maxParsedKeys = 1024

func parseKeyRecordCached(txt string) (*publicKey, error) {
	parsedKeys.Lock()
	e, ok := parsedKeys.m[txt]
	parsedKeys.Unlock()
	if ok {
		return e.key, e.err
	}
	k, err := parseKeyRecord(txt)
	parsedKeys.Lock()
	if parsedKeys.m == nil || len(parsedKeys.m) >= maxParsedKeys {
		parsedKeys.m = make(map[string]parsedKey)
	}
	parsedKeys.m[txt] = parsedKey{k, err}
	parsedKeys.Unlock()
	return k, err
}
