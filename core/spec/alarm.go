package spec

// Alarm says that an artifact a run made is suspiciously small: empty, below
// its stage's min_size, or far below the same artifact of the previous
// complete set (its size, or the tables or files it holds). The set is
// committed all the same; the run ends as a warning.
type Alarm struct {
	// Stage is the stage's name; File the artifact's file in the new set.
	Stage string `json:"stage"`
	File  string `json:"file"`
	// Measure is what shrank: "size" (bytes before compression),
	// "tables" or "files".
	Measure string `json:"measure"`
	Now     int64  `json:"now"`
	// Before is the figure in Previous, the set compared with; Previous is
	// "" when the alarm needs no comparison (empty, below min_size).
	Before   int64  `json:"before,omitempty"`
	Previous string `json:"previous,omitempty"`
	// Limit is the rule that was crossed: "empty", "min_size 50 MiB",
	// "max_shrink 50%".
	Limit string `json:"limit"`
	// Message puts the figures side by side, for people.
	Message string `json:"message"`
}
