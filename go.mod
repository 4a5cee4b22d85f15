module github.com/mailsidecar/sidecar

go 1.26.8

require (
	github.com/emersion/go-milter v0.5.0
	github.com/emersion/go-msgauth v0.7.0
	github.com/hashicorp/golang-lru/v2 v2.0.7
	github.com/miekg/dns v1.1.73
	golang.org/x/net v0.57.0
	gopkg.in/yaml.v3 v3.0.1
)

require (
	github.com/emersion/go-message v0.18.2 // indirect
	golang.org/x/crypto v0.54.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.40.0 // indirect
)
