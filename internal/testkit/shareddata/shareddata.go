// Package shareddata locates the public conformance data (SPF, ARC, DKIM,
// DMARC and PSL suites) that tests read from ../shared/testdata beside the
// repository. The data is never copied into the project.
package shareddata

import (
	"os"
	"path/filepath"
	"testing"
)

// Dir returns the ../shared/testdata directory beside the repository that
// contains the working directory, or "" when there is none.
func Dir() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			cand := filepath.Join(dir, "..", "shared", "testdata")
			if st, err := os.Stat(cand); err == nil && st.IsDir() {
				return cand
			}
		}
		cand := filepath.Join(dir, "shared", "testdata")
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			return cand
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Path returns the path of rel under the shared test data. When it is
// missing the test is skipped with a message saying so — or fails, when
// CI=true, because CI always has the data beside the checkout.
func Path(tb testing.TB, rel string) string {
	tb.Helper()
	if dir := Dir(); dir != "" {
		p := filepath.Join(dir, rel)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	msg := "shared test data not found: expected ../shared/testdata/" + rel + " beside the repository"
	if os.Getenv("CI") == "true" {
		tb.Fatal(msg)
	}
	tb.Skip(msg)
	return ""
}
