package resolver

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// ServersFromResolvConf returns the addresses of the nameserver lines of a
// resolv.conf(5) file, in order, as written (without port). Other lines
// and comments (from '#' or ';') are ignored. It fails when the file cannot
// be read or names no server.
func ServersFromResolvConf(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("resolver: %w", err)
	}
	defer f.Close()
	var servers []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		fields := strings.Fields(line)
		if len(fields) >= 2 && fields[0] == "nameserver" {
			servers = append(servers, fields[1])
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("resolver: read %s: %w", path, err)
	}
	if len(servers) == 0 {
		return nil, fmt.Errorf("resolver: %s names no nameserver", path)
	}
	return servers, nil
}
