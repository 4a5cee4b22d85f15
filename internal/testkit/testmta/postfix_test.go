package testmta

import (
	"fmt"
	"net/smtp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestMergeMain(t *testing.T) {
	got := mergeMain([]string{"a = 1", "b = 2"}, []string{"c = 3", "a = 4", "c=5"})
	want := []string{"a = 4", "b = 2", "c=5"}
	if !slices.Equal(got, want) {
		t.Errorf("mergeMain: %q, want %q", got, want)
	}
}

func TestRelayhost(t *testing.T) {
	if got := Relayhost("127.0.0.1:25"); got != "[127.0.0.1]:25" {
		t.Errorf("Relayhost: %q", got)
	}
}

// TestStart starts an instance and has it refuse to relay for a client
// outside mynetworks.
func TestStart(t *testing.T) {
	NeedPostfix(t, "testmta Postfix test")
	addr := fmt.Sprintf("127.0.0.1:%d", FreePort(t))
	pf := Start(t, Config{
		Name:   "testmta",
		Listen: []string{addr},
		Main: []string{
			"myhostname = mx.testmta.example",
			"inet_interfaces = 127.0.0.1",
			"inet_protocols = ipv4",
			"mynetworks = 192.0.2.0/24",
		},
	})
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.org"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("b@example.org"); err == nil || !strings.Contains(err.Error(), "554") {
		t.Errorf("RCPT from outside mynetworks: %v, want 554 relay access denied", err)
	}
	c.Quit()
	line := pf.WaitLog(t, "NOQUEUE: reject: RCPT", 10*time.Second)
	if !strings.Contains(line, "postfix/smtpd") || !strings.Contains(line, "to=<b@example.org>") {
		t.Errorf("log line %q", line)
	}
}
