package main

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func runCmd(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestCheckConfigGolden runs check-config on every testdata/check-config/*.conf
// and compares what it prints, and its exit status, with the .golden file.
func TestCheckConfigGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/check-config/*.conf")
	if len(files) == 0 {
		t.Fatal("no test configurations")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			code, out, errs := runCmd("check-config", f)
			got := "exit " + string(rune('0'+code)) + "\n--- stdout\n" + out + "--- stderr\n" + errs
			golden := strings.TrimSuffix(f, ".conf") + ".golden"
			if *update {
				os.WriteFile(golden, []byte(got), 0o644)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("check-config %s:\n%s\nwant:\n%s", f, got, want)
			}
		})
	}
}

func TestCheckConfigDefault(t *testing.T) {
	code, out, errs := runCmd("check-config")
	if code != 0 || !strings.Contains(out, "(embedded default): OK") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
}

func TestCheckConfigValidFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ok.conf")
	os.WriteFile(path, []byte("acl_smtp_rcpt = r\nbegin acl\nr:\n  accept\n"), 0o644)
	if code, out, errs := runCmd("check-config", path); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if code, out, _ := runCmd("check-config", "-q", path); code != 0 || out != "" {
		t.Errorf("-q: exit %d, printed %q", code, out)
	}
	if code, _, errs := runCmd("check-config", "/nonexistent/sidecar.conf"); code != 1 || !strings.Contains(errs, "cannot read configuration") {
		t.Errorf("missing file: exit %d %s", code, errs)
	}
	if code, _, _ := runCmd("check-config", "a", "b"); code != 2 {
		t.Errorf("two files: exit %d, want 2", code)
	}
}

func TestHelpAndVersion(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"version"}, 0, "sidecar "},
		{[]string{"help"}, 0, "check-config"},
		{[]string{"-h"}, 0, "usage: sidecar"},
		{[]string{"help", "config"}, 0, "dns_trust_ad"},
		{[]string{"help", "acl"}, 0, "sender_domains"},
		{[]string{"help", "default"}, 0, "begin acl"},
		{[]string{"help", "check-config"}, 0, "file:line:col"},
		{[]string{"help", "nonsense"}, 2, "no help on"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"run", "-nonsense"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			code, out, errs := runCmd(tt.args...)
			if code != tt.code || !strings.Contains(out+errs, tt.want) {
				t.Errorf("exit %d (want %d), output lacks %q:\n%s%s", code, tt.code, tt.want, out, errs)
			}
		})
	}
	for _, c := range commands() {
		code, out, errs := runCmd(c.name, "-h")
		if code != 0 || !strings.Contains(out+errs, "usage: sidecar "+c.name) {
			t.Errorf("%s -h: exit %d\n%s%s", c.name, code, out, errs)
		}
	}
}
