package milter

import (
	"net"
	"syscall"
)

// quickAcker returns a function that makes the kernel send a pending ACK
// now (TCP_QUICKACK), for TCP connections; nil for others.
func quickAcker(c net.Conn) func() {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() { rc.Control(setQuickAck) }
}

func setQuickAck(fd uintptr) {
	syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
}
