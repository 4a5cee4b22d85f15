// Package xmlschema validates DMARC aggregate reports in tests with
// xmllint --schema (Debian libxml2-utils) against the RFC 9990 schema in
// ../shared/testdata/dmarc/. Without xmllint the test is skipped with the
// reason, or fails under CI=true.
package xmlschema

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/shareddata"
)

// RFC9990 is the schema's path under the shared test data.
const RFC9990 = "dmarc/dmarc-xml-0.2.xsd"

// Validate checks a report (gzip-compressed or plain XML) against the
// RFC 9990 schema and fails the test with xmllint's words.
func Validate(t testing.TB, doc []byte) {
	t.Helper()
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		msg := "xmllint not found: install the Debian package libxml2-utils (scripts/debian-packages.txt)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	schema := shareddata.Path(t, RFC9990)
	if len(doc) > 2 && doc[0] == 0x1f && doc[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if doc, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(path, doc, 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(xmllint, "--noout", "--schema", schema, path).CombinedOutput(); err != nil {
		t.Fatalf("xmllint --schema %s: %v\n%s\n%s", RFC9990, err, out, doc)
	}
}
