package milter

import (
	"fmt"
	"testing"

	"github.com/mailsidecar/sidecar/internal/testkit/testmta"
)

// postfixE2E is a private Postfix like startPostfix's (postfix_test.go),
// listening on 127.0.0.1 and, when it can be bound, on [::1].
type postfixE2E struct {
	dir         string
	smtp, smtp6 string
}

func startPostfixE2E(t *testing.T, milterAddr, sinkAddr string) *postfixE2E {
	t.Helper()
	pf := &postfixE2E{smtp: fmt.Sprintf("127.0.0.1:%d", testmta.FreePort(t))}
	listen := []string{pf.smtp}
	main := milterMain(milterAddr, sinkAddr)
	if ipv6Loopback() {
		pf.smtp6 = fmt.Sprintf("[::1]:%d", freePort6(t))
		listen = append(listen, pf.smtp6)
		main = append(main,
			"inet_interfaces = 127.0.0.1, [::1]",
			"inet_protocols = all",
			"mynetworks = 127.0.0.0/8 [::1]/128")
	}
	pf.dir = testmta.Start(t, testmta.Config{Name: "e2e", Listen: listen, Main: main}).Dir
	return pf
}

func TestE2EPostfix(t *testing.T) {
	needPostfix(t)
	swaks := needSwaks(t)
	m := startE2EMilter(t)
	sink := startE2ESink(t)
	pf := startPostfixE2E(t, m.addr, sink.l.Addr().String())
	runE2EScenarios(t, e2eMTA{name: "postfix", swaks: swaks, smtp: pf.smtp, smtp6: pf.smtp6}, m, sink)
}
