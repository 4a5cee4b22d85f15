//go:build !unix

package daemon

import "net"

func withPrivateUmask(create func() (net.Listener, error)) (net.Listener, error) { return create() }
