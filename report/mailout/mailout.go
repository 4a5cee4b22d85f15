package mailout

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
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
	return fmt.Sprintf("SMTP %s: %v", e.Command, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Temporary reports whether trying again later may succeed: a 4xx reply
// or a failure without reply (network, timeout, TLS); a 5xx reply is
// permanent.
func (e *Error) Temporary() bool { return e.Code < 500 }

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
	if ok, _ := sc.Extension("STARTTLS"); ok {
		step = "STARTTLS"
		cfg := c.TLS
		if cfg == nil {
			// Opportunistic, as the MTA itself would: encryption against
			// passive eavesdropping, no authentication.
			cfg = &tls.Config{ServerName: host, InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} //nolint:gosec
		}
		if err := sc.StartTLS(cfg); err != nil {
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
