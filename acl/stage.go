package acl

import "strings"

// Stage is an SMTP stage at which an ACL runs.
type Stage uint8

// The stages, in SMTP order.
const (
	Connect Stage = iota
	Helo
	Mail
	Rcpt
	Data
	numStages
)

var stageNames = [numStages]string{"connect", "helo", "mail", "rcpt", "data"}

func (s Stage) String() string {
	if s < numStages {
		return stageNames[s]
	}
	return "stage?"
}

// Option is the main option that names the ACL for the stage.
func (s Stage) Option() string { return "acl_smtp_" + s.String() }

// Stages lists every stage in order.
func Stages() []Stage { return []Stage{Connect, Helo, Mail, Rcpt, Data} }

// StageSet is a set of stages. The zero value means "every stage" in a
// definition (available everywhere).
type StageSet uint8

// Common sets.
const (
	AllStages StageSet = 1<<numStages - 1
	FromHelo           = AllStages &^ (1 << Connect)
	FromMail           = FromHelo &^ (1 << Helo)
	FromRcpt           = FromMail &^ (1 << Mail)
	OnlyRcpt  StageSet = 1 << Rcpt
	OnlyData  StageSet = 1 << Data
)

// Of returns the set holding the given stages.
func Of(stages ...Stage) StageSet {
	var s StageSet
	for _, st := range stages {
		s |= 1 << st
	}
	return s
}

// Has reports whether st is in the set.
func (s StageSet) Has(st Stage) bool { return s&(1<<st) != 0 }

func (s StageSet) norm() StageSet {
	if s == 0 {
		return AllStages
	}
	return s
}

func (s StageSet) String() string {
	var names []string
	for _, st := range Stages() {
		if s.Has(st) {
			names = append(names, strings.ToUpper(st.String()))
		}
	}
	return strings.Join(names, ", ")
}
