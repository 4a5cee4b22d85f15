package dkim

// Signing (RFC 6376 §5) with go-msgauth's signer, the library the project
// chose for it: our own outbound mail is not hostile input. What is ours
// is the choice of the signed fields (over-signing, RFC 6376 §8.15), the
// bound on their number, the stream that takes the message as the milter
// gets it, and the abort that costs no signature.

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	msgauth "github.com/emersion/go-msgauth/dkim"

	"github.com/mailsidecar/sidecar/internal/ascii"
)

// SignMode says how many fields of one name a signature covers.
type SignMode byte

// The modes, written as Exim writes them in dkim_sign_headers.
const (
	SignOnce SignMode = ' ' // "Name": the bottom field of that name, when there is one
	SignAll  SignMode = '=' // "=Name": every field of that name present
	SignOver SignMode = '+' // "+Name": every field present plus one more, so that none can be added (over-signing)
)

// SignHeader is one entry of the list of fields to sign.
type SignHeader struct {
	Name string
	Mode SignMode
}

// String writes the entry as dkim_sign_headers takes it.
func (h SignHeader) String() string {
	if h.Mode == SignOnce {
		return h.Name
	}
	return string(h.Mode) + h.Name
}

// DefaultSignHeaders are signed when no list is given: the fields RFC 6376
// §5.4.1 recommends, and MIME's. Those that §8.15 advises to protect from
// additions are over-signed: From above all, and the fields a reader sees
// or a client threads by; the others are signed as present.
var DefaultSignHeaders = []SignHeader{
	{"From", SignOver}, {"Reply-To", SignOver}, {"Subject", SignOver}, {"Date", SignOver},
	{"To", SignOver}, {"Cc", SignOver}, {"Message-ID", SignOver}, {"In-Reply-To", SignOver},
	{"References", SignOver}, {"MIME-Version", SignOver}, {"Content-Type", SignOver},
	{"Content-Transfer-Encoding", SignOver}, {"Sender", SignAll},
	{"Resent-Date", SignAll}, {"Resent-From", SignAll}, {"Resent-Sender", SignAll},
	{"Resent-To", SignAll}, {"Resent-Cc", SignAll}, {"Resent-Message-ID", SignAll},
	{"List-Id", SignAll}, {"List-Help", SignAll}, {"List-Unsubscribe", SignAll},
	{"List-Unsubscribe-Post", SignAll}, {"List-Subscribe", SignAll}, {"List-Post", SignAll},
	{"List-Owner", SignAll}, {"List-Archive", SignAll},
}

// MaxSignedFields bounds the entries of one signature's h= tag: the
// library picks each entry by scanning the header, so the bound keeps
// signing linear in the header's size.
const MaxSignedFields = 64

// unsignable are fields a signature must not cover: they are added or
// removed on the way (ours, by the milter itself) or are trace fields.
var unsignable = []string{"Authentication-Results", "ARC-Seal", "ARC-Message-Signature",
	"ARC-Authentication-Results", "Received", "Return-Path", "DKIM-Signature"}

// ParseSignHeader reads one entry of dkim_sign_headers: a field name,
// optionally prefixed by "+" (over-sign) or "=" (every field present).
func ParseSignHeader(s string) (SignHeader, error) {
	h := SignHeader{Name: strings.TrimSpace(s), Mode: SignOnce}
	if h.Name != "" && (h.Name[0] == '+' || h.Name[0] == '=') {
		h.Mode, h.Name = SignMode(h.Name[0]), h.Name[1:]
	}
	h.Name = strings.TrimSuffix(h.Name, ":")
	if !ascii.FieldName(h.Name) {
		return SignHeader{}, fmt.Errorf("%q is not a header field name (write Name, +Name to over-sign, =Name for every field present)", s)
	}
	for _, u := range unsignable {
		if strings.EqualFold(h.Name, u) {
			return SignHeader{}, fmt.Errorf("%s cannot be signed: it is added or removed on the way", u)
		}
	}
	return h, nil
}

// HeaderField is one header field of a message: its name and its raw
// value after the colon, folding kept, line breaks CRLF, no final CRLF.
type HeaderField struct {
	Name, Value string
}

// SignOptions are one signature's parameters.
type SignOptions struct {
	Domain   string        // d=
	Selector string        // s=
	Key      crypto.Signer // RSA (a=rsa-sha256) or Ed25519 (a=ed25519-sha256)
	// HeaderCanon and BodyCanon are "relaxed" or "simple" (RFC 6376
	// §3.4); "" is relaxed.
	HeaderCanon, BodyCanon string
	// Headers lists the fields to sign; nil is DefaultSignHeaders.
	Headers []SignHeader
	// Expiration sets x= when not zero. go-msgauth always writes t=.
	Expiration time.Time
}

// ErrNoFrom: a message without From cannot be signed (RFC 6376 §5.4).
var ErrNoFrom = errors.New("dkim: the message has no From field, which a signature must cover")

// errSignAborted is what the key answers once the stream is aborted.
var errSignAborted = errors.New("dkim: signing aborted")

// SignStream signs one message as it streams past: the header fields are
// given when it starts, the body is written in chunks (CRLF line ends)
// and hashed at once, never kept.
type SignStream struct {
	s      *msgauth.Signer
	key    *abortableKey
	signed []string // the h= entries
	err    error
}

// NewSignStream starts a signature over a message whose header is fields.
// The fields it covers are chosen now, bottom-up by name as a verifier
// picks them (RFC 6376 §5.4.2).
func NewSignStream(o SignOptions, fields []HeaderField) (*SignStream, error) {
	if o.Key == nil {
		return nil, errors.New("dkim: no signing key")
	}
	switch k := o.Key.Public().(type) {
	case *rsa.PublicKey:
		if k.N.BitLen() < 1024 {
			return nil, fmt.Errorf("dkim: an RSA key of %d bits is too weak to sign with (RFC 8301: at least 1024)", k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("dkim: unsupported key type %T (RSA or Ed25519)", k)
	}
	keys, err := signedFields(o.Headers, fields)
	if err != nil {
		return nil, err
	}
	hc, err := canonOf(o.HeaderCanon)
	if err != nil {
		return nil, err
	}
	bc, err := canonOf(o.BodyCanon)
	if err != nil {
		return nil, err
	}
	key := &abortableKey{Signer: o.Key}
	s, err := msgauth.NewSigner(&msgauth.SignOptions{Domain: o.Domain, Selector: o.Selector, Signer: key,
		HeaderCanonicalization: hc, BodyCanonicalization: bc, HeaderKeys: keys, Expiration: o.Expiration})
	if err != nil {
		return nil, err
	}
	st := &SignStream{s: s, key: key, signed: keys}
	var b strings.Builder
	for _, f := range fields {
		b.Reset()
		b.WriteString(f.Name)
		b.WriteByte(':')
		b.WriteString(f.Value)
		b.WriteString("\r\n")
		if _, err := io.WriteString(s, b.String()); err != nil {
			st.Abort()
			return nil, err
		}
	}
	if _, err := io.WriteString(s, "\r\n"); err != nil {
		st.Abort()
		return nil, err
	}
	return st, nil
}

// signedFields computes the h= entries for the header fields present.
func signedFields(list []SignHeader, fields []HeaderField) ([]string, error) {
	if list == nil {
		list = DefaultSignHeaders
	}
	count := map[string]int{}
	for _, f := range fields {
		count[strings.ToLower(f.Name)]++
	}
	if count["from"] == 0 {
		return nil, ErrNoFrom
	}
	var keys []string
	hasFrom := false
	for _, h := range list {
		n := count[strings.ToLower(h.Name)]
		switch h.Mode {
		case SignOnce:
			n = min(n, 1)
		case SignOver:
			n++
		}
		hasFrom = hasFrom || strings.EqualFold(h.Name, "From")
		if len(keys)+n > MaxSignedFields {
			return nil, fmt.Errorf("dkim: more than %d fields to sign (%d %s fields): not signed", MaxSignedFields, count[strings.ToLower(h.Name)], h.Name)
		}
		for range n {
			keys = append(keys, h.Name)
		}
	}
	if !hasFrom {
		keys = append(keys, "From") // RFC 6376 §5.4: From is always signed
	}
	return keys, nil
}

func canonOf(s string) (msgauth.Canonicalization, error) {
	switch strings.ToLower(s) {
	case "", "relaxed":
		return msgauth.CanonicalizationRelaxed, nil
	case "simple":
		return msgauth.CanonicalizationSimple, nil
	}
	return "", fmt.Errorf("dkim: unknown canonicalization %q (relaxed or simple)", s)
}

// Write hashes body data.
func (st *SignStream) Write(p []byte) (int, error) {
	if st.err != nil {
		return 0, st.err
	}
	n, err := st.s.Write(p)
	if err != nil {
		st.err = err
	}
	return n, err
}

// Signs reports whether the signature covers fields called name: a field
// of that name added or removed afterwards breaks it.
func (st *SignStream) Signs(name string) bool {
	for _, k := range st.signed {
		if strings.EqualFold(k, name) {
			return true
		}
	}
	return false
}

// Finish ends the body and returns the DKIM-Signature field, as
// "DKIM-Signature: v=1; …", folded, without the final CRLF.
func (st *SignStream) Finish() (string, error) {
	if st.err != nil {
		st.Abort()
		return "", st.err
	}
	if err := st.s.Close(); err != nil {
		st.err = err
		return "", err
	}
	st.err = errors.New("dkim: signature already finished")
	return strings.TrimRight(st.s.Signature(), "\r\n"), nil
}

// Abort drops the signature: the library's goroutine ends without making
// one.
func (st *SignStream) Abort() {
	if st.key.aborted.Swap(true) {
		return
	}
	st.err = errSignAborted
	_ = st.s.Close()
}

// abortableKey refuses to sign once its stream is aborted, so that an
// aborted message costs no private-key operation.
type abortableKey struct {
	crypto.Signer
	aborted atomic.Bool
}

func (k *abortableKey) Sign(rand io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if k.aborted.Load() {
		return nil, errSignAborted
	}
	return k.Signer.Sign(rand, digest, opts)
}
