package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailsidecar/sidecar/dkim"
)

func TestDKIMSignCommand(t *testing.T) {
	dir := t.TempDir()
	recs := signE2EKeys(t, dir)
	z := signE2EZone(recs)
	msgPath := filepath.Join(dir, "msg.eml")
	msg := "From: Alice <alice@example.com>\nTo: bob@example.net\nSubject: hi\n\nHello\n"
	if err := os.WriteFile(msgPath, []byte(msg), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCmd("dkim-sign", "-domain", "example.com", "-selector", "rsa : ed",
		"-key", dir+"/example.com.${dkim_selector}.pem", msgPath)
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if !strings.HasSuffix(out, msg) || strings.Contains(out, "\r") {
		t.Errorf("the message is not printed unchanged, in its LF line ends, below the signatures:\n%s", out)
	}
	rs, err := (&dkim.Verifier{DNS: z}).Verify(context.Background(), strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Selector != "rsa" || rs[0].Status != dkim.Pass || rs[1].Selector != "ed" || rs[1].Status != dkim.Pass {
		t.Errorf("verification: %+v", rs)
	}

	// A configuration's ACL that disables signing is obeyed.
	conf := filepath.Join(dir, "sidecar.conf")
	os.WriteFile(conf, []byte("dkim_domain = ${lc:${domain:$h_from:}}\ndkim_selector = ed\ndkim_private_key = "+dir+
		"/${dkim_domain}.${dkim_selector}.pem\nacl_smtp_data = d\nbegin acl\nd:\n  accept control = dkim_disable_sign\n"), 0o644)
	if code, out, errs := runCmd("dkim-sign", "-config", conf, msgPath); code != 1 || !strings.Contains(errs, "no signature added") || out != "" {
		t.Errorf("dkim_disable_sign: exit %d\n%s%s", code, out, errs)
	}
	// A missing key is said.
	if code, _, errs := runCmd("dkim-sign", "-domain", "example.com", "-selector", "nokey",
		"-key", dir+"/${dkim_selector}.pem", msgPath); code != 1 || !strings.Contains(errs, "cannot read the key file") {
		t.Errorf("missing key: exit %d\n%s", code, errs)
	}
	if code, _, errs := runCmd("dkim-sign", msgPath); code != 2 || !strings.Contains(errs, "no dkim_domain") {
		t.Errorf("no domain: exit %d\n%s", code, errs)
	}
}
