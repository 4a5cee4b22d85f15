package tlsrpt

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestState: what is recorded survives a reload, is dropped after
// StateLifetime, and a broken file is an error rather than an empty
// state (which would send everything again).
func TestState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	t0 := time.Date(2025, 12, 5, 1, 10, 0, 0, time.UTC)
	st, err := LoadState(path, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Record("r.json.gz", "mailto:a@example.net", StateEntry{Time: t0, Status: Sent}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		after time.Duration
		kept  bool
	}{{time.Hour, true}, {StateLifetime - time.Hour, true}, {StateLifetime + time.Hour, false}} {
		st, err := LoadState(path, t0.Add(tt.after))
		if err != nil {
			t.Fatal(err)
		}
		e, ok := st.Lookup("r.json.gz", "mailto:a@example.net")
		if ok != tt.kept || ok && e.Status != Sent {
			t.Errorf("after %v: %v %v, want kept=%v", tt.after, e, ok, tt.kept)
		}
	}
	if err := os.WriteFile(path, []byte(`{"done":`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadState(path, t0); err == nil {
		t.Error("a broken state file was read as empty")
	}
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("%d files beside the state file: temporary files left", len(entries)-1)
	}
}
