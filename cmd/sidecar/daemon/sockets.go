package daemon

import (
	"fmt"
	"net"
	"os"
	"os/user"
	"strconv"

	"github.com/mailsidecar/sidecar/config"
)

// The options of unix-socket listeners. A unix-socket client is not
// checked against milter_allow or policy_allow (it has no address): the
// socket's mode, owner and group decide who may connect, as Postfix users
// expect for a socket under /var/spool/postfix.
func init() {
	for _, p := range []string{"milter", "policy"} {
		for _, d := range []config.OptionDef{
			{Name: p + "_socket_mode", Kind: config.KindString, Default: "0660", Doc: "permissions (octal) of the " + p + " unix socket: who may connect"},
			{Name: p + "_socket_owner", Kind: config.KindString, Doc: "owner (user name or number) of the " + p + " unix socket; empty leaves the daemon's user"},
			{Name: p + "_socket_group", Kind: config.KindString, Doc: "group (name or number) of the " + p + " unix socket, such as postfix; empty leaves the daemon's group"},
		} {
			config.RegisterOption(d)
		}
	}
}

// socketPerms is what a unix-socket listener gets once created.
type socketPerms struct {
	mode     os.FileMode
	uid, gid int // -1: unchanged
}

// socketPermsFor reads the socket options of a listener option
// ("milter_listen", "policy_listen"), reporting bad values at their
// position.
func socketPermsFor(cfg *config.Config, listen string) socketPerms {
	prefix := listen[:len(listen)-len("_listen")]
	sp := socketPerms{mode: 0o660, uid: -1, gid: -1}
	if s := cfg.Get(prefix + "_socket_mode"); s.Str != "" {
		m, err := strconv.ParseUint(s.Str, 8, 32)
		if err != nil || m > 0o777 {
			cfg.Reporter.Errorf(s.Value.Pos, "%s_socket_mode: %q is not an octal file mode such as 0660", prefix, s.Str)
		} else {
			sp.mode = os.FileMode(m)
		}
	}
	sp.uid = idOption(cfg, prefix+"_socket_owner", "user", func(n string) (string, error) {
		u, err := user.Lookup(n)
		if err != nil {
			return "", err
		}
		return u.Uid, nil
	})
	sp.gid = idOption(cfg, prefix+"_socket_group", "group", func(n string) (string, error) {
		g, err := user.LookupGroup(n)
		if err != nil {
			return "", err
		}
		return g.Gid, nil
	})
	return sp
}

// idOption reads a user or group option: a number, or a name looked up
// with byName; -1 when it is empty or unknown (reported at its position).
func idOption(cfg *config.Config, name, what string, byName func(string) (string, error)) int {
	s := cfg.Get(name)
	if s.Str == "" {
		return -1
	}
	if n, err := strconv.Atoi(s.Str); err == nil && n >= 0 {
		return n
	}
	if id, err := byName(s.Str); err == nil {
		if n, err := strconv.Atoi(id); err == nil {
			return n
		}
	}
	cfg.Reporter.Errorf(s.Value.Pos, "%s: no %s %q on this host", name, what, s.Str)
	return -1
}

// checkSockets reports bad socket options of both listeners.
func checkSockets(cfg *config.Config) {
	socketPermsFor(cfg, "milter_listen")
	socketPermsFor(cfg, "policy_listen")
}

// listenUnix creates a unix socket at path with the permissions sp: the
// socket is created under a umask that lets nobody else in, then given
// its mode, owner and group, so that no client can connect before it has
// them.
func listenUnix(path string, sp socketPerms) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(path) // a stale socket from an earlier run
	}
	ln, err := withPrivateUmask(func() (net.Listener, error) { return net.Listen("unix", path) })
	if err != nil {
		return nil, err
	}
	if sp.uid >= 0 || sp.gid >= 0 {
		if err := os.Chown(path, sp.uid, sp.gid); err != nil {
			ln.Close()
			return nil, fmt.Errorf("socket owner and group: %w", err)
		}
	}
	if err := os.Chmod(path, sp.mode); err != nil {
		ln.Close()
		return nil, fmt.Errorf("socket mode: %w", err)
	}
	return ln, nil
}
