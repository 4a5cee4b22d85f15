// Package config reads sidecar's configuration file: an Exim-shaped language
// of main options (`name = value`), named lists (`domainlist`, `hostlist`,
// `addresslist`, `localpartlist`), and, after `begin acl`, named access
// control lists made of statements `verb [!]name = value …`.
//
// The package only reads: it lexes the text into an AST whose every node
// carries a Pos, checks and types the main options against a registry, and
// reports every problem as `file:line:col: message` with the offending line
// and a caret. Evaluation belongs to the acl and expand packages.
package config
