package i18n

// mbk restore: what it says before, while and after it overwrites the site,
// and the typed confirmation.
var _ = add(map[string]string{
	"Verifying set %s before restoring it...":                                                        "Verificando el conjunto %s antes de restaurarlo...",
	"Restoring set %s of pipeline %q into pipeline %q will OVERWRITE:":                               "Restaurar el conjunto %s del pipeline %q en el pipeline %q SOBRESCRIBIRÁ:",
	"Set %s was made on host %q; this machine is %q.":                                                "El conjunto %s se hizo en el equipo %q; este equipo es %q.",
	"Set %s was made on another machine named %q, like this one (a clone of it?).":                   "El conjunto %s se hizo en otro equipo llamado %q, como este (¿un clon de este?).",
	"Restoring set %s of pipeline %q will OVERWRITE:":                                                "Restaurar el conjunto %s del pipeline %q SOBRESCRIBIRÁ:",
	"then the URL %s becomes %s in the database, and e-mail is switched off":                         "después la URL %s pasa a ser %s en la base de datos, y el correo se desactiva",
	"where it was backed up from":                                                                    "donde se respaldó",
	"%s  ->  stage %s (%s)":                                                                          "%s  ->  etapa %s (%s)",
	"Type the pipeline's name (%s) to go on: ":                                                       "Escriba el nombre del pipeline (%s) para continuar: ",
	"not confirmed: nothing was restored":                                                            "no confirmado: no se restauró nada",
	"Set %s restored.":                                                                               "Conjunto %s restaurado.",
	"The site as it was before is kept in set %s (pre-restore): %s":                                  "El sitio tal como estaba se guarda en el conjunto %s (pre-restore): %s",
	"No restore of pipeline %q is unfinished: nothing to abandon.":                                   "No hay ninguna restauración sin terminar del pipeline %q: nada que abandonar.",
	"The unfinished restore of set %s is abandoned: the site is taken as it is, and backups resume.": "Se abandona la restauración sin terminar del conjunto %s: el sitio se acepta tal como está y los respaldos continúan.",
	"The site as it was before that restore stays in set %s: %s":                                     "El sitio tal como estaba antes de esa restauración sigue en el conjunto %s: %s",
})

// mbk run: the result it prints when the run ends.
var _ = add(map[string]string{
	"%s: set %s committed in %s (%s)":            "%s: conjunto %s guardado en %s (%s)",
	"%s: set %s committed (%s), with a WARNING:": "%s: conjunto %s guardado (%s), con una ADVERTENCIA:",
	"size alarm: %s":                             "alarma de tamaño: %s",
	"%s: FAILED, nothing committed: %s":          "%s: FALLIDO, no se guardó nada: %s",
})
