package config

import _ "embed"

// DefaultName is the name errors use for the embedded configuration.
const DefaultName = "(embedded default)"

// DefaultText is the embedded default configuration: listeners on loopback
// and rules that evaluate and annotate but never reject.
//
//go:embed default.conf
var DefaultText []byte
