//go:build !linux

package milter

import "net"

// quickAcker is Linux-only; elsewhere delayed ACKs stay as they are.
func quickAcker(net.Conn) func() { return nil }
