package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFile: the file gets the new content and no temporary file is
// left; a write into a missing directory fails and leaves nothing.
func TestWriteFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "f")
	for _, content := range []string{"one\n", "two\n"} {
		if err := WriteFile(path, ".f-*", []byte(content)); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); string(got) != content {
			t.Errorf("content %q, want %q", got, content)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files in the directory, want 1", len(entries))
	}
	if err := WriteFile(filepath.Join(dir, "missing", "f"), ".f-*", nil); err == nil {
		t.Error("a write into a missing directory succeeded")
	}
}
