package i18n

// The Spanish catalog: each entry's key is the English message (see the
// package comment), its value the Spanish one, with the same verbs in the
// same order. The vocabulary is the one the administrators know from the
// old scripts and README.es.md: respaldo (backup), conjunto (set), restaurar,
// copia de seguridad (safety copy), pipeline, etapa (stage), simulacro
// (drill).
var spanish = map[string]string{}

// plurals are the messages with a count, in both languages.
var plurals = map[string]pluralMsg{}

// add registers entries of one area of the program (a file per area keeps
// the catalog readable). Areas may share a message; one translated two ways
// is a mistake reported at once.
func add(m map[string]string) bool {
	for k, v := range m {
		if old, dup := spanish[k]; dup && old != v {
			panic("i18n: message translated two ways: " + k)
		}
		spanish[k] = v
	}
	return true
}

func addPlurals(m map[string]pluralMsg) bool {
	for k, v := range m {
		if old, dup := plurals[k]; dup && old != v {
			panic("i18n: plural message translated two ways: " + k)
		}
		plurals[k] = v
	}
	return true
}

// Shared by several areas.
var _ = addPlurals(map[string]pluralMsg{
	"%d set(s)": {en: forms{1, "%d set", "%d sets"}, es: forms{1, "%d conjunto", "%d conjuntos"}},
})
