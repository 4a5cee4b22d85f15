package arc

import "github.com/mailsidecar/sidecar/internal/dkimcore"

// The shared DKIM verification core (internal/dkimcore) under the names
// this package uses: ARC-Message-Signatures and ARC-Seals are DKIM
// signatures by another name (RFC 8617 §4.1).
type (
	field      = dkimcore.Field
	tagList    = dkimcore.TagList
	bodyKey    = dkimcore.BodyKey
	bodyHasher = dkimcore.BodyHasher
	publicKey  = dkimcore.PublicKey
	fieldIndex = dkimcore.FieldIndex
)

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isAlpha(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
