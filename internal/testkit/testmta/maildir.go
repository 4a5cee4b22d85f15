package testmta

import (
	"os"
	"os/user"
	"strconv"
	"strings"
	"testing"
)

// Maildirs is a private Postfix that delivers the virtual mailboxes of
// its domains into maildirs under Base (mailbox "rua/" is Base/rua/new/…).
type Maildirs struct {
	*Postfix
	Addr string // its smtpd listener, 127.0.0.1:PORT
	Base string
}

// StartMaildirs starts Postfix named name (its myhostname is "mx."+name)
// delivering the addresses of mailboxes (address -> maildir, "rua/") in
// domains; more main.cf lines may follow. It skips the test when Postfix
// is missing (fails under CI=true).
func StartMaildirs(t testing.TB, name string, domains []string, mailboxes map[string]string, main ...string) *Maildirs {
	t.Helper()
	return StartMaildirsConfig(t, name, domains, mailboxes, Config{Main: main})
}

// StartMaildirsConfig is StartMaildirs with more of the instance's
// configuration: c.Main lines added after the maildir ones, c.Files
// written into its config directory (c.Name and c.Listen are set here).
func StartMaildirsConfig(t testing.TB, name string, domains []string, mailboxes map[string]string, c Config) *Maildirs {
	t.Helper()
	NeedPostfix(t, "maildir delivery")
	pfUser, err := user.Lookup("postfix")
	if err != nil {
		t.Fatal(err)
	}
	base, err := os.MkdirTemp("", "sidecar-maildir-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	if os.Geteuid() == 0 {
		uid, _ := strconv.Atoi(pfUser.Uid)
		gid, _ := strconv.Atoi(pfUser.Gid)
		os.Chown(base, uid, gid)
	}
	var boxes []string
	for addr, dir := range mailboxes {
		boxes = append(boxes, addr+"="+dir)
	}
	addr := "127.0.0.1:" + strconv.Itoa(FreePort(t))
	pf := Start(t, Config{Name: name, Listen: []string{addr}, Files: c.Files, Services: append([]string{"virtual unix - n n - - virtual"}, c.Services...),
		Main: append([]string{
			"myhostname = mx." + name,
			"virtual_mailbox_domains = " + strings.Join(domains, " "),
			"virtual_mailbox_base = " + base,
			"virtual_mailbox_maps = inline:{ " + strings.Join(boxes, ", ") + " }",
			"virtual_uid_maps = static:" + pfUser.Uid,
			"virtual_gid_maps = static:" + pfUser.Gid,
			"virtual_minimum_uid = 1",
		}, c.Main...),
	})
	return &Maildirs{Postfix: pf, Addr: addr, Base: base}
}
