package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/config"
)

// badOption is a value an option must refuse, and the byte offset in the
// value where check-config must point.
type badOption struct {
	value string
	off   int
}

// badByKind are values of the wrong shape for each kind of option.
var badByKind = map[config.Kind]badOption{
	config.KindBool:       {"maybe", 0},
	config.KindInt:        {"12x", 0},
	config.KindDuration:   {"5x", 0},
	config.KindPath:       {"relative/file", 0},
	config.KindEnum:       {"nosuch", 0},
	config.KindListen:     {"inet:127.0.0.1:8894 bogus:1", 20},
	config.KindNetList:    {"192.0.2.0/24 : 192.0.2.300", 15},
	config.KindServerList: {"192.0.2.1 nosuch", 10},
	config.KindHostList:   {"192.0.2.1 : ^[bad", 12},
	config.KindDomainList: {"example.org : ^[bad", 14},
	config.KindACLName:    {"no_such_acl", 0},
}

// badString are values the string options that check their value refuse.
var badString = map[string]badOption{
	"arc_sign":                  {"example.com", 0},
	"arc_sign_headers":          {"from : fr om", 7},
	"authres_strip_ids":         {"mx.example : a b", 0},
	"dkim_canon":                {"loose", 0},
	"dkim_domain":               {"exa mple.com", 0},
	"dkim_hash":                 {"sha1", 0},
	"dkim_private_key":          {"/nonexistent/dkim.pem", 0},
	"dkim_selector":             {"sel : bad sel", 6},
	"dkim_sign_headers":         {"from : fr om", 7},
	"dkim_timestamps":           {"soon", 0},
	"authserv_id":               {"mx example", 0},
	"dmarc_forensic_sender":     {"postmaster at example", 0},
	"dmarc_forensic_rate":       {"ten", 0},
	"milter_socket_group":       {"no-such-group-sidecar", 0},
	"milter_socket_mode":        {"u+rw", 0},
	"milter_socket_owner":       {"no-such-user-sidecar", 0},
	"policy_socket_group":       {"no-such-group-sidecar", 0},
	"policy_socket_mode":        {"0999", 0},
	"policy_socket_owner":       {"no-such-user-sidecar", 0},
	"primary_hostname":          {"mx..example", 0},
	"report_database":           {"reports.db", 0},
	"report_email":              {"dmarc reports at example", 0},
	"report_smtp":               {"localhost", 0},
	"report_smtp_password_file": {"secret.txt", 0},
	"report_smtp_user":          {"reports", 0}, // without its password file
	"spf_guess":                 {"v=spf1 bogus", 0},
}

// exemptString are the string options with no wrong value to try, and why.
var exemptString = map[string]string{
	"tls_report_org_name": "free text: any organization name is valid (RFC 8460 organization-name)",
	"tls_report_contact":  "free text: an address or a URI (RFC 8460 contact-info)",
	"report_org_name":     "free text: any name is a name",
	"report_contact":      "free text: a URL, a telephone number or a sentence",
}

// TestCheckConfigRefusesEveryBadOption walks every registered option,
// sets it to a wrong value on line 2 of a file, and runs check-config
// (the path the daemon loads with): it must fail, pointing at the value
// with a caret, for every kind, including the options that features
// compile (lists, keys, SPF records) and not only those config parses.
func TestCheckConfigRefusesEveryBadOption(t *testing.T) {
	dir := t.TempDir()
	for _, d := range config.Registered() {
		bad, ok := badByKind[d.Kind]
		if d.Kind == config.KindString {
			if why, ok := exemptString[d.Name]; ok {
				t.Logf("%s: exempt: %s", d.Name, why)
				continue
			}
			bad, ok = badString[d.Name]
			if !ok {
				t.Errorf("%s: a string option with no wrong value to try: add one to badString, or a reason to exemptString", d.Name)
				continue
			}
		} else if !ok {
			t.Errorf("%s: no wrong value for kind %s", d.Name, d.Kind)
			continue
		}
		t.Run(d.Name, func(t *testing.T) {
			path := filepath.Join(dir, d.Name+".conf")
			line := d.Name + " = " + bad.value
			if err := os.WriteFile(path, []byte("# one wrong option\n"+line+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			code, out, errs := runCmd("check-config", path)
			if code != 1 {
				t.Fatalf("%s: exit %d, want 1\n%s%s", line, code, out, errs)
			}
			col := len(d.Name) + len(" = ") + 1 + bad.off
			want := fmt.Sprintf("%s:2:%d: ", path, col)
			lines := strings.Split(errs, "\n")
			for i, l := range lines {
				if strings.HasPrefix(l, want) && !strings.Contains(l, "warning:") {
					if i+2 >= len(lines) || strings.TrimSpace(lines[i+1]) != line || lines[i+2] != "    "+strings.Repeat(" ", col-1)+"^" {
						t.Errorf("%s: no source line and caret under column %d:\n%s", line, col, errs)
					}
					return
				}
			}
			t.Errorf("%s: no error at %s\n%s", line, want, errs)
		})
	}
}
