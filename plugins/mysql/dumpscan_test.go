package main

import (
	"maps"
	"slices"
	"testing"
)

// A dump in the shapes the clients write: MariaDB 10.11+ puts each row on
// its own line, older clients and mysqldump put a statement on one line,
// --complete-insert names the columns, --skip-extended-insert writes a
// statement per row. Strings hold every character that could fool a
// counter, and a procedure body holds an INSERT of its own.
const sampleDump = "/*M!999999\\- enable the sandbox mode */ \n" +
	"-- MariaDB dump 10.19  Distrib 10.11.6-MariaDB\n" +
	"DROP TABLE IF EXISTS `t`;\n" +
	"CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  `s` varchar(100) DEFAULT NULL COMMENT 'INSERT INTO `t` VALUES (1);'\n) ENGINE=InnoDB;\n" +
	"INSERT INTO `t` VALUES\n(1,'a),(b\\'c\\\\',0x00FF),\n(2,NULL,''),\n(3,'it''s ; (x)',_binary 'q');\n" +
	"CREATE TABLE `we``ird (x)` (`a` int);\n" +
	"INSERT INTO `we``ird (x)` (`a`, `b)(`) VALUES (1),(2),(3);\n" +
	"CREATE TABLE IF NOT EXISTS `one`(`a` int);\n" +
	"INSERT INTO `one` VALUES (1);\nINSERT INTO `one` VALUES (2);\nREPLACE INTO `one` VALUES (3);\nINSERT IGNORE INTO `one` VALUES (4);\n" +
	"CREATE TABLE `empty` (`a` int);\n" +
	"/*!50001 CREATE VIEW `v` AS SELECT\n NULL AS `id` */;\n" +
	"DELIMITER ;;\n" +
	"CREATE DEFINER=`root`@`localhost` PROCEDURE `p`()\nBEGIN\nINSERT INTO `empty` VALUES (1),(2);\nCREATE TABLE `ghost` (a int);\nEND\n;;\n" +
	"DELIMITER ;\n" +
	"-- Dump completed on 2024-05-01 10:00:00\n"

func TestDumpScanCounts(t *testing.T) {
	want := map[string]int64{"t": 3, "we`ird (x)": 3, "one": 4, "empty": 0}
	// Every chunk size splits tokens at a different place.
	for _, size := range []int{1, 2, 3, 5, 7, 13, 64, len(sampleDump)} {
		d := newDumpScan()
		for i := 0; i < len(sampleDump); i += size {
			d.Write([]byte(sampleDump[i:min(i+size, len(sampleDump))]))
		}
		if !maps.Equal(d.rows, want) {
			t.Fatalf("chunks of %d: rows %v, want %v", size, d.rows, want)
		}
		if !slices.Equal(d.created, []string{"t", "we`ird (x)", "one", "empty"}) {
			t.Fatalf("chunks of %d: created %q", size, d.created)
		}
		if !d.completed() {
			t.Fatalf("chunks of %d: trailer not seen", size)
		}
	}
}

func TestDumpScanTrailer(t *testing.T) {
	tests := []struct {
		name string
		tail string
		want bool
	}{
		{"complete", "UNLOCK TABLES;\n\n-- Dump completed on 2024-05-01\n", true},
		{"complete without date", "-- Dump completed\n", true},
		{"cut after data", "-- Dump completed on 2024\nINSERT INTO `t` VALUES (1);\n", false},
		{"cut inside", "INSERT INTO `t` VALUES (1", false},
		{"nothing", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := newDumpScan()
			d.Write(make([]byte, 2000)) // the trailer check must look at the end only
			d.Write([]byte("\n" + tt.tail))
			if got := d.completed(); got != tt.want {
				t.Fatalf("completed() = %v, want %v", got, tt.want)
			}
		})
	}
}

func BenchmarkDumpScan(b *testing.B) {
	var chunk []byte
	chunk = append(chunk, "INSERT INTO `mdl_logstore_standard_log` VALUES\n"...)
	for i := range 2000 {
		if i > 0 {
			chunk = append(chunk, ",\n"...)
		}
		chunk = append(chunk, "(1234567,'\\\\core\\\\event\\\\course_viewed','core','viewed','course',NULL,NULL,'r',2,34,50,3,2,NULL,0,'N;',1700000000,'web','10.0.0.1',NULL)"...)
	}
	chunk = append(chunk, ";\n"...)
	b.SetBytes(int64(len(chunk)))
	d := newDumpScan()
	for b.Loop() {
		d.Write(chunk)
	}
}
