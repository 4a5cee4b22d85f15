package mailout

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/internal/testkit/testpki"
)

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// TestSendSTARTTLS: a server offering STARTTLS gets the message over
// TLS, verified against the CA when the client names it, and
// opportunistically (nil TLS) otherwise; a plain server gets it plain.
func TestSendSTARTTLS(t *testing.T) {
	ca := testpki.NewCA(t)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "mail.example.test")}}
	tests := []struct {
		name     string
		offer    bool
		client   *tls.Config
		wantTLS  int
		wantFail bool
	}{
		{"verified", true, &tls.Config{RootCAs: ca.Pool, ServerName: "mail.example.test"}, 1, false},
		{"opportunistic", true, nil, 1, false},
		{"wrong name", true, &tls.Config{RootCAs: ca.Pool, ServerName: "other.example.test"}, 0, true},
		{"plain server", false, nil, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testmta.SinkOptions{}
			if tt.offer {
				o.TLS = srvTLS
			}
			sink := testmta.ServeSink(t, listen(t), o)
			c := &Client{Addr: sink.Addr(), Helo: "reporter.example", TLS: tt.client, Timeout: 10 * time.Second}
			err := c.Send(context.Background(), "tlsrpt@reporter.example", []string{"rua@example.test"}, []byte("Subject: x\r\n\r\n.dot line\r\n"))
			if tt.wantFail {
				var e *Error
				if !errors.As(err, &e) || e.Command != "STARTTLS" || !e.Temporary() {
					t.Fatalf("Send = %v, want a temporary STARTTLS error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			select {
			case m := <-sink.Msgs:
				if m != "Subject: x\r\n\r\n.dot line\r\n" {
					t.Errorf("message %q", m)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no message")
			}
			if got := sink.TLSMessages(); got != tt.wantTLS {
				t.Errorf("messages over TLS = %d, want %d", got, tt.wantTLS)
			}
		})
	}
}

// TestSendRefusals: 4xx and network failures are temporary, 5xx
// permanent, with the command that failed.
func TestSendRefusals(t *testing.T) {
	tests := []struct {
		reply string
		code  int
		temp  bool
	}{
		{"450 4.2.1 mailbox busy", 450, true},
		{"550 5.1.1 no such user", 550, false},
	}
	for _, tt := range tests {
		t.Run(tt.reply[:3], func(t *testing.T) {
			sink := testmta.ServeSink(t, listen(t), testmta.SinkOptions{RcptReply: tt.reply})
			c := &Client{Addr: sink.Addr()}
			err := c.Send(context.Background(), "a@example.test", []string{"b@example.test"}, []byte("\r\n"))
			var e *Error
			if !errors.As(err, &e) || e.Command != "RCPT" || e.Code != tt.code || e.Temporary() != tt.temp || Temporary(err) != tt.temp {
				t.Fatalf("Send = %#v, want RCPT %d temporary=%v", err, tt.code, tt.temp)
			}
			if !strings.Contains(err.Error(), tt.reply[4:]) {
				t.Errorf("%v does not quote the reply", err)
			}
		})
	}
	t.Run("no server", func(t *testing.T) {
		l := listen(t)
		addr := l.Addr().String()
		l.Close()
		err := (&Client{Addr: addr}).Send(context.Background(), "a@example.test", []string{"b@example.test"}, nil)
		if !Temporary(err) {
			t.Fatalf("Send = %v, want temporary", err)
		}
	})
	t.Run("silent server", func(t *testing.T) {
		l := listen(t)
		defer l.Close()
		go func() {
			c, err := l.Accept()
			if err == nil {
				time.Sleep(2 * time.Second)
				c.Close()
			}
		}()
		start := time.Now()
		err := (&Client{Addr: l.Addr().String(), Timeout: 200 * time.Millisecond}).Send(context.Background(), "a@example.test", []string{"b@example.test"}, nil)
		if !Temporary(err) || time.Since(start) > time.Second {
			t.Fatalf("Send = %v after %v, want a temporary failure within the timeout", err, time.Since(start))
		}
	})
}
