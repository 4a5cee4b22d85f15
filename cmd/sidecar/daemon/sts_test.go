package daemon

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/internal/testkit/dnstest"
	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
	"github.com/mailsidecar/sidecar/resolver"
)

// TestDaemonSTSRefresh: the daemon refreshes the cached MTA-STS policies
// in the background from the start, without any request: the TXT record
// and the policy host's address are asked of sidecar's own resolver (the
// test's DNS server, not the system's); the fetch fails (nothing listens
// at the zone's address), which is logged, and the cached enforce policy
// stays in force. A reload stops the previous configuration's refresh and
// starts the new one's; shutdown stops it.
func TestDaemonSTSRefresh(t *testing.T) {
	zone := dnstest.NewZone().Add(
		`example.com. MX 10 mx.example.com.`,
		`mx.example.com. A 192.0.2.25`,
		`_mta-sts.example.com. TXT "v=STSv1; id=two"`,
		`mta-sts.example.com. A 127.0.0.9`,
	)
	dns := dnstest.NewServer(t, zone)
	dir := t.TempDir()
	cacheFile := filepath.Join(dir, "mta-sts.json")
	cache, _ := json.Marshal(map[string]any{"version": 1, "entries": []map[string]any{{
		"domain": "example.com", "id": "one", "fetched": time.Now().Add(-96 * time.Hour).UTC(),
		"policy": "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 604800\n",
	}}})
	if err := os.WriteFile(cacheFile, cache, 0o600); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "sidecar.conf")
	conf := "policy_listen = inet:127.0.0.1:0\ndns_servers = " + dns.Addr() +
		"\nmta_sts = yes\nmta_sts_cache_file = " + cacheFile + "\nmta_sts_fetch_timeout = 2s\n"
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	var log testmta.SyncBuffer
	d, err := New(path, registry(), &log)
	if err != nil {
		t.Fatal(err)
	}
	if d.Runtime().stopBackground != nil {
		t.Fatal("background work started before Start")
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()

	// The refresh at start: TXT, then the policy host through our resolver.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("no %s within 10s; queries %v\nlog:\n%s", what, zone.Queries(), log.String())
			}
		}
	}
	asked := func(name string, typ resolver.Type) func() bool {
		return func() bool {
			for _, q := range zone.Queries() {
				if q.Name == name && q.Type == typ {
					return true
				}
			}
			return false
		}
	}
	waitFor("TXT query for _mta-sts.example.com", asked("_mta-sts.example.com", resolver.TypeTXT))
	waitFor("A query for mta-sts.example.com", asked("mta-sts.example.com", resolver.TypeA))
	waitFor("logged refresh failure", func() bool { return strings.Contains(log.String(), "MTA-STS policy refresh failed") })
	if l := log.String(); !strings.Contains(l, "127.0.0.9:443") || !strings.Contains(l, "cached policy id one kept") {
		t.Errorf("the refresh failure does not name the zone's address and the kept policy:\n%s", l)
	}

	// The cached policy still answers (the TXT id changed, the fetch fails).
	c, err := net.Dial("tcp", d.Addrs("policy_listen")[0].String())
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "sts example.com\n")
	line, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || line != "enforce mx.example.com\n" {
		t.Errorf("sts example.com: %q, %v", line, err)
	}

	first := d.Runtime()
	zone.ResetQueries()
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if first.stopBackground != nil {
		t.Error("reload did not stop the previous configuration's refresh")
	}
	if d.Runtime() == first || d.Runtime().stopBackground == nil {
		t.Error("reload did not start the new configuration's refresh")
	}
	// The new configuration's cache (read from the file) refreshes too.
	waitFor("A query for mta-sts.example.com after the reload", asked("mta-sts.example.com", resolver.TypeA))
	if err := d.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if d.Runtime().stopBackground != nil {
		t.Error("shutdown did not stop the refresh")
	}
}
