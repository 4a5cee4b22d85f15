package report

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/config"
)

// TestMailClientAuth: report_smtp_user and report_smtp_password_file
// give the report mail client its account, read at load; one without the
// other, or a file that cannot be read or holds no password, is an error
// at the option.
func TestMailClientAuth(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("tr0ub4dor&3\nsecond line ignored\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("\n"), 0o600)
	tests := []struct {
		name, conf, wantErr string
		wantUser, wantPass  string
	}{
		{name: "none", conf: "report_smtp = 192.0.2.1:587\n"},
		{name: "both", conf: "report_smtp_user = dmarc@example.org\nreport_smtp_password_file = " + pw + "\n",
			wantUser: "dmarc@example.org", wantPass: "tr0ub4dor&3"},
		{name: "user alone", conf: "report_smtp_user = dmarc@example.org\n", wantErr: "test.conf:1:20: report_smtp_user needs report_smtp_password_file"},
		{name: "file alone", conf: "report_smtp_password_file = " + pw + "\n", wantErr: "test.conf:1:29: report_smtp_password_file is set but report_smtp_user is not"},
		{name: "missing file", conf: "report_smtp_user = u\nreport_smtp_password_file = " + dir + "/nope\n", wantErr: "test.conf:2:29: report_smtp_password_file: open " + dir + "/nope: no such file"},
		{name: "empty file", conf: "report_smtp_user = u\nreport_smtp_password_file = " + empty + "\n", wantErr: "empty first line: no password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Load("test.conf", []byte(tt.conf))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := MailClient(cfg, "mx.example.org")
			switch {
			case tt.wantUser == "" && c.Auth != nil:
				t.Errorf("Auth = %+v, want none", c.Auth)
			case tt.wantUser != "" && (c.Auth == nil || c.Auth.Username != tt.wantUser || c.Auth.Password != tt.wantPass):
				t.Errorf("Auth = %+v, want %s / %s", c.Auth, tt.wantUser, tt.wantPass)
			}
		})
	}
}
