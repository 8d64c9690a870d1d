package main

import (
	"strings"
	"testing"
)

func TestDeferKeys(t *testing.T) {
	const logTable = "CREATE TABLE `mdl_log` (\n" +
		"  `id` bigint(10) NOT NULL AUTO_INCREMENT,\n" +
		"  `userid` bigint(10) NOT NULL,\n" +
		"  `name` varchar(100) NOT NULL DEFAULT '',\n" +
		"  PRIMARY KEY (`id`),\n" +
		"  UNIQUE KEY `mdl_log_nam_uix` (`name`),\n" +
		"  KEY `mdl_log_use_ix` (`userid`),\n" +
		"  KEY `mdl_log_usenam_ix` (`userid`,`name`(20))\n" +
		") ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;\n"
	out, table, alter := deferKeys([]byte(logTable))
	wantOut := "CREATE TABLE `mdl_log` (\n" +
		"  `id` bigint(10) NOT NULL AUTO_INCREMENT,\n" +
		"  `userid` bigint(10) NOT NULL,\n" +
		"  `name` varchar(100) NOT NULL DEFAULT '',\n" +
		"  PRIMARY KEY (`id`)\n" +
		") ENGINE=InnoDB AUTO_INCREMENT=5 DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;\n"
	if string(out) != wantOut || table != "`mdl_log`" ||
		alter != "ALTER TABLE `mdl_log` ADD UNIQUE KEY `mdl_log_nam_uix` (`name`), ADD KEY `mdl_log_use_ix` (`userid`), ADD KEY `mdl_log_usenam_ix` (`userid`,`name`(20));\n" {
		t.Errorf("deferKeys:\n%s\ntable %s\nalter %s", out, table, alter)
	}

	kept := map[string]string{
		"MyISAM": "CREATE TABLE `m` (\n  `a` int(11) DEFAULT NULL,\n  KEY `a` (`a`)\n) ENGINE=MyISAM DEFAULT CHARSET=utf8mb4;\n",
		"foreign key": "CREATE TABLE `c` (\n  `id` int(11) NOT NULL,\n  `p` int(11) DEFAULT NULL,\n  PRIMARY KEY (`id`),\n  KEY `p` (`p`),\n" +
			"  CONSTRAINT `c_ibfk_1` FOREIGN KEY (`p`) REFERENCES `par` (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n",
		"auto_increment in a secondary key": "CREATE TABLE `ai` (\n  `a` int(11) NOT NULL,\n  `id` int(11) NOT NULL AUTO_INCREMENT,\n" +
			"  PRIMARY KEY (`a`),\n  KEY `id` (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n",
		"no secondary key":    "CREATE TABLE `p` (\n  `a` int(11) NOT NULL,\n  PRIMARY KEY (`a`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n",
		"not a dump's layout": "CREATE TABLE `x` (`a` int, KEY (`a`)) ENGINE=InnoDB;\n",
	}
	for name, stmt := range kept {
		if out, _, alter := deferKeys([]byte(stmt)); string(out) != stmt || alter != "" {
			t.Errorf("%s: changed to\n%s\nalter %q", name, out, alter)
		}
	}

	// FULLTEXT stays in the CREATE; the plain key goes.
	ft := "CREATE TABLE `f` (\n  `id` int(11) NOT NULL,\n  `t` text DEFAULT NULL,\n  PRIMARY KEY (`id`),\n" +
		"  KEY `t_ix` (`t`(10)),\n  FULLTEXT KEY `t_ft` (`t`)\n) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;\n"
	out, _, alter = deferKeys([]byte(ft))
	if !strings.Contains(string(out), "  PRIMARY KEY (`id`),\n  FULLTEXT KEY `t_ft` (`t`)\n)") || alter != "ALTER TABLE `f` ADD KEY `t_ix` (`t`(10));\n" {
		t.Errorf("FULLTEXT table:\n%s\nalter %q", out, alter)
	}

	if got := rawTable([]byte("INSERT INTO `we``ird` VALUES (1);\n")); got != "`we``ird`" {
		t.Errorf("rawTable = %q", got)
	}
}
