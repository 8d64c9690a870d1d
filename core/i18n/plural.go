package i18n

import (
	"golang.org/x/text/feature/plural"
	"golang.org/x/text/message/catalog"
)

// forms is a message that changes with a count: the count is argument Arg
// (1-based, as %[1]d), and One and Other are the texts for one and for any
// other number, as the language's plural rules (CLDR) decide.
type forms struct {
	Arg        int
	One, Other string
}

func (f forms) selector() catalog.Message {
	return plural.Selectf(f.Arg, "%d", plural.One, f.One, plural.Other, f.Other)
}

// pluralMsg is a message with a count, in both languages.
type pluralMsg struct{ en, es forms }
