package dsninfo

// Limits bound what the parser keeps and reads. Zero fields take the
// defaults of DefaultLimits.
type Limits struct {
	// MaxLine is the bytes kept of one line; the rest of a longer line is
	// read past (RFC 5322 allows 998).
	MaxLine int
	// MaxValue is the bytes kept of one field value, folded lines
	// joined.
	MaxValue int
	// MaxHeader is the bytes of one part's header read; the rest of a
	// longer header is read past.
	MaxHeader int
	// MaxRecipients is the per-recipient groups kept; more are counted
	// in Report.MoreRecipients.
	MaxRecipients int
	// MaxParts is the MIME parts examined; later ones are read past.
	MaxParts int
	// MaxDepth is the multipart nesting followed.
	MaxDepth int
	// MaxScan is the bytes of text scanned for a plain-text bounce.
	MaxScan int
}

// DefaultLimits are the limits the zero Limits stands for.
var DefaultLimits = Limits{
	MaxLine:       8 << 10,
	MaxValue:      4 << 10,
	MaxHeader:     64 << 10,
	MaxRecipients: 1000,
	MaxParts:      64,
	MaxDepth:      5,
	MaxScan:       64 << 10,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	set := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	set(&l.MaxLine, d.MaxLine)
	set(&l.MaxValue, d.MaxValue)
	set(&l.MaxHeader, d.MaxHeader)
	set(&l.MaxRecipients, d.MaxRecipients)
	set(&l.MaxParts, d.MaxParts)
	set(&l.MaxDepth, d.MaxDepth)
	set(&l.MaxScan, d.MaxScan)
	return l
}
