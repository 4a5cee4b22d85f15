package daemon

import (
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/checks"
	"github.com/mailsidecar/sidecar/config"
)

func registry() *acl.Registry {
	reg := acl.NewRegistry()
	checks.Register(reg)
	return reg
}

func TestLoadReportsOptionAndACLErrorsTogether(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.conf")
	os.WriteFile(path, []byte("dns_timeout = 5x\nacl_smtp_rcpt = r\nbegin acl\nr:\n  deny domian = x\n"), 0o644)
	_, prog, err := Load(path, registry())
	if prog != nil || err == nil {
		t.Fatal("a bad file loaded")
	}
	var got []string
	for _, e := range config.AsList(err) {
		got = append(got, e.Error())
	}
	want := []string{
		path + `:1:15: dns_timeout: unknown time unit "x" in "5x": use s, m, h, d or w`,
		path + `:5:8: unknown condition or modifier "domian": did you mean "domains"?`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, _, err := Load(filepath.Join(t.TempDir(), "missing.conf"), registry()); err == nil || !strings.Contains(err.Error(), "cannot read configuration") {
		t.Errorf("missing file: %v", err)
	}
}

func TestBuild(t *testing.T) {
	cfg, prog, err := Load("", registry())
	if err != nil {
		t.Fatal(err)
	}
	rt, err := Build(cfg, prog, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	if rt.Milter.AuthservID != host || rt.Services.PrimaryHostname != host {
		t.Errorf("authserv-id %q, primary host %q, want the host name %q", rt.Milter.AuthservID, rt.Services.PrimaryHostname, host)
	}
	var hooks []string
	for _, h := range rt.Program.BodyHooks() {
		hooks = append(hooks, h.Name)
	}
	sort.Strings(hooks)
	if strings.Join(hooks, " ") != "arc dkim dkim_sign dmarc_forensic dsn" || rt.Policy == nil || rt.Resolver == nil {
		t.Errorf("runtime not wired: %+v", rt)
	}

	text := "primary_hostname = mx.example.net\nauthres_strip_ids = old.example : older.example\ndns_servers = 127.0.0.1:5353\n"
	cfg, err = config.Load("t.conf", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	prog, err = acl.Compile(cfg, registry())
	if err != nil {
		t.Fatal(err)
	}
	rt, err = Build(cfg, prog, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	if rt.Milter.AuthservID != "mx.example.net" || strings.Join(rt.Milter.StripIDs, ",") != "old.example,older.example" {
		t.Errorf("authserv-id %q, strip ids %q", rt.Milter.AuthservID, rt.Milter.StripIDs)
	}
	if got := strings.Join(rt.Resolver.Servers(), " "); got != "127.0.0.1:5353" {
		t.Errorf("DNS servers %q", got)
	}
}
