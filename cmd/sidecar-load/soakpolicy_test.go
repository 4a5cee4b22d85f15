package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The soak test's policy clients: Postfix's socketmap and tcp_table, as
// smtp(8) asks for smtp_tls_policy_maps, one request at a time on a
// connection kept open for a while. Every request must get an answer, and
// the answer must be the next hop's policy or a temporary failure: a DNS
// timeout may defer a delivery, never downgrade it.

// policyWant is what a next hop of the soak zone must get.
type policyWant int

const (
	wantDANEOnly policyWant = iota // secure MX, usable TLSA: dane-only, or TEMP on a DNS timeout
	wantNoPolicy                   // insecure: no policy, or TEMP
	wantTemp                       // every lookup times out: TEMP only
)

// policyQuery is one next hop and what it must get.
type policyQuery struct {
	nexthop string
	want    policyWant
}

// policyTally is what the policy clients saw.
type policyTally struct {
	mu        sync.Mutex
	sent      int
	answered  int
	temp      int // TEMP answers for next hops whose lookups can succeed (a DNS timeout on the way)
	deadTemp  int // TEMP answers for next hops whose lookups always time out
	policies  int // dane-only and no-policy answers as expected
	wrong     int // anything else: a downgrade, an upgrade, a malformed answer
	errors    int // requests with no answer (connection or read error)
	firstBad  []string
	protoSeen map[string]int
}

func (t *policyTally) bad(format string, a ...any) {
	if len(t.firstBad) < 10 {
		t.firstBad = append(t.firstBad, fmt.Sprintf(format, a...))
	}
}

// policyClient runs until ctx ends: socketmap when socketmap is true,
// tcp_table otherwise, a new connection every perConn requests, a random
// pause of up to 2×think between requests.
func policyClient(ctx context.Context, addr string, socketmap bool, queries []policyQuery, perConn int, think time.Duration, t *policyTally) {
	var c net.Conn
	var br *bufio.Reader
	n := 0
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for ctx.Err() == nil {
		if think > 0 {
			select {
			case <-time.After(rand.N(2 * think)):
			case <-ctx.Done():
				return
			}
		}
		if c == nil || n >= perConn {
			if c != nil {
				c.Close()
			}
			var err error
			if c, err = net.DialTimeout("tcp", addr, 5*time.Second); err != nil {
				t.mu.Lock()
				t.errors++
				t.bad("dial: %v", err)
				t.mu.Unlock()
				c = nil
				continue
			}
			br, n = bufio.NewReader(c), 0
		}
		q := queries[rand.IntN(len(queries))]
		n++
		reply, err := policyExchange(c, br, socketmap, q.nexthop)
		t.mu.Lock()
		t.sent++
		if err != nil {
			t.errors++
			t.bad("%s: no answer: %v", q.nexthop, err)
			t.mu.Unlock()
			c.Close()
			c = nil
			continue
		}
		t.answered++
		t.classify(q, reply, socketmap)
		t.mu.Unlock()
	}
}

// policyExchange sends one request and reads its reply (socketmap: a
// netstring "OK dane-only"; tcp_table: a line "200 dane-only").
func policyExchange(c net.Conn, br *bufio.Reader, socketmap bool, nexthop string) (string, error) {
	c.SetDeadline(time.Now().Add(20 * time.Second)) // beyond dane_lookup_timeout
	if socketmap {
		req := "policy " + nexthop
		if _, err := io.WriteString(c, strconv.Itoa(len(req))+":"+req+","); err != nil {
			return "", err
		}
		lenText, err := br.ReadString(':')
		if err != nil {
			return "", err
		}
		n, err := strconv.Atoi(strings.TrimSuffix(lenText, ":"))
		if err != nil || n < 0 || n > 1<<16 {
			return "", fmt.Errorf("bad netstring length %q", lenText)
		}
		buf := make([]byte, n+1)
		if _, err := io.ReadFull(br, buf); err != nil {
			return "", err
		}
		if buf[n] != ',' {
			return "", fmt.Errorf("netstring %q not ended by a comma", buf)
		}
		return string(buf[:n]), nil
	}
	if _, err := io.WriteString(c, "get "+nexthop+"\n"); err != nil {
		return "", err
	}
	line, err := br.ReadString('\n')
	return strings.TrimSuffix(line, "\n"), err
}

// classify counts one reply; t.mu is held.
func (t *policyTally) classify(q policyQuery, reply string, socketmap bool) {
	var dane, none, temp string
	if socketmap {
		dane, none, temp = "OK dane-only", "NOTFOUND ", "TEMP "
	} else {
		dane, none, temp = "200 dane-only", "500 ", "400 "
	}
	proto := "tcp_table"
	if socketmap {
		proto = "socketmap"
	}
	t.protoSeen[proto]++
	isTemp := strings.HasPrefix(reply, temp)
	switch {
	case q.want == wantTemp && isTemp:
		t.deadTemp++
	case q.want != wantTemp && isTemp:
		t.temp++
	case q.want == wantDANEOnly && reply == dane,
		q.want == wantNoPolicy && strings.HasPrefix(reply, none):
		t.policies++
	default:
		t.wrong++
		t.bad("%s %s: answer %q", proto, q.nexthop, reply)
	}
}
