package dkimcore

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"

	"github.com/mailsidecar/sidecar/internal/parsecache"
)

// Key sizes accepted for RSA. RFC 8301 §3.2: verifiers MUST NOT consider
// signatures with keys under 1024 bits valid, MUST validate keys up to
// 4096 bits and MAY refuse larger ones; the upper bound keeps a hostile
// key record from costing unbounded CPU.
const (
	MinRSABits = 1024
	MaxRSABits = 8192
)

// The key types of k= (RFC 6376 §3.6.1, RFC 8463 §4).
const (
	KeyRSA     = "rsa"
	KeyEd25519 = "ed25519"
)

// PublicKey is a decoded DKIM key record (RFC 6376 §3.6.1, RFC 8463).
// It is shared by every verifier that meets the same record text, and
// must not be modified.
type PublicKey struct {
	Type string // KeyRSA or KeyEd25519
	RSA  *rsa.PublicKey
	Ed   ed25519.PublicKey
	// Hashes is h= (the hash algorithms the key may be used with), nil
	// when absent: any.
	Hashes []string
	// Services is s=, nil when absent or "*": any.
	Services []string
	// Testing is t=y: the domain is testing DKIM (RFC 6376 §3.6.1).
	Testing bool
	// Strict is t=s: the i= domain must be d= itself, not a subdomain.
	Strict bool
}

// AllowsHash reports whether h= lets the key sign with hash algorithm
// name (e.g. "sha256").
func (k *PublicKey) AllowsHash(name string) bool {
	return k.Hashes == nil || contains(k.Hashes, name)
}

// AllowsEmail reports whether s= lets the key sign email.
func (k *PublicKey) AllowsEmail() bool {
	return k.Services == nil || contains(k.Services, "email")
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

// KeyProblem says why a key record cannot be used.
type KeyProblem int

// The problems of key records, in the order ParseKeyRecord checks them.
const (
	KeyTagList     KeyProblem = iota + 1 // the tag list does not parse
	KeyVersion                           // v= present and not DKIM1 first
	KeyNoData                            // no p=
	KeyRevoked                           // empty p=
	KeyBase64                            // p= is not base64
	KeyNotRSA                            // k=rsa and p= is not an RSA public key
	KeyRSASize                           // RSA modulus outside MinRSABits..MaxRSABits
	KeyEd25519Size                       // k=ed25519 and p= is not 32 bytes
	KeyUnknownType                       // k= is neither rsa nor ed25519
)

// KeyError is a key record that cannot be used. Its message names the
// problem; callers that report their own words switch on Problem.
type KeyError struct {
	Problem KeyProblem
	Msg     string
	Err     error // the underlying parse error, if any
	Bits    int   // KeyRSASize: the modulus size
}

func (e *KeyError) Error() string { return e.Msg }

func (e *KeyError) Unwrap() error { return e.Err }

func keyErr(p KeyProblem, err error, format string, a ...any) *KeyError {
	return &KeyError{Problem: p, Err: err, Msg: fmt.Sprintf(format, a...)}
}

// ParseKeyRecord decodes a DKIM key record. White space inside p= is
// ignored (the value is base64 with FWS allowed). A record with an empty
// p= is a revoked key. The error, if any, is a *KeyError.
func ParseKeyRecord(txt string) (*PublicKey, error) {
	tags, err := ParseTagList(txt)
	if err != nil {
		return nil, keyErr(KeyTagList, err, "key record: %v", err)
	}
	if v, ok := tags.Get("v"); ok && (v != "DKIM1" || tags[0].Name != "v") {
		return nil, keyErr(KeyVersion, nil, "key record: v= is not DKIM1 or not first")
	}
	p, ok := tags.Get("p")
	if !ok {
		return nil, keyErr(KeyNoData, nil, "key record: no p=")
	}
	if p = StripFWS(p); p == "" {
		return nil, keyErr(KeyRevoked, nil, "key revoked (empty p=)")
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return nil, keyErr(KeyBase64, err, "key record: p= is not base64")
	}
	k := &PublicKey{}
	if h, ok := tags.Get("h"); ok {
		k.Hashes = SplitColonList(h)
	}
	if s, ok := tags.Get("s"); ok && !InColonList(s, "*") {
		k.Services = SplitColonList(s)
	}
	if t, ok := tags.Get("t"); ok {
		flags := SplitColonList(t)
		k.Testing, k.Strict = contains(flags, "y"), contains(flags, "s")
	}
	kt, ok := tags.Get("k")
	if !ok || kt == "" {
		kt = KeyRSA
	}
	switch kt {
	case KeyRSA:
		pub, err := parseRSAKey(der)
		if err != nil {
			return nil, err
		}
		k.Type, k.RSA = KeyRSA, pub
	case KeyEd25519:
		if len(der) != ed25519.PublicKeySize {
			e := keyErr(KeyEd25519Size, nil, "key record: Ed25519 key is not 32 bytes")
			e.Bits = 8 * len(der)
			return nil, e
		}
		k.Type, k.Ed = KeyEd25519, ed25519.PublicKey(der)
	default:
		return nil, keyErr(KeyUnknownType, nil, "key record: unknown key type k=%s", kt)
	}
	return k, nil
}

// parseRSAKey reads an RSA public key as SubjectPublicKeyInfo, as RFC 6376
// §3.6.1 has it, or as the bare PKCS#1 structure some publish.
func parseRSAKey(der []byte) (*rsa.PublicKey, error) {
	var pub *rsa.PublicKey
	if k, err := x509.ParsePKIXPublicKey(der); err == nil {
		p, ok := k.(*rsa.PublicKey)
		if !ok {
			return nil, keyErr(KeyNotRSA, nil, "key record: k=rsa but p= is not an RSA key")
		}
		pub = p
	} else if p, err2 := x509.ParsePKCS1PublicKey(der); err2 == nil {
		pub = p
	} else {
		return nil, keyErr(KeyNotRSA, err, "key record: p= is not an RSA public key")
	}
	if bits := pub.N.BitLen(); bits < MinRSABits || bits > MaxRSABits {
		e := keyErr(KeyRSASize, nil, "RSA key of %d bits (allowed %d to %d)", bits, MinRSABits, MaxRSABits)
		e.Bits = bits
		return nil, e
	}
	return pub, nil
}

// parsedKeys remembers decoded key records by their text: the resolver
// caches the TXT answer, this cache the work of decoding it (base64,
// ASN.1, the key checks), so a key is parsed once per DNS answer however
// many messages it verifies. The text determines the result, so sharing
// it between verifiers is safe; an LRU bounds it.
var parsedKeys = parsecache.New(MaxParsedKeys, maxCachedRecord, ParseKeyRecord)

// MaxParsedKeys bounds the parsed-key cache.
const MaxParsedKeys = 4096

// maxCachedRecord is the longest record text cached: longer ones (no
// real key record is) are parsed each time rather than fill the cache.
const maxCachedRecord = 4096

// ParseKeyRecordCached is ParseKeyRecord through the process-wide cache
// of parsed records.
func ParseKeyRecordCached(txt string) (*PublicKey, error) { return parsedKeys.Parse(txt) }

// ParseKeyRecordParts is ParseKeyRecordCached for a TXT record given as
// its character-strings (a 2048-bit key needs two), joined only when the
// record was not parsed before.
func ParseKeyRecordParts(parts []string) (*PublicKey, error) { return parsedKeys.ParseParts(parts) }
