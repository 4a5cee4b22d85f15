package report

var aresTokens = map[ARES]string{
	ARESPass: "pass", ARESSoftFail: "softfail", ARESNeutral: "neutral", ARESTempError: "temperror",
	ARESPermError: "permerror", ARESNone: "none", ARESFail: "fail", ARESPolicy: "policy", ARESNXDomain: "nxdomain",
	ARESSigned: "signed", ARESUnknown: "unknown", ARESDiscard: "discard",
}

// String returns the RFC 8601 result token of a code ("" for
// ARESUndefined): the inverse of ARESCode.
func (a ARES) String() string { return aresTokens[a] }
