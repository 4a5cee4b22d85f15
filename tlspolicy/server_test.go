package tlspolicy

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
)

func startServer(t *testing.T, env *Env) (*Server, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(func() *Env { return env })
	go s.Serve(l)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		s.Shutdown(ctx)
	})
	return s, l.Addr().String()
}

func testServerEnv() *Env { return TestEnv(testZone(), nil) }

// exchange sends req on a new connection and reads until n octets or
// the connection closes.
func exchange(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	io.WriteString(c, req)
	br := bufio.NewReader(c)
	if req[0] >= '0' && req[0] <= '9' {
		got, err := readNetstring(br, 1<<16)
		if err != nil {
			t.Fatalf("reading netstring reply: %v", err)
		}
		return got
	}
	line, _ := br.ReadString('\n')
	return line
}

func ns(s string) string { return string(appendNetstring(nil, s)) }

func TestProtocols(t *testing.T) {
	_, addr := startServer(t, testServerEnv())
	tests := []struct{ name, req, want string }{
		{"socketmap dane-only", ns("policy dane.example.com"), "OK dane-only"},
		{"socketmap upper case", ns("policy DANE.EXAMPLE.COM"), "OK dane-only"},
		{"socketmap CNAME'd MX", ns("policy cname.example.com"), "OK dane-only"},
		{"socketmap mixed", ns("policy mixed.example.com"), "OK dane"},
		{"socketmap unusable", ns("policy unusable.example.com"), "OK encrypt"},
		{"socketmap no TLSA", ns("policy notlsa.example.com"), "NOTFOUND "},
		{"socketmap parent domain", ns("policy .example.com"), "NOTFOUND "},
		{"socketmap [host]:port", ns("policy [mx1.dane.example.com]:587"), "OK dane-only"},
		{"socketmap bad key", ns("policy exa mple.com"), "NOTFOUND "},
		{"socketmap exim vocabulary", ns("dane mixed.example.com"), "OK try"},
		{"socketmap ocsp DANE-EE", ns("ocsp mx1.dane.example.com"), "OK none"},
		{"socketmap ocsp DANE-TA", ns("ocsp mx2.example.com"), "OK request"},
		{"socketmap no key", ns("policy"), "PERM expected \"NAME KEY\""},
		{"socketmap oversized", "99999:x", "PERM request too long"},
		{"socketmap bad terminator", "3:a bX", "PERM malformed netstring"},
		{"tcp_table dane-only", "get dane.example.com\n", "200 dane-only\n"},
		{"tcp_table %XX", "get %5Bmx1.dane.example.com%5D%3A587\n", "200 dane-only\n"},
		{"tcp_table CRLF", "get dane.example.com\r\n", "200 dane-only\n"},
		{"tcp_table not found", "get notlsa.example.com\n", "500 no%20policy\n"},
		{"tcp_table bad %XX", "get dane%2\n", "500 malformed%20key\n"},
		{"tcp_table put", "put a b\n", "500 the policy table is read-only\n"},
		{"line dane require", "dane dane.example.com\n", "require "},
		{"line dane try", "dane smart.insecure.org\n", "try "},
		{"line dane none", "dane notlsa.example.com\n", "none "},
		{"line dane host", "dane [mx1.dane.example.com]\n", "require "},
		{"line ocsp", "ocsp mx2.example.com\n", "request "},
		{"line policy", "policy unusable.example.com\n", "encrypt "},
		{"line unknown", "hello\n", "defer unknown request"},
		{"line too long", strings.Repeat("x", 3000) + "\n", "500 request too long\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := exchange(t, addr, tt.req)
			if !strings.HasPrefix(got, tt.want) {
				t.Errorf("reply %q, want %q", got, tt.want)
			}
		})
	}
}

func TestTemporaryFailureAnswers(t *testing.T) {
	_, addr := startServer(t, testServerEnv())
	for _, tt := range []struct{ req, want string }{
		{ns("policy mxfail.example.com"), "TEMP MX lookup for mxfail.example.com failed: SERVFAIL"},
		{ns("dane bogustlsa.example.com"), "TEMP "},
		{"get timeouttlsa.example.com\n", "400 "},
		{"dane allfail.example.com\n", "defer "},
		{"policy mxfail.example.com\n", "temp "},
	} {
		if got := exchange(t, addr, tt.req); !strings.HasPrefix(got, tt.want) {
			t.Errorf("%q: reply %q, want %q", tt.req, got, tt.want)
		}
	}
}

func TestPersistentAndPipelined(t *testing.T) {
	_, addr := startServer(t, testServerEnv())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(c)
	// Three pipelined socketmap requests, then a tcp_table one, on one connection.
	io.WriteString(c, ns("policy dane.example.com")+ns("policy notlsa.example.com")+ns("policy mixed.example.com"))
	for _, want := range []string{"OK dane-only", "NOTFOUND ", "OK dane"} {
		got, err := readNetstring(br, 1024)
		if err != nil || got != want {
			t.Fatalf("got %q %v, want %q", got, err, want)
		}
	}
	io.WriteString(c, "get dane.example.com\n")
	if line, err := br.ReadString('\n'); err != nil || line != "200 dane-only\n" {
		t.Fatalf("tcp_table after socketmap: %q %v", line, err)
	}
	// A line-protocol request is answered, then the connection closes.
	io.WriteString(c, "dane dane.example.com\n")
	if line, _ := br.ReadString('\n'); !strings.HasPrefix(line, "require ") {
		t.Fatalf("line reply %q", line)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("connection not closed after the line protocol: %v", err)
	}
}

func TestPolicyAllow(t *testing.T) {
	env := testServerEnv()
	env.Allow = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
	_, addr := startServer(t, env)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "get dane.example.com\n")
	if n, err := c.Read(make([]byte, 10)); err == nil {
		t.Errorf("a client outside policy_allow got %d octets", n)
	}
}

func TestIdleTimeout(t *testing.T) {
	env := testServerEnv()
	env.IdleTimeout = 50 * time.Millisecond
	_, addr := startServer(t, env)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read: %v, want EOF", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("idle connection closed after %s", d)
	}
}

func TestSlowRequestTimeout(t *testing.T) {
	env := testServerEnv()
	env.RequestTimeout = 50 * time.Millisecond
	_, addr := startServer(t, env)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	io.WriteString(c, "get dane.exa") // and nothing more
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("read: %v, want EOF after the request timeout", err)
	}
}

// TestConnectionLimit: past policy_max_connections a client waits in the
// listen queue while the connections are busy with requests; it is served
// once one of them is done (and idle, so closed to make room).
func TestConnectionLimit(t *testing.T) {
	env := testServerEnv()
	env.MaxConns = 1
	_, addr := startServer(t, env)
	first, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	io.WriteString(first, "get dane.exa") // a request in progress
	time.Sleep(50 * time.Millisecond)
	second, err := net.Dial("tcp", addr) // queued by the kernel, not served
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	var answered atomic.Bool
	go func() {
		io.WriteString(second, "get dane.example.com\n")
		second.SetDeadline(time.Now().Add(3 * time.Second))
		if line, _ := bufio.NewReader(second).ReadString('\n'); line == "200 dane-only\n" {
			answered.Store(true)
		}
	}()
	time.Sleep(100 * time.Millisecond)
	if answered.Load() {
		t.Fatal("second connection served beyond policy_max_connections")
	}
	io.WriteString(first, "mple.com\n")
	first.SetDeadline(time.Now().Add(3 * time.Second))
	br := bufio.NewReader(first)
	if line, _ := br.ReadString('\n'); line != "200 dane-only\n" {
		t.Fatalf("first: %q", line)
	}
	deadline := time.Now().Add(2 * time.Second)
	for !answered.Load() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if !answered.Load() {
		t.Error("second connection not served after the first went idle")
	}
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the idle first connection: %v, want EOF (closed to make room)", err)
	}
}

// TestIdleConnectionsDoNotBlockNewOnes guards issue 13 item 6: 512 idle
// connections blocked the policy socket for up to policy_idle_timeout (15
// minutes). At the cap, the connection idle longest is closed to make room.
func TestIdleConnectionsDoNotBlockNewOnes(t *testing.T) {
	env := testServerEnv()
	env.MaxConns = 2
	env.IdleTimeout = time.Hour
	_, addr := startServer(t, env)
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		io.WriteString(c, "get dane.example.com\n")
		bufio.NewReader(c).ReadString('\n') // then idle
	}
	start := time.Now()
	if got := exchange(t, addr, "get dane.example.com\n"); got != "200 dane-only\n" {
		t.Errorf("a new client behind idle ones: %q", got)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("served after %v", d)
	}
}

// TestPerClientConnectionCap guards issue 13 item 6: one client could take
// every connection. Past policy_max_connections_per_client a connection
// from that address is closed at once; other addresses are served.
func TestPerClientConnectionCap(t *testing.T) {
	env := testServerEnv()
	env.MaxConnsPerClient = 1
	env.Allow = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	_, addr := startServer(t, env)
	dial := func(local string) net.Conn {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(3 * time.Second))
		return c
	}
	ask := func(c net.Conn) string {
		io.WriteString(c, "get dane.example.com\n")
		line, _ := bufio.NewReader(c).ReadString('\n')
		return line
	}
	if got := ask(dial("127.0.0.1")); got != "200 dane-only\n" {
		t.Fatalf("first: %q", got)
	}
	if got := ask(dial("127.0.0.1")); got != "" {
		t.Errorf("a second connection from the same address got %q, want it closed", got)
	}
	if got := ask(dial("127.0.0.2")); got != "200 dane-only\n" {
		t.Errorf("another address: %q", got)
	}
}

// TestRequestDeadlineHoldsWhateverIsBuffered guards issue 13 item 6: a
// netstring declaring more than was sent escaped policy_request_timeout
// when a "," or a newline was already buffered, and waited for the idle
// timeout instead.
func TestRequestDeadlineHoldsWhateverIsBuffered(t *testing.T) {
	for _, req := range []string{"100:dane dane.example.com,", "100:dane dane.example.com\n"} {
		env := testServerEnv()
		env.RequestTimeout = 100 * time.Millisecond
		env.IdleTimeout = time.Hour
		_, addr := startServer(t, env)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		start := time.Now()
		io.WriteString(c, req)
		io.ReadAll(c)
		if d := time.Since(start); d > time.Second {
			t.Errorf("%q: connection held %v, past the request timeout", req, d)
		}
	}
}

func TestShutdownClosesIdleConnections(t *testing.T) {
	s, addr := startServer(t, testServerEnv())
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "get dane.example.com\n")
	bufio.NewReader(c).ReadString('\n')
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	start := time.Now()
	if err := s.Shutdown(ctx); err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("Shutdown took %s with only an idle client", d)
	}
	if _, err := net.Dial("tcp", addr); err == nil {
		t.Errorf("still accepting after Shutdown")
	}
}

func TestReloadAppliesToNewConnections(t *testing.T) {
	var cur atomic.Pointer[Env]
	cur.Store(testServerEnv())
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := NewServer(cur.Load)
	go s.Serve(l)
	defer s.Shutdown(context.Background())
	addr := l.Addr().String()
	if got := exchange(t, addr, "get dane.example.com\n"); got != "200 dane-only\n" {
		t.Fatalf("before reload: %q", got)
	}
	rules := DefaultRules()
	rules.DisableDomains = MustList("dane.example.com", false)
	cur.Store(TestEnv(testZone(), rules))
	if got := exchange(t, addr, "get dane.example.com\n"); got != "200 may\n" {
		t.Errorf("after reload: %q", got)
	}
}

// TestPolicyLogCache: the first request answered with a decision made
// from DNS logs it at info (a failure at warn) with how the cache
// answered; later ones log at debug with the cache's counters.
func TestPolicyLogCache(t *testing.T) {
	var buf testmta.SyncBuffer
	env := testServerEnv()
	env.Logger = slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	_, addr := startServer(t, env)
	for _, req := range []string{"dane.example.com", "dane.example.com", "mxfail.example.com", "mxfail.example.com"} {
		exchange(t, addr, ns("policy "+req))
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	want := []string{
		"level=INFO msg=policy proto=socketmap client=127.0.0.1:* nexthop=dane.example.com policy=dane-only ocsp=none tlsa_usage=8 cache=miss type=tlsa",
		"level=DEBUG msg=policy proto=socketmap client=127.0.0.1:* nexthop=dane.example.com policy=dane-only cache=hit hits=1 stale=0 misses=1 waits=0 refreshes=0 failures=0 decisions=1",
		"level=WARN msg=policy proto=socketmap client=127.0.0.1:* nexthop=mxfail.example.com policy=temp cache=miss type=no-policy-found reason=",
		"level=DEBUG msg=policy proto=socketmap client=127.0.0.1:* nexthop=mxfail.example.com policy=temp cache=hit hits=2 stale=0 misses=2 waits=0 refreshes=0 failures=1 decisions=2",
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), buf.String())
	}
	for i, w := range want {
		before, after, _ := strings.Cut(w, "*")
		_, rest, _ := strings.Cut(lines[i], " ") // time=…
		if !strings.HasPrefix(rest, before) || !strings.Contains(rest, after[strings.Index(after, " "):]) {
			t.Errorf("line %d:\n%s\nwant\n%s", i+1, rest, w)
		}
	}
}
