package milter

import "strings"

// macroStage indexes the stages the MTA sends macros for.
type macroStage int

const (
	mConnect macroStage = iota
	mHelo
	mMail
	mRcpt
	mData
	mEOH
	mEOM
	numMacroStages
)

// macroStageOf maps a command byte (the first byte of SMFIC_MACRO, or a
// command) to its macro stage.
func macroStageOf(cmd byte) (macroStage, bool) {
	switch cmd {
	case 'C':
		return mConnect, true
	case 'H':
		return mHelo, true
	case 'M':
		return mMail, true
	case 'R':
		return mRcpt, true
	case 'T':
		return mData, true
	case 'N':
		return mEOH, true
	case 'E':
		return mEOM, true
	}
	return 0, false
}

type macro struct{ name, value string }

// macros keeps the macros of each stage. go-milter replaces its one map
// with every SMFIC_MACRO packet, so the connect macros are gone by MAIL;
// here each stage keeps its own, a lookup searches the latest stage first,
// and the stages of a message are forgotten when the next one starts.
type macros struct {
	stage [numMacroStages][]macro
	fresh uint8 // stages set since the last command
}

// set stores the macros of one SMFIC_MACRO packet (payload after the stage
// byte: NUL-terminated name and value pairs).
func (m *macros) set(st macroStage, data []byte) {
	list := m.stage[st][:0]
	s := string(data) // one allocation; names and values point into it
	for len(s) > 0 {
		name, rest, _ := strings.Cut(s, "\x00")
		value, rest2, _ := strings.Cut(rest, "\x00")
		s = rest2
		if name == "" {
			continue
		}
		list = append(list, macro{strings.TrimSuffix(strings.TrimPrefix(name, "{"), "}"), value})
	}
	m.stage[st] = list
	m.fresh |= 1 << st
}

// command records that the MTA sent command cmd: the macros of its stage
// that were not sent just before it are stale, and a new message (MAIL) or
// an abort forgets the macros of the previous message.
func (m *macros) command(cmd byte) {
	switch cmd {
	case 'C':
		for st := mHelo; st < numMacroStages; st++ {
			m.clear(st)
		}
	case 'M':
		for st := mRcpt; st < numMacroStages; st++ {
			m.clear(st)
		}
	case 'A':
		for st := mMail; st < numMacroStages; st++ {
			m.stage[st] = m.stage[st][:0]
		}
	}
	if st, ok := macroStageOf(cmd); ok {
		m.clear(st)
	}
	m.fresh = 0
}

// clear forgets a stage's macros unless they were just sent.
func (m *macros) clear(st macroStage) {
	if m.fresh&(1<<st) == 0 {
		m.stage[st] = m.stage[st][:0]
	}
}

// get returns a macro by name ("i", "daemon_addr"; braces optional),
// searching the latest stage first.
func (m *macros) get(name string) string {
	v, _ := m.lookup(name)
	return v
}

func (m *macros) lookup(name string) (string, bool) {
	name = strings.TrimSuffix(strings.TrimPrefix(name, "{"), "}")
	for st := numMacroStages - 1; st >= 0; st-- {
		for _, mc := range m.stage[st] {
			if mc.name == name {
				return mc.value, true
			}
		}
	}
	return "", false
}
