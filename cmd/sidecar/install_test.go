package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/config"
)

// TestMakeInstall runs "make install" into a temporary PREFIX and checks
// what it put there: the binary, the man page written from the help text
// (every command and option), the example configuration, which
// check-config accepts, and the systemd unit, which systemd-analyze
// verify accepts (its Documentation=man:sidecar(8) included).
func TestMakeInstall(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping make install in -short mode: it builds the binary")
	}
	needBinary(t, "/usr/bin/systemd-analyze", "systemd", "make install test")
	root := t.TempDir()
	prefix, etc := filepath.Join(root, "usr"), filepath.Join(root, "etc")
	cmd := exec.Command("make", "-C", "../..", "install", "PREFIX="+prefix, "SYSCONFDIR="+etc)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install: %v\n%s", err, out)
	}
	bin := filepath.Join(prefix, "sbin", "sidecar")
	unit := filepath.Join(prefix, "lib", "systemd", "system", "sidecar.service")
	man := filepath.Join(prefix, "share", "man", "man8", "sidecar.8")
	example := filepath.Join(etc, "sidecar", "sidecar.conf.example")
	for _, f := range []string{bin, unit, man, example, filepath.Join(etc, "sidecar", "sidecar.conf")} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("not installed: %v", err)
		}
	}

	page, _ := os.ReadFile(man)
	for _, c := range commands() {
		if !strings.Contains(string(page), ".B "+roff(c.name)+"\n"+roff(c.summary)+"\n") {
			t.Errorf("the man page lacks command %s", c.name)
		}
	}
	for _, d := range config.Registered() {
		if !strings.Contains(string(page), ".BR "+roff(d.Name)+" ") {
			t.Errorf("the man page lacks option %s", d.Name)
		}
	}

	if out, err := exec.Command(bin, "check-config", example).CombinedOutput(); err != nil {
		t.Errorf("check-config of the installed example: %v\n%s", err, out)
	}
	text, _ := os.ReadFile(unit)
	for _, want := range []string{
		"ExecStart=" + bin + " run -config " + etc + "/sidecar/sidecar.conf\n",
		"ExecReload=/bin/kill -HUP $MAINPID\n", "User=sidecar\n", "NoNewPrivileges=yes\n",
		"ProtectSystem=strict\n", "PrivateTmp=yes\n", "CapabilityBoundingSet=\n", "RuntimeDirectory=sidecar\n", "ReadWritePaths=",
	} {
		if !strings.Contains(string(text), want) {
			t.Errorf("the unit lacks %q", want)
		}
	}
	verify := exec.Command("/usr/bin/systemd-analyze", "verify", unit)
	verify.Env = append(os.Environ(), "MANPATH="+filepath.Join(prefix, "share", "man"))
	if out, err := verify.CombinedOutput(); err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}

	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "module:   github.com/mailsidecar/sidecar") ||
		!strings.Contains(string(out), "revision: ") || !strings.Contains(string(out), "build:    GOOS=") {
		t.Errorf("sidecar version: %v\n%s", err, out)
	}
}
