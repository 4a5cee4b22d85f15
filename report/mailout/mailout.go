package mailout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// DefaultTimeout bounds one Send when Client.Timeout is zero.
const DefaultTimeout = time.Minute

// Client sends messages to one SMTP server.
type Client struct {
	Addr string // HOST:PORT
	Helo string // the EHLO name; "localhost" when empty
	// TLS is the configuration of STARTTLS, used when the server offers
	// it. Nil: encryption without certificate verification, as MTAs do
	// opportunistically (the local MTA seldom has a certificate for the
	// address it is reached at).
	TLS *tls.Config
	// Timeout bounds the whole exchange (DefaultTimeout when zero).
	Timeout time.Duration
	// Dial connects (a net.Dialer when nil).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Auth, when set, authenticates with SMTP AUTH (RFC 4954) after
	// STARTTLS; see Send for when the password may leave.
	Auth *Auth
}

// Error is a refusal or failure on the way, with the SMTP command it
// answered ("connect", "EHLO", "STARTTLS", "MAIL", "RCPT", "DATA") and,
// when the server replied, its code.
type Error struct {
	Command string
	Code    int // the server's reply code; 0 for a network failure
	Err     error
}

func (e *Error) Error() string {
	var te *textproto.Error
	if errors.As(e.Err, &te) {
		// The reply as the server wrote it, its lines joined, anything
		// that could break a log line made visible.
		return fmt.Sprintf("SMTP %s: %03d %s", e.Command, te.Code, strings.Map(func(r rune) rune {
			switch {
			case r == '\n':
				return ' '
			case r < ' ' || r == 0x7f:
				return '?'
			}
			return r
		}, te.Msg))
	}
	return fmt.Sprintf("SMTP %s: %v", e.Command, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed: a 4xx reply
// or a failure without reply (network, timeout, TLS); a 5xx reply is
// permanent — except those that say our own relay wants credentials we
// lack or refused the ones we have (530, 534, 535, 538 and any failure of
// AUTH): the report is fine, the configuration is not, and a report
// marked failed for good would never be sent once it is mended.
func (e *Error) Temporary() bool {
	switch {
	case e.Command == "AUTH", e.Code == 530, e.Code == 534, e.Code == 535, e.Code == 538:
		return true
	}
	return e.Code < 500
}

// Temporary reports whether err is a temporary failure of Send.
func Temporary(err error) bool {
	var e *Error
	return errors.As(err, &e) && e.Temporary()
}

// Send delivers msg (CRLF line ends) from the envelope sender from to the
// recipients to. Every error it returns is an *Error.
func (c *Client) Send(ctx context.Context, from string, to []string, msg []byte) (err error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	dial := c.Dial
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	conn, err := dial(ctx, "tcp", c.Addr)
	if err != nil {
		return &Error{Command: "connect", Err: err}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	deadline, _ := ctx.Deadline()
	conn.SetDeadline(deadline)
	step := "greeting"
	fail := func(e error) error {
		var te *textproto.Error
		if errors.As(e, &te) {
			return &Error{Command: step, Code: te.Code, Err: e}
		}
		return &Error{Command: step, Err: e}
	}
	host, _, _ := net.SplitHostPort(c.Addr)
	sc, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fail(err)
	}
	defer sc.Close()
	helo := c.Helo
	if helo == "" {
		helo = "localhost"
	}
	step = "EHLO"
	if err := sc.Hello(helo); err != nil {
		return fail(err)
	}
	local := isLoopback(host)
	if ok, _ := sc.Extension("STARTTLS"); ok {
		step = "STARTTLS"
		if err := sc.StartTLS(c.tlsConfig(host, local)); err != nil {
			return fail(err)
		}
	}
	if c.Auth != nil {
		step = "AUTH"
		if err := c.Auth.authenticate(sc, host, local); err != nil {
			return fail(err)
		}
	}
	step = "MAIL"
	if err := sc.Mail(from); err != nil {
		return fail(err)
	}
	step = "RCPT"
	for _, rcpt := range to {
		if err := sc.Rcpt(rcpt); err != nil {
			return fail(err)
		}
	}
	step = "DATA"
	w, err := sc.Data()
	if err != nil {
		return fail(err)
	}
	if _, err := w.Write(msg); err != nil {
		return fail(err)
	}
	if err := w.Close(); err != nil {
		return fail(err)
	}
	step = "QUIT"
	sc.Quit() // the message is accepted whatever QUIT gets
	return nil
}

// tlsConfig is the STARTTLS configuration for host: c.TLS when set; else
// opportunistic, as the MTA itself would (encryption against passive
// eavesdropping, the local MTA seldom having a certificate for the
// address it is reached at) — unless a password is to follow to a server
// not on loopback, which must then prove its name against the system's
// roots.
func (c *Client) tlsConfig(host string, local bool) *tls.Config {
	if c.TLS != nil {
		return c.TLS
	}
	if c.Auth != nil && !local {
		return &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}
