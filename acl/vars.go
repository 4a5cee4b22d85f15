package acl

import (
	"context"
	"strconv"
	"strings"
	"time"
)

func str(f func(t *Txn) string) func(ctx context.Context, t *Txn) (string, error) {
	return func(_ context.Context, t *Txn) (string, error) { return f(t), nil }
}

func registerCoreVars(r *Registry) {
	ip := func(t *Txn) string {
		if !t.Conn.ClientIP.IsValid() {
			return ""
		}
		return t.Conn.ClientIP.Unmap().String()
	}
	for _, d := range []VarDef{
		{Name: "primary_hostname", Doc: "this host's name", Get: str(func(t *Txn) string { return t.Services.PrimaryHostname })},
		{Name: "sender_host_address", Doc: "the client's IP address; empty for local submission", Get: str(ip)},
		{Name: "sender_host_port", Doc: "the client's TCP port", Get: str(func(t *Txn) string { return itoa(t.Conn.ClientPort) })},
		{Name: "sender_host_name", Doc: "the client's host name as verified by the MTA, or empty", Get: str(func(t *Txn) string { return t.Conn.ClientName })},
		{Name: "received_ip_address", Doc: "the local address the client connected to", Get: str(func(t *Txn) string {
			if !t.Conn.LocalIP.IsValid() {
				return ""
			}
			return t.Conn.LocalIP.Unmap().String()
		})},
		{Name: "received_port", Doc: "the local port the client connected to", Get: str(func(t *Txn) string { return itoa(t.Conn.LocalPort) })},
		{Name: "sender_helo_name", Stages: FromHelo, Doc: "the HELO/EHLO argument", Get: str(func(t *Txn) string { return t.Conn.Helo })},
		{Name: "tls_in_cipher", Stages: FromHelo, Doc: "the TLS cipher of the incoming connection, or empty", Get: str(func(t *Txn) string { return t.Conn.TLSCipher })},
		{Name: "tls_in_ver", Stages: FromHelo, Doc: "the TLS protocol version, or empty", Get: str(func(t *Txn) string { return t.Conn.TLSVersion })},
		{Name: "tls_in_bits", Stages: FromHelo, Doc: "the TLS cipher strength in bits, or empty", Get: str(func(t *Txn) string { return t.Conn.TLSBits })},
		{Name: "authenticated_id", Stages: FromMail, Doc: "the SASL login name, or empty", Get: str(func(t *Txn) string { return t.Conn.AuthID })},
		{Name: "sender_address", Stages: FromMail, Doc: "the envelope sender; empty for <>", Get: str(func(t *Txn) string { return t.Sender })},
		{Name: "sender_address_domain", Stages: FromMail, Doc: "the domain of the envelope sender", Get: str(func(t *Txn) string { return domainOf(t.Sender) })},
		{Name: "sender_address_local_part", Stages: FromMail, Doc: "the local part of the envelope sender", Get: str(func(t *Txn) string {
			if t.Sender == "" {
				return ""
			}
			return localPartOf(t.Sender)
		})},
		{Name: "queue_id", Stages: FromMail, Doc: "the MTA's queue ID, when it sends one", Get: str(func(t *Txn) string { return t.QueueID })},
		{Name: "local_part", Stages: OnlyRcpt, Doc: "the local part of the recipient being checked", Get: str(func(t *Txn) string { return localPartOf(t.Rcpt) })},
		{Name: "domain", Stages: OnlyRcpt, Doc: "the domain of the recipient being checked", Get: str(func(t *Txn) string { return domainOf(t.Rcpt) })},
		{Name: "recipients", Stages: OnlyData, Doc: "the accepted recipients, comma-separated", Get: str(func(t *Txn) string { return strings.Join(t.Recipients, ", ") })},
		{Name: "recipients_count", Stages: FromRcpt, Doc: "the number of recipients accepted so far", Get: str(func(t *Txn) string { return itoa(len(t.Recipients)) })},
		{Name: "message_size", Stages: OnlyData, Doc: "the message size in bytes", Get: str(func(t *Txn) string { return strconv.FormatInt(t.MessageSize, 10) })},
		{Name: "tod_log", Doc: "the local time as YYYY-MM-DD HH:MM:SS", Get: str(func(t *Txn) string { return now(t).Format("2006-01-02 15:04:05") })},
		{Name: "tod_zulu", Doc: "the UTC time as YYYYMMDDHHMMSSZ", Get: str(func(t *Txn) string { return now(t).UTC().Format("20060102150405Z") })},
	} {
		r.Variable(d)
	}
}

func now(t *Txn) time.Time {
	if t.Services.Now != nil {
		return t.Services.Now()
	}
	return time.Now()
}

func itoa(n int) string { return strconv.Itoa(n) }
