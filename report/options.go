package report

import (
	"errors"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/mailsidecar/sidecar/config"
)

// The options of the report commands (sidecar report …). The daemon does
// not use them; they live in the same file so that one configuration
// describes the host.
const (
	OptReportDatabase = "report_database"
	OptReportOrgName  = "report_org_name"
	OptReportEmail    = "report_email"
	OptReportContact  = "report_contact"
	OptReportSMTP     = "report_smtp"
	OptSMTPUser       = "report_smtp_user"
	OptSMTPPassword   = "report_smtp_password_file"
	// OptDMARCReportFormat is the XML format of DMARC aggregate reports.
	OptDMARCReportFormat = "dmarc_report_format"
)

// The XML formats of DMARC aggregate reports (dmarc_report_format).
const (
	// ReportFormatRFC9990 is RFC 9990's (namespace
	// urn:ietf:params:xml:ns:dmarc-2.0), the default.
	ReportFormatRFC9990 = "rfc9990"
	// ReportFormatRFC7489 is RFC 7489's (Appendix C), for deployments
	// that evaluate DMARC as RFC 7489 does (dmarc_discovery = psl).
	ReportFormatRFC7489 = "rfc7489"
)

func init() {
	for _, d := range []config.OptionDef{
		{Name: OptReportDatabase, Kind: config.KindString, Default: "/var/lib/sidecar/reports.db", Check: CheckDatabase,
			Doc: "where sidecar report keeps the imported history: an SQLite file (absolute path) or postgres://user:password@host/db"},
		{Name: OptReportOrgName, Kind: config.KindString,
			Doc: "org_name of aggregate reports (RFC 9990); default: primary_hostname"},
		{Name: OptReportEmail, Kind: config.KindString, Check: checkAddress,
			Doc: "address of aggregate reports: their From and report_metadata email; default: postmaster@primary_hostname"},
		{Name: OptReportContact, Kind: config.KindString,
			Doc: "extra_contact_info of aggregate reports (a URL or a telephone number); default: none"},
		{Name: OptReportSMTP, Kind: config.KindString, Default: "127.0.0.1:25", Check: checkHostPort,
			Doc: "SMTP server (HOST:PORT) that delivers report mail; default: the local MTA"},
		{Name: OptSMTPUser, Kind: config.KindString,
			Doc: "user name for SMTP AUTH (PLAIN or LOGIN) at report_smtp; empty: no authentication"},
		{Name: OptSMTPPassword, Kind: config.KindString, Check: checkAbsolute,
			Doc: "file holding the password of report_smtp_user (its first line); read when the configuration loads"},
		{Name: OptDMARCReportFormat, Kind: config.KindEnum, Default: ReportFormatRFC9990, Enum: []string{ReportFormatRFC9990, ReportFormatRFC7489},
			Doc: "XML format of DMARC aggregate reports: rfc9990, or rfc7489 (RFC 7489 Appendix C; only with dmarc_discovery = psl)"},
	} {
		config.RegisterOption(d)
	}
	config.RegisterCompiler(config.Compiler{Name: smtpCompilerName, Compile: compileSMTPAuth})
}

func checkAbsolute(s string) error {
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q is not an absolute path", s)
	}
	return nil
}

// CheckDatabase accepts a postgres:// URL or an absolute file path.
func CheckDatabase(s string) error {
	if strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://") {
		u, err := url.Parse(s)
		if err != nil {
			return fmt.Errorf("bad PostgreSQL URL: %v", err)
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return errors.New("PostgreSQL URL without a host: write postgres://user:password@host/database")
		}
		return nil
	}
	if !filepath.IsAbs(s) {
		return fmt.Errorf("%q is neither an absolute path nor a postgres:// URL", s)
	}
	return nil
}

func checkAddress(s string) error {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || !strings.Contains(a.Address, "@") {
		return fmt.Errorf("%q is not a mail address (write local@domain)", s)
	}
	return nil
}

func checkHostPort(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil || host == "" {
		return fmt.Errorf("%q is not HOST:PORT (for example 127.0.0.1:25)", s)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("port %q is not a number from 1 to 65535", port)
	}
	return nil
}
