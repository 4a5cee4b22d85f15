package testmta

import (
	"bufio"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// Sink is an SMTP server that accepts every message: the next hop of an
// MTA under test. It answers EHLO and HELO, DATA and QUIT, and every
// other command with 250; it offers STARTTLS when its options give it a
// TLS configuration.
type Sink struct {
	// Listener is where it accepts connections; it is closed when the
	// test ends.
	Listener net.Listener
	// Msgs hands over each message as it came in DATA: CRLF line ends,
	// dots unstuffed, without the final dot line. It holds 100 messages;
	// after that, the sink's reply to DATA waits for a reader.
	Msgs <-chan string

	opts       SinkOptions
	msgs       chan string
	handshakes atomic.Int32
	tlsMsgs    atomic.Int32
	authed     atomic.Int32
}

// SinkOptions are a Sink's settings. The zero value is a plain SMTP
// server named "sink" that gives each connection a minute.
type SinkOptions struct {
	// Name is the host name in the greeting and in the EHLO reply;
	// "sink" when empty.
	Name string
	// Timeout bounds each connection, from accept to the last reply; a
	// minute when 0.
	Timeout time.Duration
	// TLS, when set, makes the sink offer STARTTLS and run the server
	// side of the handshake with it.
	TLS *tls.Config
	// RcptReply, when set, is the sink's reply to every RCPT (such as
	// "450 4.2.1 try later" or "550 5.1.1 no such user") instead of 250.
	RcptReply string
	// Auth, when set, makes the sink offer AUTH PLAIN LOGIN and require
	// it before MAIL (530), accepting these user names and passwords.
	Auth map[string]string
	// AuthMechanisms is what the sink lists after AUTH in its EHLO reply;
	// "PLAIN LOGIN" when empty.
	AuthMechanisms string
}

// StartSink starts a plain Sink (zero SinkOptions) on a free port of
// 127.0.0.1 and returns it.
func StartSink(t testing.TB) *Sink {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ServeSink(t, l, SinkOptions{})
}

// ServeSink starts a Sink with the options o that accepts connections on
// l, and returns it. Each connection is served by a goroutine of its own;
// l is closed when the test ends.
func ServeSink(t testing.TB, l net.Listener, o SinkOptions) *Sink {
	if o.Name == "" {
		o.Name = "sink"
	}
	if o.Timeout == 0 {
		o.Timeout = time.Minute
	}
	msgs := make(chan string, 100)
	s := &Sink{Listener: l, Msgs: msgs, opts: o, msgs: msgs}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.handle(c)
		}
	}()
	return s
}

// Addr returns the host:port the sink listens on.
func (s *Sink) Addr() string { return s.Listener.Addr().String() }

// Handshakes returns how many STARTTLS handshakes have completed.
func (s *Sink) Handshakes() int { return int(s.handshakes.Load()) }

// Logins returns how many AUTH commands succeeded.
func (s *Sink) Logins() int { return int(s.authed.Load()) }

// TLSMessages returns how many of the messages handed over on Msgs came
// after STARTTLS. A message is counted before it is handed over.
func (s *Sink) TLSMessages() int { return int(s.tlsMsgs.Load()) }

func (s *Sink) handle(c net.Conn) {
	defer func() { c.Close() }() // c is the TLS connection after STARTTLS
	c.SetDeadline(time.Now().Add(s.opts.Timeout))
	tp := textproto.NewConn(c)
	tp.PrintfLine("220 %s ESMTP", s.opts.Name)
	inTLS, authed := false, false
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		switch cmd := strings.ToUpper(strings.SplitN(line, " ", 2)[0]); {
		case cmd == "EHLO" || cmd == "HELO":
			tp.PrintfLine("250-%s", s.opts.Name)
			if s.opts.TLS != nil && !inTLS {
				tp.PrintfLine("250-STARTTLS")
			}
			if s.opts.Auth != nil {
				mechs := s.opts.AuthMechanisms
				if mechs == "" {
					mechs = "PLAIN LOGIN"
				}
				tp.PrintfLine("250-AUTH %s", mechs)
			}
			tp.PrintfLine("250 8BITMIME")
		case cmd == "STARTTLS" && s.opts.TLS != nil:
			if inTLS {
				tp.PrintfLine("503 already")
				continue
			}
			tp.PrintfLine("220 go ahead")
			tc := tls.Server(c, s.opts.TLS)
			if err := tc.Handshake(); err != nil {
				return
			}
			s.handshakes.Add(1)
			c, inTLS = tc, true
			tp = textproto.NewConn(c)
		case cmd == "AUTH" && s.opts.Auth != nil:
			if authed = s.auth(tp, line); authed {
				s.authed.Add(1)
				tp.PrintfLine("235 2.7.0 authenticated")
			} else {
				tp.PrintfLine("535 5.7.8 authentication failed")
			}
		case cmd == "MAIL" && s.opts.Auth != nil && !authed:
			tp.PrintfLine("530 5.7.0 authentication required")
		case cmd == "DATA":
			tp.PrintfLine("354 go on")
			lines, err := tp.ReadDotLines()
			if err != nil {
				return
			}
			if inTLS {
				s.tlsMsgs.Add(1)
			}
			s.msgs <- strings.Join(lines, "\r\n") + "\r\n"
			tp.PrintfLine("250 2.0.0 queued")
		case cmd == "RCPT" && s.opts.RcptReply != "":
			tp.PrintfLine("%s", s.opts.RcptReply)
		case cmd == "QUIT":
			tp.PrintfLine("221 bye")
			return
		default:
			tp.PrintfLine("250 ok")
		}
	}
}

// auth runs the AUTH command line (PLAIN with or without an initial
// response, or LOGIN) and reports whether the credentials are known.
func (s *Sink) auth(tp *textproto.Conn, line string) bool {
	f := strings.Fields(line)
	if len(f) < 2 {
		return false
	}
	ask := func(prompt string) string {
		tp.PrintfLine("334 %s", base64.StdEncoding.EncodeToString([]byte(prompt)))
		l, _ := tp.ReadLine()
		b, _ := base64.StdEncoding.DecodeString(l)
		return string(b)
	}
	var user, pass string
	switch strings.ToUpper(f[1]) {
	case "PLAIN":
		var resp string
		if len(f) > 2 {
			b, _ := base64.StdEncoding.DecodeString(f[2])
			resp = string(b)
		} else {
			resp = ask("")
		}
		parts := strings.Split(resp, "\x00")
		if len(parts) != 3 {
			return false
		}
		user, pass = parts[1], parts[2]
	case "LOGIN":
		user, pass = ask("Username:"), ask("Password:")
	default:
		return false
	}
	want, ok := s.opts.Auth[user]
	return ok && want == pass
}

// Submission is a message for Submit to hand to an SMTP server.
type Submission struct {
	Helo string   // the name the client gives with EHLO
	From string   // the envelope sender
	To   []string // the envelope recipients
	Data []byte   // the message, CRLF line ends, without the final dot
	// Dial connects to the server; net.Dial when nil. A test whose
	// server runs in another network namespace dials there.
	Dial func(network, addr string) (net.Conn, error)
}

// Submit hands m to the SMTP server at addr in one transaction (EHLO,
// MAIL, a RCPT for each recipient, DATA) and then says QUIT. It returns
// nil when the server accepted the message at the end of data, or else
// the first error, which names the command that failed and wraps the
// server's reply (a *textproto.Error) when there is one.
func Submit(addr string, m Submission) error {
	dial := m.Dial
	if dial == nil {
		dial = net.Dial
	}
	conn, err := dial("tcp", addr)
	if err != nil {
		return err
	}
	host, _, _ := net.SplitHostPort(addr)
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(m.Helo); err != nil {
		return fmt.Errorf("EHLO %s: %w", m.Helo, err)
	}
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("MAIL FROM:<%s>: %w", m.From, err)
	}
	for _, rcpt := range m.To {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("RCPT TO:<%s>: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(m.Data); err != nil {
		return fmt.Errorf("sending the message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	c.Quit()
	return nil
}

// WaitGreeting waits up to d until the SMTP server at addr greets with
// 220. It returns nil then, or else the last error: the dial's, or one
// quoting the greeting that did not start with 220. Each try connects
// with dial (net.DialTimeout with 1s when dial is nil), reads the
// greeting for 5s at most and says QUIT; the tries are 50ms apart.
func WaitGreeting(dial func(network, addr string) (net.Conn, error), addr string, d time.Duration) error {
	if dial == nil {
		dial = func(network, addr string) (net.Conn, error) { return net.DialTimeout(network, addr, time.Second) }
	}
	deadline := time.Now().Add(d)
	for {
		c, err := dial("tcp", addr)
		if err == nil {
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			line, rerr := bufio.NewReader(c).ReadString('\n')
			c.Write([]byte("QUIT\r\n"))
			c.Close()
			if strings.HasPrefix(line, "220") {
				return nil
			}
			err = fmt.Errorf("greeting %q: %w", line, rerr)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}
