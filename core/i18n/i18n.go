// Package i18n holds mbk's messages for people in English and Spanish: the
// catalogs (golang.org/x/text/message), the choice of language from the
// command line or the locale, and the Printer that both the mbk command and
// the smtp plugin format with, numbers and plurals included.
//
// A message's key is its English text: English output is the key itself
// (through the English catalog, which adds the plural forms), Spanish output
// is the key's Spanish entry. Logs, JSON and exit codes are not translated:
// scripts read them.
package i18n

import (
	"fmt"
	"strings"
	"sync"

	"github.com/dustin/go-humanize"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
	"golang.org/x/text/message/catalog"
)

// The two languages mbk speaks.
var (
	English = language.English
	Spanish = language.Spanish
)

// Codes are the values --lang and a pipeline's language take.
var Codes = []string{"en", "es"}

// catalog is built on first use: the entries are registered by package
// variables of several files, all initialised before any Printer is made.
var catalogOnce = sync.OnceValue(build)

// Printer formats messages in one language.
type Printer struct {
	tag language.Tag
	p   *message.Printer
}

// New returns the Printer of English or Spanish; any other tag gets
// English.
func New(tag language.Tag) *Printer {
	if tag != Spanish {
		tag = English
	}
	return &Printer{tag: tag, p: message.NewPrinter(tag, message.Catalog(catalogOnce()))}
}

// For returns the Printer of a language code as Parse reads it, English
// when the code is empty or unknown.
func For(code string) *Printer {
	tag, err := Parse(code)
	if err != nil {
		tag = English
	}
	return New(tag)
}

// Code is the printer's language code: "en" or "es".
func (p *Printer) Code() string {
	if p.tag == Spanish {
		return "es"
	}
	return "en"
}

// T formats the message whose English text is key, in the printer's
// language, as fmt.Sprintf does (numbers grouped as the language groups
// them).
func (p *Printer) T(key string, args ...any) string { return p.p.Sprintf(key, args...) }

// Number writes n with the language's digit grouping: 1,234,567 or
// 1.234.567.
func (p *Printer) Number(n int64) string { return p.p.Sprint(n) }

// IBytes writes a size in binary units as go-humanize's IBytes does
// ("1.2 GiB", "1023 B"), with the language's decimal mark ("1,2 GiB"). The
// figure is below 1,025, so no digit grouping comes into it.
func (p *Printer) IBytes(n uint64) string {
	s := humanize.IBytes(n)
	if p.tag == Spanish {
		s = strings.Replace(s, ".", ",", 1)
	}
	return s
}

// Noop marks a message for the catalog where it is written (a menu label,
// say) and returns it unchanged, for a T later.
func Noop(key string) string { return key }

// Parse reads a language: "en" or "es", or a locale name such as
// "es_ES.UTF-8", "es-AR" or "en_GB"; "C" and "POSIX" are English. Any other
// language is an error that names the two mbk speaks.
func Parse(s string) (language.Tag, error) {
	switch base := localeBase(s); base {
	case "", "c", "posix", "en":
		return English, nil
	case "es":
		return Spanish, nil
	}
	return English, fmt.Errorf("language %q is not one mbk speaks: use %s", s, strings.Join(Codes, " or "))
}

// FromLocale reads the language of the locale variables the C library
// reads, in its order: LC_ALL, then LC_MESSAGES, then LANG, the first set
// one deciding. Spanish (es_*) gives Spanish; anything else, unset, C or
// POSIX included, gives English.
func FromLocale(getenv func(string) string) language.Tag {
	for _, name := range []string{"LC_ALL", "LC_MESSAGES", "LANG"} {
		if v := getenv(name); v != "" {
			if localeBase(v) == "es" {
				return Spanish
			}
			return English
		}
	}
	return English
}

// Detect is the language of one invocation: the --lang value when given
// (an unknown one is an error), else the locale's.
func Detect(flag string, getenv func(string) string) (language.Tag, error) {
	if flag != "" {
		return Parse(flag)
	}
	return FromLocale(getenv), nil
}

// localeBase is a locale's language part, lower case: "es_ES.UTF-8@euro"
// gives "es".
func localeBase(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, "_-.@"); i >= 0 {
		s = s[:i]
	}
	return strings.ToLower(s)
}

// build fills the catalog: every Spanish entry, and for English the plural
// forms (a plain English message needs no entry: its key is its text).
func build() catalog.Catalog {
	b := catalog.NewBuilder(catalog.Fallback(English))
	for key, es := range spanish {
		must(b.SetString(Spanish, key, es))
	}
	for key, pm := range plurals {
		must(b.Set(English, key, pm.en.selector()))
		must(b.Set(Spanish, key, pm.es.selector()))
	}
	return b
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}
