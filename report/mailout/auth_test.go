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

// TestSendAuth: the password goes over TLS or to loopback only, with
// PLAIN or LOGIN, and every failure of authentication is temporary (a
// configuration to mend, not a report to give up).
func TestSendAuth(t *testing.T) {
	ca := testpki.NewCA(t)
	srvTLS := &tls.Config{Certificates: []tls.Certificate{ca.Leaf(t, "relay.example.test")}}
	good := &Auth{Username: "reports@example.test", Password: "s3cret pass"}
	accounts := map[string]string{good.Username: good.Password}
	// remote dials the sink under a name that is not loopback.
	remote := func(sink *testmta.Sink) func(ctx context.Context, network, addr string) (net.Conn, error) {
		return func(ctx context.Context, network, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, sink.Addr())
		}
	}
	tests := []struct {
		name     string
		sink     testmta.SinkOptions
		auth     *Auth
		remote   bool
		tls      *tls.Config
		wantErr  error  // errors.Is
		wantCode int    // the *Error's code when wantErr is nil and a failure is expected
		wantCmd  string // the failing command
		logins   int
	}{
		{name: "plain on loopback without TLS", sink: testmta.SinkOptions{Auth: accounts}, auth: good, logins: 1},
		{name: "plain over TLS", sink: testmta.SinkOptions{Auth: accounts, TLS: srvTLS}, auth: good, logins: 1},
		{name: "login only", sink: testmta.SinkOptions{Auth: accounts, AuthMechanisms: "LOGIN"}, auth: good, logins: 1},
		{name: "remote with a verified certificate", sink: testmta.SinkOptions{Auth: accounts, TLS: srvTLS}, auth: good, remote: true,
			tls: &tls.Config{RootCAs: ca.Pool, ServerName: "relay.example.test"}, logins: 1},
		{name: "remote without STARTTLS", sink: testmta.SinkOptions{Auth: accounts}, auth: good, remote: true,
			wantErr: ErrAuthInClear, wantCmd: "AUTH"},
		{name: "remote with an unknown CA", sink: testmta.SinkOptions{Auth: accounts, TLS: srvTLS}, auth: good, remote: true,
			wantCmd: "STARTTLS"},
		{name: "wrong password", sink: testmta.SinkOptions{Auth: accounts}, auth: &Auth{Username: good.Username, Password: "nope"},
			wantCode: 535, wantCmd: "AUTH"},
		{name: "no AUTH offered", sink: testmta.SinkOptions{}, auth: good, wantErr: ErrNoAuth, wantCmd: "AUTH"},
		{name: "no known mechanism", sink: testmta.SinkOptions{Auth: accounts, AuthMechanisms: "CRAM-MD5"}, auth: good,
			wantErr: ErrNoAuth, wantCmd: "AUTH"},
		{name: "credentials missing", sink: testmta.SinkOptions{Auth: accounts}, wantCode: 530, wantCmd: "MAIL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := testmta.ServeSink(t, listen(t), tt.sink)
			c := &Client{Addr: sink.Addr(), Auth: tt.auth, TLS: tt.tls, Timeout: 10 * time.Second}
			if tt.remote {
				c.Addr, c.Dial = "relay.example.test:587", remote(sink)
			}
			err := c.Send(context.Background(), "dmarc@example.test", []string{"rua@example.net"}, []byte("Subject: r\r\n\r\nreport\r\n"))
			if tt.wantCmd == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m := <-sink.Msgs; !strings.Contains(m, "report") {
					t.Errorf("message %q", m)
				}
			} else {
				var e *Error
				if !errors.As(err, &e) || e.Command != tt.wantCmd || !e.Temporary() {
					t.Fatalf("Send = %v, want a temporary %s error", err, tt.wantCmd)
				}
				if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Errorf("Send = %v, want %v", err, tt.wantErr)
				}
				if tt.wantCode != 0 && e.Code != tt.wantCode {
					t.Errorf("code %d, want %d", e.Code, tt.wantCode)
				}
			}
			if got := sink.Logins(); got != tt.logins {
				t.Errorf("logins = %d, want %d", got, tt.logins)
			}
		})
	}
}
