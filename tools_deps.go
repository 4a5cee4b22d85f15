//go:build tools

// Package tools pins dependencies that later packages use.
package tools

import (
	_ "github.com/emersion/go-milter"
	_ "github.com/emersion/go-msgauth/dkim"
	_ "github.com/hashicorp/golang-lru/v2"
	_ "gopkg.in/yaml.v3"
)
