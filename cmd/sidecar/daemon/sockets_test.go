//go:build unix

package daemon

import (
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mailsidecar/sidecar/config"
)

// TestUnixSocketPermissions guards issue 13 item 7: unix sockets were
// created mode 0666 whatever the umask, so any local user could talk to
// the milter and the policy socket. They now get *_socket_mode (default
// 0660) and *_socket_owner / *_socket_group.
func TestUnixSocketPermissions(t *testing.T) {
	dir := t.TempDir()
	group := strconv.Itoa(os.Getgid())
	conf := "milter_listen = unix:" + dir + "/milter.sock\n" +
		"policy_listen = unix:" + dir + "/policy.sock\n" +
		"policy_socket_mode = 0600\n" +
		"milter_socket_group = " + group + "\n"
	path := filepath.Join(dir, "s.conf")
	os.WriteFile(path, []byte(conf), 0o644)
	old := syscall.Umask(0) // the old code's 0666 showed whatever the umask
	defer syscall.Umask(old)
	d, err := New(path, registry(), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown()
	for name, want := range map[string]os.FileMode{"milter.sock": 0o660, "policy.sock": 0o600} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s: mode %#o, want %#o", name, got, want)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && name == "milter.sock" && strconv.Itoa(int(st.Gid)) != group {
			t.Errorf("%s: group %d, want %s", name, st.Gid, group)
		}
	}
}

func TestUnixSocketOptionErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.conf")
	os.WriteFile(path, []byte("milter_socket_mode = 0999\npolicy_socket_group = no-such-group-here\n"), 0o644)
	_, _, err := Load(path, registry())
	var got []string
	for _, e := range config.AsList(err) {
		got = append(got, e.Error())
	}
	want := []string{
		path + `:1:22: milter_socket_mode: "0999" is not an octal file mode such as 0660`,
		path + `:2:23: policy_socket_group: no group "no-such-group-here" on this host`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
