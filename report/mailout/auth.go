package mailout

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/smtp"
	"strings"
)

// Auth is the account Send authenticates with (RFC 4954): PLAIN (RFC
// 4616) when the server offers it, else LOGIN (the older mechanism some
// servers still offer alone).
type Auth struct {
	Username, Password string
}

// ErrAuthInClear is returned, before the password is sent, when the
// server is not on loopback and the connection is not encrypted.
var ErrAuthInClear = errors.New("the server offers no STARTTLS: the password is not sent in the clear to a server that is not on loopback")

// ErrNoAuth is returned when the server does not offer AUTH with PLAIN or
// LOGIN.
var ErrNoAuth = errors.New("the server offers no SMTP AUTH with PLAIN or LOGIN")

// authenticate runs AUTH on sc. The password goes only over TLS (whose
// certificate tlsConfig had checked) or to a server on loopback.
func (a *Auth) authenticate(sc *smtp.Client, host string, local bool) error {
	if _, encrypted := sc.TLSConnectionState(); !encrypted && !local {
		return ErrAuthInClear
	}
	ok, mechs := sc.Extension("AUTH")
	if !ok {
		return ErrNoAuth
	}
	var mech smtp.Auth
	for _, m := range strings.Fields(strings.ToUpper(mechs)) {
		switch m {
		case "PLAIN":
			mech = plainAuth{a}
		case "LOGIN":
			if mech == nil {
				mech = loginAuth{a}
			}
		}
	}
	if mech == nil {
		return fmt.Errorf("%w (offered: %s)", ErrNoAuth, mechs)
	}
	return sc.Auth(mech)
}

// plainAuth is RFC 4616 PLAIN with an empty authorization identity. It
// is ours rather than smtp.PlainAuth because that one refuses a server
// whose name is not the one dialled, and authenticate has already made
// the checks that matter.
type plainAuth struct{ a *Auth }

func (p plainAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "PLAIN", []byte("\x00" + p.a.Username + "\x00" + p.a.Password), nil
}

func (p plainAuth) Next(_ []byte, more bool) ([]byte, error) {
	if more {
		return nil, errors.New("unexpected server challenge in AUTH PLAIN")
	}
	return nil, nil
}

// loginAuth is the LOGIN mechanism: the user name, then the password,
// each answering a 334 challenge.
type loginAuth struct{ a *Auth }

func (l loginAuth) Start(*smtp.ServerInfo) (string, []byte, error) {
	return "LOGIN", nil, nil
}

func (l loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(challenge))) {
	case "username:", "user name", "username":
		return []byte(l.a.Username), nil
	case "password:", "password":
		return []byte(l.a.Password), nil
	}
	return nil, fmt.Errorf("unexpected AUTH LOGIN challenge %q", base64.StdEncoding.EncodeToString(challenge))
}
