package checks

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailsidecar/sidecar/acl"
	"github.com/mailsidecar/sidecar/arc"
	"github.com/mailsidecar/sidecar/config"
)

// historyProg loads conf with dmarc_history_file in a temporary directory
// and attaches the file, as the daemon's Build does.
func historyProg(t *testing.T, conf string) (*acl.Program, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "dmarc.dat")
	p := load(t, "dmarc_history_file = "+path+"\n"+conf)
	if err := p.Attach(); err != nil {
		t.Fatal(err)
	}
	return p, path
}

// records splits a history file into records (each starting with "job").
func records(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	var out []string
	for text != "" {
		i := strings.Index(text, "\njob ")
		if i < 0 {
			out = append(out, text)
			break
		}
		out = append(out, text[:i+1])
		text = text[i+1:]
	}
	return out
}

func TestHistoryRecords(t *testing.T) {
	rk, _ := testKeys()
	p, path := historyProg(t, varsACL+"r:\n  warn control = dmarc_disable_verify\n  accept\n")
	z := dmarcZone()
	send := func(queue, ip, sender, msg string) {
		deliver(t, p, svcFor(z), delivery{ip: ip, helo: "mail.client.example", sender: sender,
			rcpts: []string{"bob@example.org"}, msg: msg, queueID: queue})
	}
	send("Q1", "203.0.113.9", "alice@sender.example", plainMessage("alice@sender.example", 10))
	send("Q2", "192.0.2.5", "bounce@mail.sender.example",
		signMessage(t, plainMessage("alice@sender.example", 10), "sender.example", "rsa", rk, nil))
	send("Q3", "192.0.2.5", "", plainMessage("alice@norec.example", 10))
	send("Q4", "192.0.2.5", "alice@sender.example", "To: x@example.org\r\n\r\nno From\r\n") // nofrom: no record
	send("Q5", "", "alice@sender.example", plainMessage("alice@sender.example", 10))        // local: off, no record
	send("Q6", "2001:db8::25", "alice@quar.example", plainMessage("alice@quar.example", 10))
	got := records(t, path)
	want := []string{`job Q1
reporter mx.example.net
received 1700000000
ipaddr 203.0.113.9
from sender.example
mfrom sender.example
spf 7
pdomain sender.example
policy 16
rua mailto:dmarc-agg@sender.example
pct 100
adkim 114
aspf 114
p 114
sp 0
align_dkim 5
align_spf 5
arc 7
arc_policy 2 json:[]
action 2
`, `job Q2
reporter mx.example.net
received 1700000000
ipaddr 192.0.2.5
from sender.example
mfrom mail.sender.example
dkim sender.example rsa 0
spf 0
pdomain sender.example
policy 15
rua mailto:dmarc-agg@sender.example
pct 100
adkim 114
aspf 114
p 114
sp 0
align_dkim 4
align_spf 4
arc 7
arc_policy 2 json:[]
action 2
`, `job Q3
reporter mx.example.net
received 1700000000
ipaddr 192.0.2.5
from norec.example
mfrom 
spf 6
pdomain norec.example
policy 14
rua -
pct 0
adkim 0
aspf 0
p 0
sp 0
align_dkim 0
align_spf 0
arc 7
arc_policy 2 json:[]
action 2
`, `job Q6
reporter mx.example.net
received 1700000000
ipaddr 2001:db8::25
from quar.example
mfrom quar.example
spf 7
pdomain quar.example
policy 17
rua -
pct 100
adkim 114
aspf 114
p 113
sp 110
align_dkim 5
align_spf 5
arc 7
arc_policy 2 json:[]
action 2
`}
	if strings.Join(got, "") != strings.Join(want, "") {
		t.Errorf("history file:\n%s\nwant:\n%s", strings.Join(got, ""), strings.Join(want, ""))
	}
}

// With a dmarc_status condition in the configuration, the action is the
// one the policy asks for (Exim's); a message held by control = quarantine
// records quarantine either way.
func TestHistoryAction(t *testing.T) {
	conf := "acl_smtp_rcpt = r\nacl_smtp_data = d\nbegin acl\nr:\n  warn senders = *@quar.example\n  control = quarantine/held\n  accept\n" +
		"d:\n  deny dmarc_status = reject\n  accept\n"
	p, path := historyProg(t, conf)
	z := dmarcZone()
	for i, from := range []string{"alice@sender.example", "alice@quar.example", "alice@none.example"} {
		deliver(t, p, svcFor(z), delivery{ip: "203.0.113.9", helo: "h", sender: from, rcpts: []string{"bob@example.org"},
			msg: plainMessage(from, 10), queueID: fmt.Sprint("A", i)})
	}
	var actions []string
	for _, r := range records(t, path) {
		actions = append(actions, r[strings.LastIndex(r, "action "):len(r)-1])
	}
	if got := strings.Join(actions, ","); got != "action 0,action 4,action 2" {
		t.Errorf("actions %s", got)
	}
}

// ARC, as OpenDMARC records it: arc 0 for a passing chain, and its seals.
func TestHistoryARC(t *testing.T) {
	rk, _ := testKeys()
	z := dmarcZone()
	addTXT(z, "arc1._domainkey.lists.example", keyRecord(rk))
	msg := plainMessage("alice@quar.example", 50)
	signer := &arc.Signer{Domain: "lists.example", Selector: "arc1", Key: rk}
	set, err := signer.Seal([]byte(msg), &arc.Chain{State: arc.None}, "mx.lists.example; dmarc=pass header.from=quar.example")
	if err != nil {
		t.Fatal(err)
	}
	sealed := strings.Join(set, "\r\n") + "\r\n" + msg
	p, path := historyProg(t, varsACL)
	deliver(t, p, svcFor(z), delivery{ip: "203.0.113.9", helo: "h", sender: "list@lists.example",
		rcpts: []string{"b@example.org"}, msg: sealed, queueID: "ARC1"})
	r := records(t, path)
	if len(r) != 1 || !strings.Contains(r[0], "\narc 0\narc_policy 2 json:[{ \"i\": 1, \"d\":\"lists.example\", \"s\":\"arc1\", \"ip\":\"\" }]\n") {
		t.Errorf("records %q", r)
	}
}

// A configuration that only logs DMARC failures records accept.
func TestHistoryActionLogOnly(t *testing.T) {
	conf := "acl_smtp_data = d\nbegin acl\nd:\n  warn dmarc_status = reject : quarantine\n  log_message = DMARC $dmarc_status\n  accept\n"
	p, path := historyProg(t, conf)
	deliver(t, p, svcFor(dmarcZone()), delivery{ip: "203.0.113.9", helo: "h", sender: "a@sender.example",
		rcpts: []string{"b@example.org"}, msg: plainMessage("a@sender.example", 10), queueID: "L1"})
	if r := records(t, path); len(r) != 1 || !strings.Contains(r[0], "policy 16\n") || !strings.HasSuffix(r[0], "action 2\n") {
		t.Errorf("records %q", r)
	}
}

// Compiling a configuration never creates the file; a detached Program
// writes nothing.
func TestHistoryNotCreated(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dmarc.dat")
	p := load(t, "dmarc_history_file = "+path+"\n"+varsACL)
	deliver(t, p, svcFor(dmarcZone()), delivery{ip: "203.0.113.9", helo: "h", sender: "a@sender.example",
		rcpts: []string{"b@example.org"}, msg: plainMessage("a@sender.example", 10)})
	p.Attach()
	p.Detach()
	deliver(t, p, svcFor(dmarcZone()), delivery{ip: "203.0.113.9", helo: "h", sender: "a@sender.example",
		rcpts: []string{"b@example.org"}, msg: plainMessage("a@sender.example", 10)})
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("history file created: %v", err)
	}
	if HistoryPath(p) != "" {
		t.Error("HistoryPath of a detached program")
	}
}

// Rotation: opendmarc-importstats renames the file away; the next record
// goes to a new file at the path. Attach (the daemon's reload)
// reopens it too. An unwritable file is an error logged on the message.
func TestHistoryRotation(t *testing.T) {
	p, path := historyProg(t, varsACL)
	z := dmarcZone()
	send := func(q string) *acl.Txn {
		_, txn := deliver(t, p, svcFor(z), delivery{ip: "203.0.113.9", helo: "h", sender: "a@sender.example",
			rcpts: []string{"b@example.org"}, msg: plainMessage("a@sender.example", 10), queueID: q})
		return txn
	}
	send("R1")
	if err := os.Rename(path, path+".OLD"); err != nil {
		t.Fatal(err)
	}
	send("R2")
	if err := os.Rename(path, path+".OLD2"); err != nil {
		t.Fatal(err)
	}
	p2 := load(t, "dmarc_history_file = "+path+"\n"+varsACL) // the reloaded configuration
	if err := p2.Attach(); err != nil {
		t.Fatal(err)
	}
	deliver(t, p2, svcFor(z), delivery{ip: "203.0.113.9", helo: "h", sender: "a@sender.example",
		rcpts: []string{"b@example.org"}, msg: plainMessage("a@sender.example", 10), queueID: "R3"})
	for file, want := range map[string]string{path + ".OLD": "job R1\n", path + ".OLD2": "job R2\n", path: "job R3\n"} {
		if r := records(t, file); len(r) != 1 || !strings.HasPrefix(r[0], want) {
			t.Errorf("%s: %q, want one record %q", filepath.Base(file), r, want)
		}
	}

	bad := load(t, "dmarc_history_file = "+t.TempDir()+"\n"+varsACL) // a directory: it cannot be opened for writing
	bad.Attach()
	_, txn := deliver(t, bad, svcFor(z), delivery{ip: "203.0.113.9", helo: "h", sender: "a@sender.example",
		rcpts: []string{"b@example.org"}, msg: plainMessage("a@sender.example", 10)})
	if logs := strings.Join(logsOf(txn), "\n"); !strings.Contains(logs, "error: DMARC history file: ") {
		t.Errorf("logs: %s", logs)
	}
}

// Concurrent sessions never interleave records.
func TestHistoryConcurrent(t *testing.T) {
	p, path := historyProg(t, varsACL)
	z := dmarcZone()
	const workers, each = 8, 25
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				deliver(t, p, svcFor(z), delivery{ip: "203.0.113.9", helo: "h", sender: "a@sender.example",
					rcpts: []string{"b@example.org"}, msg: plainMessage("a@sender.example", 10), queueID: fmt.Sprintf("C%d-%d", w, i)})
			}
		}()
	}
	wg.Wait()
	recs := records(t, path)
	if len(recs) != workers*each {
		t.Fatalf("%d records, want %d", len(recs), workers*each)
	}
	for _, r := range recs {
		lines := strings.Split(strings.TrimSuffix(r, "\n"), "\n")
		if len(lines) != 20 || !strings.HasPrefix(lines[0], "job C") || !strings.HasPrefix(lines[19], "action ") {
			t.Fatalf("broken record:\n%s", r)
		}
	}
}

// ---- opendmarc-import ----

// needTools finds the programs of the import test: a missing one skips
// the test, or fails it under CI=true.
func needTools(t *testing.T, names ...string) map[string]string {
	t.Helper()
	paths := map[string]string{}
	for _, n := range names {
		p, err := exec.LookPath(n)
		if err != nil {
			for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/libexec"} {
				if _, serr := os.Stat(filepath.Join(dir, n)); serr == nil {
					p, err = filepath.Join(dir, n), nil
					break
				}
			}
		}
		if err != nil {
			msg := n + " not found: install the Debian packages opendmarc, mariadb-server, libdbd-mysql-perl, libdbi-perl, libswitch-perl and libjson-perl (scripts/debian-packages.txt)"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
		paths[n] = p
	}
	return paths
}

// mariadb is a MariaDB server the test runs itself on loopback.
type mariadb struct {
	client string
	port   int
	cmd    *exec.Cmd
	errLog string
}

func startMariaDB(t *testing.T, tools map[string]string) *mariadb {
	t.Helper()
	dir, err := os.MkdirTemp("", "sidecar-mariadb-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	data := filepath.Join(dir, "data")
	user := []string{}
	if os.Geteuid() == 0 {
		user = []string{"--user=root"}
	}
	install := exec.Command(tools["mariadb-install-db"], append([]string{"--no-defaults", "--datadir=" + data,
		"--auth-root-authentication-method=normal", "--skip-test-db"}, user...)...)
	if out, err := install.CombinedOutput(); err != nil {
		t.Fatalf("mariadb-install-db: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	m := &mariadb{client: tools["mariadb"], port: port, errLog: filepath.Join(dir, "error.log")}
	m.cmd = exec.Command(tools["mariadbd"], append([]string{"--no-defaults", "--datadir=" + data,
		"--socket=" + filepath.Join(dir, "sock"), "--pid-file=" + filepath.Join(dir, "pid"),
		"--port=" + strconv.Itoa(port), "--bind-address=127.0.0.1", "--skip-grant-tables", "--skip-log-bin",
		"--innodb-buffer-pool-size=16M", "--log-error=" + m.errLog}, user...)...)
	if err := m.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		m.cmd.Process.Kill()
		m.cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := m.sql(""); err == nil {
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(m.errLog)
			t.Fatalf("MariaDB did not start:\n%s", b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return m
}

// sql runs statements with the mariadb client; the output is tab-separated.
func (m *mariadb) sql(stmts string, db ...string) (string, error) {
	args := []string{"--no-defaults", "--protocol=tcp", "-h127.0.0.1", "-P" + strconv.Itoa(m.port), "-uroot", "-N", "-B"}
	cmd := exec.Command(m.client, append(args, db...)...)
	cmd.Stdin = strings.NewReader(stmts + ";\n")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("%v: %s", err, errb.String())
	}
	return out.String(), nil
}

// schemaPath finds the MySQL schema OpenDMARC ships.
func schemaPath(t *testing.T) string {
	for _, p := range []string{
		"/usr/share/doc/opendmarc/schema.mysql",
		"/usr/share/doc/opendmarc/schema.mysql.gz",
		"/usr/share/dbconfig-common/data/opendmarc/install/mysql",
		"/usr/share/opendmarc/schema.mysql",
	} {
		if _, err := os.Stat(p); err == nil && !strings.HasSuffix(p, ".gz") {
			return p
		}
	}
	msg := "OpenDMARC's schema.mysql not found (Debian package opendmarc)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// The history file is proven with OpenDMARC's own importer: records
// written by sidecar go into OpenDMARC's schema in a MariaDB the test
// starts, and come back as the rows opendmarc-reports would read.
func TestHistoryOpenDMARCImport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MariaDB")
	}
	tools := needTools(t, "opendmarc-import", "mariadbd", "mariadb-install-db", "mariadb", "perl")
	for _, mod := range []string{"DBI", "DBD::mysql", "Switch", "JSON"} {
		if err := exec.Command(tools["perl"], "-M"+mod, "-e", "1").Run(); err != nil {
			msg := "Perl module " + mod + " missing (libdbi-perl, libdbd-mysql-perl, libswitch-perl, libjson-perl)"
			if os.Getenv("CI") == "true" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	schema := schemaPath(t)

	// Both formats import to the same rows: the sidecar format's extra
	// keys are ones opendmarc-import warns about and skips.
	for _, format := range []string{"opendmarc", "sidecar"} {
		t.Run(format, func(t *testing.T) {

			// The records: a spoof (the seed's ACL denies it: disp 0), a pass by
			// DKIM and relaxed SPF, no record, p=quarantine from IPv6 (the seed's
			// ACL only flags it: disp 2), a null sender.
			rk, ek := testKeys()
			p, path := historyProg(t, "dmarc_history_format = "+format+"\n"+seedDMARC)
			z := dmarcZone()
			now := time.Unix(1700000000, 0)
			send := func(queue, ip, helo, sender, msg string) {
				svc := svcFor(z)
				svc.Now = func() time.Time { return now }
				deliver(t, p, svc, delivery{ip: ip, helo: helo, sender: sender, rcpts: []string{"bob@example.org"}, msg: msg, queueID: queue})
			}
			twice := signMessage(t, signMessage(t, plainMessage("alice@sender.example", 100), "sender.example", "rsa", rk, nil),
				"sender.example", "ed", ek, nil)
			send("4SPOOF1", "203.0.113.9", "evil.example", "alice@sender.example", plainMessage("alice@sender.example", 10))
			send("4PASS01", "192.0.2.5", "mail.sender.example", "bounce@mail.sender.example", twice)
			send("4NOREC1", "192.0.2.5", "mail.norec.example", "alice@norec.example", plainMessage("alice@norec.example", 10))
			send("4QUAR01", "2001:db8::25", "mx.quar.example", "alice@quar.example", plainMessage("alice@quar.example", 10))
			send("4NULL01", "192.0.2.5", "mail.sender.example", "", plainMessage("alice@sender.example", 10))
			// A p=quarantine failure forwarded by a list that sealed it with ARC.
			addTXT(z, "arc1._domainkey.lists.example", keyRecord(rk))
			set, err := (&arc.Signer{Domain: "lists.example", Selector: "arc1", Key: rk}).Seal(
				[]byte(plainMessage("carol@quar.example", 50)), &arc.Chain{State: arc.None}, "mx.lists.example; dmarc=pass header.from=quar.example")
			if err != nil {
				t.Fatal(err)
			}
			send("4ARC001", "198.51.100.7", "mx.lists.example", "list@lists.example",
				strings.Join(set, "\r\n")+"\r\n"+plainMessage("carol@quar.example", 50))
			if n := len(records(t, path)); n != 6 {
				t.Fatalf("%d records written, want 6", n)
			}

			db := startMariaDB(t, tools)
			sch, err := os.ReadFile(schema)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := db.sql(string(sch)); err != nil {
				t.Fatalf("schema: %v", err)
			}
			in, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			imp := exec.Command(tools["opendmarc-import"], "--dbhost=127.0.0.1", "--dbport="+strconv.Itoa(db.port),
				"--dbuser=root", "--dbpasswd=unused", "--dbname=opendmarc", "--verbose")
			imp.Stdin = in
			out, err := imp.CombinedOutput()
			if err != nil {
				t.Fatalf("opendmarc-import: %v\n%s", err, out)
			}
			warned := map[string]bool{}
			for _, line := range strings.Split(string(out), "\n") {
				if k, ok := unknownKey(line); ok {
					if format == "sidecar" && sidecarKeys[k] {
						warned[k] = true
						continue
					}
					t.Errorf("opendmarc-import: %s", line)
				} else if strings.Contains(strings.ToLower(line), "error") || strings.Contains(line, "failed") {
					t.Errorf("opendmarc-import: %s", line)
				}
			}

			rows, err := db.sql(`SELECT m.jobid, r.name, UNIX_TIMESTAMP(m.date), i.addr, e.name, f.name, p.name,
				m.policy, m.disp, m.spf, m.align_spf, m.align_dkim, m.sigcount, m.arc, m.arc_policy
				FROM messages m JOIN reporters r ON r.id = m.reporter JOIN ipaddr i ON i.id = m.ip
				JOIN domains e ON e.id = m.env_domain JOIN domains f ON f.id = m.from_domain JOIN domains p ON p.id = m.policy_domain
				ORDER BY m.jobid`, "opendmarc")
			if err != nil {
				t.Fatal(err)
			}
			wantRows := strings.Join([]string{
				"4ARC001\tmx.example.net\t1700000000\t198.51.100.7\tlists.example\tquar.example\tquar.example\t17\t2\t6\t5\t5\t0\t0\t2",
				"4NOREC1\tmx.example.net\t1700000000\t192.0.2.5\tnorec.example\tnorec.example\tnorec.example\t14\t2\t0\t0\t0\t0\t7\t2",
				"4NULL01\tmx.example.net\t1700000000\t192.0.2.5\t\tsender.example\tsender.example\t15\t2\t0\t4\t5\t0\t7\t2",
				"4PASS01\tmx.example.net\t1700000000\t192.0.2.5\tmail.sender.example\tsender.example\tsender.example\t15\t2\t0\t4\t4\t2\t7\t2",
				"4QUAR01\tmx.example.net\t1700000000\t2001:db8::25\tquar.example\tquar.example\tquar.example\t17\t2\t7\t5\t5\t0\t7\t2",
				"4SPOOF1\tmx.example.net\t1700000000\t203.0.113.9\tsender.example\tsender.example\tsender.example\t16\t0\t7\t5\t5\t0\t7\t2",
			}, "\n") + "\n"
			if rows != wantRows {
				t.Errorf("messages:\n%s\nwant:\n%s", rows, wantRows)
			}
			sigs, err := db.sql(`SELECT m.jobid, d.name, s.name, g.pass, g.error FROM signatures g JOIN messages m ON m.id = g.message
				JOIN domains d ON d.id = g.domain JOIN selectors s ON s.id = g.selector ORDER BY m.jobid, s.name`, "opendmarc")
			if err != nil {
				t.Fatal(err)
			}
			if want := "4PASS01\tsender.example\ted\t0\t0\n4PASS01\tsender.example\trsa\t0\t0\n"; sigs != want {
				t.Errorf("signatures:\n%s\nwant:\n%s", sigs, want)
			}
			seals, err := db.sql(`SELECT m.jobid, s.instance, d.name, l.name FROM arcseals s JOIN messages m ON m.id = s.message
				JOIN domains d ON d.id = s.domain JOIN selectors l ON l.id = s.selector`, "opendmarc")
			if err != nil {
				t.Fatal(err)
			}
			if want := "4ARC001\t1\tlists.example\tarc1\n"; seals != want {
				t.Errorf("arcseals:\n%s\nwant:\n%s", seals, want)
			}
			reqs, err := db.sql(`SELECT d.name, r.repuri, r.adkim, r.aspf, r.policy, r.spolicy, r.pct FROM requests r
				JOIN domains d ON d.id = r.domain ORDER BY d.name`, "opendmarc")
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("imported %d messages; requests:\n%s", strings.Count(rows, "\n"), reqs)
			if !strings.Contains(reqs, "sender.example\tmailto:dmarc-agg@sender.example\t114\t114\t114\t0\t100") {
				t.Errorf("requests:\n%s", reqs)
			}

			if format == "sidecar" && !warned["spf_domain"] {
				t.Errorf("opendmarc-import gave no unknown-key warning for spf_domain: the sidecar keys were not in the file\n%s", out)
			}
		})
	}
}

// sidecarKeys are the keys the sidecar history format adds.
var sidecarKeys = map[string]bool{"spf_domain": true, "spf_scope": true, "rcpt_domain": true, "np": true,
	"psd": true, "t": true, "fo": true, "ruf": true, "override": true}

// unknownKey reads opendmarc-import's "unknown key 'x' at line N".
func unknownKey(line string) (string, bool) {
	_, rest, ok := strings.Cut(line, "unknown key '")
	if !ok {
		return "", false
	}
	k, _, ok := strings.Cut(rest, "'")
	return k, ok
}

// TestHistoryActionIsTheVerdict: the record is written when the message
// has ended, and its action is what the message got — reject for a deny
// at DATA, tempfail for a defer, quarantine for control = quarantine,
// accept otherwise — whatever the ACLs look at.
func TestHistoryActionIsTheVerdict(t *testing.T) {
	for _, tc := range []struct {
		name, data string
		verb       acl.Verb
		action     string
	}{
		{"deny on DMARC", "  deny dmarc_status = reject\n  accept\n", acl.Deny, "action 0\n"},
		{"deny on something else", "  deny condition = ${if eq{$sender_address_domain}{sender.example}}\n  accept\n", acl.Deny, "action 0\n"},
		{"defer", "  defer\n", acl.Defer, "action 3\n"},
		{"quarantine", "  accept control = quarantine/held\n", acl.Accept, "action 4\n"},
		{"warn only", "  warn dmarc_status = reject\n  accept\n", acl.Accept, "action 2\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, path := historyProg(t, "acl_smtp_data = d\nbegin acl\nd:\n"+tc.data)
			res, _ := deliver(t, p, svcFor(dmarcZone()), delivery{ip: "203.0.113.9", helo: "h", sender: "a@sender.example",
				rcpts: []string{"b@example.org"}, msg: plainMessage("a@sender.example", 10), queueID: "V1"})
			if res.Verb != tc.verb {
				t.Fatalf("verdict %s, want %s", res.Verb, tc.verb)
			}
			r := records(t, path)
			if len(r) != 1 || !strings.Contains(r[0], "policy 16\n") || !strings.HasSuffix(r[0], tc.action) {
				t.Errorf("records %q, want one ending in %q", r, tc.action)
			}
		})
	}
}

// dmarc_history_format = sidecar: each record is the OpenDMARC record
// the default format writes, byte for byte, followed by the SPF identity,
// the recipients' domains, the record's other tags and the override
// reasons.
func TestHistorySidecarFormat(t *testing.T) {
	rk, _ := testKeys()
	z := dmarcZone()
	addTXT(z, "_dmarc.tags.example", "v=DMARC1; p=reject; np=quarantine; psd=n; fo=1:d; ruf=mailto:f@tags.example")
	addTXT(z, "arc1._domainkey.lists.example", keyRecord(rk))
	set, err := (&arc.Signer{Domain: "lists.example", Selector: "arc1", Key: rk}).Seal(
		[]byte(plainMessage("carol@sender.example", 50)), &arc.Chain{State: arc.None}, "mx.lists.example; dmarc=pass header.from=sender.example")
	if err != nil {
		t.Fatal(err)
	}
	sealed := strings.Join(set, "\r\n") + "\r\n" + plainMessage("carol@sender.example", 50)
	conf := "dmarc_arc_trusted_sealers = lists.example\nacl_smtp_data = d\nbegin acl\nd:\n" +
		"  defer senders = later@sender.example\n  deny dmarc_status = reject\n  accept\n"
	type msg struct {
		queue, ip, helo, sender, body string
		rcpts                         []string
		ext                           string
	}
	msgs := []msg{
		{"SPOOF", "203.0.113.9", "h", "alice@sender.example", plainMessage("alice@sender.example", 10),
			[]string{"bob@example.org", "carol@Example.NET", "dave@example.org"},
			"spf_domain sender.example\nspf_scope mfrom\nrcpt_domain example.org\nrcpt_domain example.net\nnp 0\npsd 117\nt 110\nfo 0\nruf -\noverride -\n"},
		{"NULL", "192.0.2.5", "mail.sender.example", "", plainMessage("alice@sender.example", 10), []string{"bob@example.org"},
			"spf_domain mail.sender.example\nspf_scope helo\nrcpt_domain example.org\nnp 0\npsd 117\nt 110\nfo 0\nruf -\noverride -\n"},
		{"TESTING", "203.0.113.9", "h", "alice@test.example", plainMessage("alice@test.example", 10), []string{"bob@example.org"},
			"spf_domain test.example\nspf_scope mfrom\nrcpt_domain example.org\nnp 0\npsd 117\nt 121\nfo 0\nruf -\noverride sampled_out\noverride local_policy\n"},
		{"QUAR", "203.0.113.9", "h", "alice@quar.example", plainMessage("alice@quar.example", 10), []string{"bob@example.org"},
			"spf_domain quar.example\nspf_scope mfrom\nrcpt_domain example.org\nnp 0\npsd 117\nt 110\nfo 0\nruf -\noverride local_policy\n"},
		{"LIST", "203.0.113.9", "h", "alice@quar.example", "List-Id: Users <users.lists.example>\r\n" + plainMessage("alice@quar.example", 10), []string{"bob@example.org"},
			"spf_domain quar.example\nspf_scope mfrom\nrcpt_domain example.org\nnp 0\npsd 117\nt 110\nfo 0\nruf -\noverride mailing_list\n"},
		{"DEFER", "203.0.113.9", "h", "later@sender.example", plainMessage("later@sender.example", 10), []string{"bob@example.org"},
			"spf_domain sender.example\nspf_scope mfrom\nrcpt_domain example.org\nnp 0\npsd 117\nt 110\nfo 0\nruf -\noverride other\n"},
		{"ARC", "198.51.100.7", "mx.lists.example", "list@lists.example", sealed, []string{"bob@example.org"},
			"spf_domain lists.example\nspf_scope mfrom\nrcpt_domain example.org\nnp 0\npsd 117\nt 110\nfo 0\nruf -\noverride trusted_forwarder\n"},
		{"TAGS", "203.0.113.9", "h", "alice@tags.example", plainMessage("alice@tags.example", 10), []string{"bob@example.org"},
			"spf_domain tags.example\nspf_scope mfrom\nrcpt_domain example.org\nnp 113\npsd 110\nt 110\nfo 1:d\nruf mailto:f@tags.example\noverride -\n"},
		{"NOREC", "192.0.2.5", "h", "alice@norec.example", plainMessage("alice@norec.example", 10), []string{"bob@example.org"},
			"spf_domain norec.example\nspf_scope mfrom\nrcpt_domain example.org\nnp 0\npsd 0\nt 0\nfo -\nruf -\noverride -\n"},
	}
	write := func(format string) []string {
		p, path := historyProg(t, format+conf)
		for _, m := range msgs {
			deliver(t, p, svcFor(z), delivery{ip: m.ip, helo: m.helo, sender: m.sender, rcpts: m.rcpts, msg: m.body, queueID: m.queue})
		}
		return records(t, path)
	}
	plain, explicit, ext := write(""), write("dmarc_history_format = opendmarc\n"), write("dmarc_history_format = sidecar\n")
	if len(plain) != len(msgs) || len(ext) != len(msgs) {
		t.Fatalf("%d and %d records, want %d", len(plain), len(ext), len(msgs))
	}
	for i, m := range msgs {
		if explicit[i] != plain[i] || !strings.HasSuffix(plain[i], "\naction "+plain[i][len(plain[i])-2:]) {
			t.Errorf("%s: opendmarc format:\n%s\ndefault:\n%s", m.queue, explicit[i], plain[i])
		}
		if ext[i] != plain[i]+m.ext {
			t.Errorf("%s: sidecar format:\n%s\nwant:\n%s", m.queue, ext[i], plain[i]+m.ext)
		}
	}
}

// A bad dmarc_history_format is an error at the option's value; the
// format without a history file is a warning.
func TestHistoryFormatOption(t *testing.T) {
	_, err := tryLoad(t, "primary_hostname = mx.example.net\ndmarc_history_format = jsonl\n")
	list := config.AsList(err)
	if len(list.Errors()) != 1 || !strings.HasPrefix(list.Errors()[0].Error(), "test.conf:2:24: dmarc_history_format must be one of opendmarc, sidecar") {
		t.Errorf("error %v", err)
	}
	if w := loadWarnings(t, "dmarc_history_format = sidecar\n"); len(w) != 1 || w[0].Pos.Line != 1 || !strings.Contains(w[0].Msg, "dmarc_history_format is only used with dmarc_history_file") {
		t.Errorf("warnings: %v", w)
	}
}
