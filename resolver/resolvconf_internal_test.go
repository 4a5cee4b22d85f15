package resolver

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNewWithoutResolvConfServersAsksLoopback(t *testing.T) {
	dir := t.TempDir()
	for name, text := range map[string]string{"missing": "", "empty": "# no nameserver lines\nsearch example.org\n"} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(dir, name)
			if text != "" {
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			old := resolvConfPath
			resolvConfPath = path
			defer func() { resolvConfPath = old }()
			r, err := New(Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := r.Servers(); len(got) != 1 || got[0] != "127.0.0.1:53" {
				t.Errorf("servers %v, want [127.0.0.1:53]", got)
			}
		})
	}
}
