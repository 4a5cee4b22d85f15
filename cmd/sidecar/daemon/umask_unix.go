//go:build unix

package daemon

import (
	"net"
	"syscall"
)

// withPrivateUmask runs create under umask 0177. The umask is the
// process's: this runs at start, before any session creates files.
func withPrivateUmask(create func() (net.Listener, error)) (net.Listener, error) {
	old := syscall.Umask(0o177)
	defer syscall.Umask(old)
	return create()
}
