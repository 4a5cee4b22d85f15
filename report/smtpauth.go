package report

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"time"

	"github.com/mailsidecar/sidecar/config"
	"github.com/mailsidecar/sidecar/report/mailout"
)

const smtpCompilerName = "report_smtp_auth"

// compileSMTPAuth reads report_smtp_password_file when report_smtp_user
// is set, so that a missing or unreadable file is an error of the
// configuration (at the option) and not of the first report sent.
func compileSMTPAuth(cfg *config.Config) (any, error) {
	user, pw := cfg.Get(OptSMTPUser), cfg.Get(OptSMTPPassword)
	switch {
	case user.Str == "" && pw.Str == "":
		return (*mailout.Auth)(nil), nil
	case user.Str == "":
		cfg.Reporter.Errorf(pw.Value.Pos, "%s is set but %s is not: set both for SMTP AUTH, or neither", OptSMTPPassword, OptSMTPUser)
		return nil, nil
	case pw.Str == "":
		cfg.Reporter.Errorf(user.Value.Pos, "%s needs %s: the file holding its password", OptSMTPUser, OptSMTPPassword)
		return nil, nil
	}
	password, err := readPassword(pw.Str)
	if err != nil {
		cfg.Reporter.Errorf(pw.Value.Pos, "%s: %v", OptSMTPPassword, err)
		return nil, nil
	}
	return &mailout.Auth{Username: user.Str, Password: password}, nil
}

// readPassword returns the first line of the file at path.
func readPassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	line, _, _ := bufio.NewReader(bytes.NewReader(b)).ReadLine()
	if len(line) == 0 {
		return "", errors.New(path + ": empty first line: no password")
	}
	return string(line), nil
}

// MailClient is the SMTP client of report mail for the configuration:
// report_smtp, with the account of report_smtp_user when one is set.
func MailClient(cfg *config.Config, helo string) *mailout.Client {
	c := &mailout.Client{Addr: cfg.String(OptReportSMTP), Helo: helo, Timeout: 2 * time.Minute}
	v, _ := cfg.Compiled(smtpCompilerName)
	if a, ok := v.(*mailout.Auth); ok && a != nil {
		c.Auth = a
	}
	return c
}
