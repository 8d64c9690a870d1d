package i18n

// mbk list, info and status: the tables' headings and the details people
// read. Status's first line is the monitoring plugin's and stays English.
var _ = add(map[string]string{
	// mbk list.
	"no sets in %s": "no hay conjuntos en %s",
	"SET\tKIND\tSTATUS\tSIZE\tDURATION\tDRILL\tNOTE": "CONJUNTO\tTIPO\tESTADO\tTAMAÑO\tDURACIÓN\tSIMULACRO\tNOTA",
	"made on host %q":                     "hecho en el equipo %q",
	"made on another machine named %q":    "hecho en otro equipo llamado %q",
	"FUTURE: dated %s ahead of the clock": "FUTURO: fechado %s por delante del reloj",

	// mbk info.
	"STAGE\tPLUGIN\tVERSION\tSTATUS\tDURATION": "ETAPA\tPLUGIN\tVERSIÓN\tESTADO\tDURACIÓN",
	"%s stored (%s raw, %s), %s %q, %s":        "%s guardados (%s sin comprimir, %s), %s %q, %s",
	"last drill":                               "último simulacro",
	"never drilled: %s":                        "nunca se ha hecho un simulacro: %s",

	// mbk status.
	"newest set":                     "último conjunto",
	"%s, %s old (max_age %s)":        "%s, de hace %s (max_age %s)",
	"none in %s":                     "ninguno en %s",
	"sets kept":                      "conservados",
	"last run":                       "última ejecución",
	"%s at %s (exit %v)":             "%s el %s (salida %v)",
	"set %s":                         "conjunto %s",
	"none recorded":                  "ninguna registrada",
	"last success":                   "último éxito",
	"%s (%s ago)":                    "%s (hace %s)",
	"failed since":                   "fallos",
	"store %s":                       "almacén %s",
	"no copy recorded":               "ninguna copia registrada",
	"the last copy succeeded":        "la última copia fue correcta",
	"the last copy FAILED":           "la última copia FALLÓ",
	"newest copy %s, %s old; %s":     "última copia %s, de hace %s; %s",
	"passed":                         "superado",
	"%s %s, set %s (%s), restore %s": "%s %s, conjunto %s (%s), restauración %s",
})

var _ = addPlurals(map[string]pluralMsg{
	"%d run(s) since the last success": {
		en: forms{1, "%d run since the last success", "%d runs since the last success"},
		es: forms{1, "%d ejecución desde el último éxito", "%d ejecuciones desde el último éxito"},
	},
	"%d set(s) FUTURE: dated more than an hour ahead of this machine's clock, made while it was wrong\n" +
		"(or it is wrong now). Retention neither counts nor deletes them and restore takes them only by name.\n" +
		"Check the clock (timedatectl), then delete such a set by hand if it is not wanted.\n": {
		en: forms{1, "%d set FUTURE: dated more than an hour ahead of this machine's clock, made while it was wrong\n" +
			"(or it is wrong now). Retention neither counts nor deletes it and restore takes it only by name.\n" +
			"Check the clock (timedatectl), then delete such a set by hand if it is not wanted.\n",
			"%d sets FUTURE: dated more than an hour ahead of this machine's clock, made while it was wrong\n" +
				"(or it is wrong now). Retention neither counts nor deletes them and restore takes them only by name.\n" +
				"Check the clock (timedatectl), then delete such a set by hand if it is not wanted.\n"},
		es: forms{1, "%d conjunto FUTURO: fechado más de una hora por delante del reloj de esta máquina, hecho mientras estaba mal\n" +
			"(o está mal ahora). La retención no lo cuenta ni lo borra, y restore solo lo toma por su nombre.\n" +
			"Compruebe el reloj (timedatectl) y borre a mano ese conjunto si no lo quiere.\n",
			"%d conjuntos FUTURO: fechados más de una hora por delante del reloj de esta máquina, hechos mientras estaba mal\n" +
				"(o está mal ahora). La retención no los cuenta ni los borra, y restore solo los toma por su nombre.\n" +
				"Compruebe el reloj (timedatectl) y borre a mano esos conjuntos si no los quiere.\n"},
	},
})

// A drill's result, as mbk drill and mbk info print it, and its line in
// mbk list.
var _ = add(map[string]string{
	"(none)": "(ninguno)",
	"Drill of set %s (%s) of pipeline %q: %s": "Simulacro del conjunto %s (%s) del pipeline %q: %s",
	"sandbox: %s": "entorno desechable: %s",
	"Restore time: %s (the recovery time to report); whole drill %s": "Tiempo de restauración: %s (el tiempo de recuperación que hay que informar); simulacro completo %s",
	"FAIL":               "FALLO",
	"%s %s (restore %s)": "%s %s (restauración %s)",
})
