package tlspolicy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

func startServer(t *testing.T) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	go s.Serve(l)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	return s, l.Addr().String()
}

func exchange(t *testing.T, addr, req string, n int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, req)
	buf := make([]byte, n)
	got, _ := io.ReadAtLeast(c, buf, 1)
	return string(buf[:got])
}

func TestProtocols(t *testing.T) {
	_, addr := startServer(t)
	tests := []struct{ name, req, want string }{
		{"socketmap", "18:policy example.com,", "9:NOTFOUND ,"},
		{"socketmap malformed", "3:abc,", "27:PERM expected \"mapname key\","},
		{"socketmap bad terminator", "3:a bX", "36:PERM netstring not terminated by ',',"},
		{"socketmap oversized", "99999:x", "21:PERM request too long,"},
		{"tcp_table", "get example.com\n", "500 no-policy\n"},
		{"line", "dane example.com\n", "none\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := exchange(t, addr, tt.req, 128); got != tt.want {
				t.Errorf("reply %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSeveralRequestsOnOneConnection(t *testing.T) {
	_, addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	for i := 0; i < 3; i++ {
		io.WriteString(c, "get example.com\n")
		line, err := br.ReadString('\n')
		if err != nil || line != "500 no-policy\n" {
			t.Fatalf("request %d: %q %v", i, line, err)
		}
	}
}

func TestShutdownClosesIdleConnections(t *testing.T) {
	s, addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	time.Sleep(20 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); err == nil {
		t.Errorf("Shutdown with an idle client and a short deadline returned nil; want the deadline error")
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Errorf("still accepting after Shutdown")
	}
}

func FuzzNetstring(f *testing.F) {
	for _, s := range []string{"19:policy example.com,", "0:,", "5:abc,", "99999999:", ":", "3:abc"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := readNetstring(bufio.NewReader(strings.NewReader(string(data))), MaxRequest)
		if err == nil {
			if len(s) > MaxRequest {
				t.Fatalf("accepted %d bytes", len(s))
			}
			if enc := netstring(s); !strings.HasPrefix(string(data), enc) {
				t.Fatalf("round trip: %q is not a prefix of %q", enc, data)
			}
		}
	})
}
