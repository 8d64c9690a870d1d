-- The benchmark's Moodle-shaped database: the tables a real site's dump is
-- made of, dominated by the standard log. Every value is a function of the
-- row number (seq_1_to_N of MariaDB's Sequence engine, MD5, CONCAT, ELT), so
-- the same scale always gives the same dump. bench.sh sets the sizes first:
-- @users, @courses, @posts, @grades, @filerows, @logrows.

CREATE TABLE mdl_config (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) NOT NULL DEFAULT '',
  value LONGTEXT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY mdl_conf_nam_uix (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='Moodle configuration variables';

CREATE TABLE mdl_user (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  auth VARCHAR(20) NOT NULL DEFAULT 'manual',
  confirmed TINYINT(1) NOT NULL DEFAULT 0,
  deleted TINYINT(1) NOT NULL DEFAULT 0,
  suspended TINYINT(1) NOT NULL DEFAULT 0,
  mnethostid BIGINT(10) NOT NULL DEFAULT 0,
  username VARCHAR(100) NOT NULL DEFAULT '',
  password VARCHAR(255) NOT NULL DEFAULT '',
  idnumber VARCHAR(255) NOT NULL DEFAULT '',
  firstname VARCHAR(100) NOT NULL DEFAULT '',
  lastname VARCHAR(100) NOT NULL DEFAULT '',
  email VARCHAR(100) NOT NULL DEFAULT '',
  city VARCHAR(120) NOT NULL DEFAULT '',
  country VARCHAR(2) NOT NULL DEFAULT '',
  lang VARCHAR(30) NOT NULL DEFAULT 'en',
  timezone VARCHAR(100) NOT NULL DEFAULT '99',
  firstaccess BIGINT(10) NOT NULL DEFAULT 0,
  lastaccess BIGINT(10) NOT NULL DEFAULT 0,
  lastlogin BIGINT(10) NOT NULL DEFAULT 0,
  lastip VARCHAR(45) NOT NULL DEFAULT '',
  description LONGTEXT,
  timecreated BIGINT(10) NOT NULL DEFAULT 0,
  timemodified BIGINT(10) NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY mdl_user_mneuse_uix (mnethostid, username),
  KEY mdl_user_del_ix (deleted),
  KEY mdl_user_ema_ix (email),
  KEY mdl_user_las_ix (lastaccess)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='One record for each person';

CREATE TABLE mdl_course (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  category BIGINT(10) NOT NULL DEFAULT 0,
  sortorder BIGINT(10) NOT NULL DEFAULT 0,
  fullname VARCHAR(1333) NOT NULL DEFAULT '',
  shortname VARCHAR(255) NOT NULL DEFAULT '',
  idnumber VARCHAR(100) NOT NULL DEFAULT '',
  summary LONGTEXT,
  format VARCHAR(21) NOT NULL DEFAULT 'topics',
  visible TINYINT(1) NOT NULL DEFAULT 1,
  startdate BIGINT(10) NOT NULL DEFAULT 0,
  enddate BIGINT(10) NOT NULL DEFAULT 0,
  timecreated BIGINT(10) NOT NULL DEFAULT 0,
  timemodified BIGINT(10) NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  KEY mdl_cour_cat_ix (category),
  KEY mdl_cour_sho_ix (shortname(191))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='Central course table';

CREATE TABLE mdl_files (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  contenthash VARCHAR(40) NOT NULL DEFAULT '',
  pathnamehash VARCHAR(40) NOT NULL DEFAULT '',
  contextid BIGINT(10) NOT NULL,
  component VARCHAR(100) NOT NULL DEFAULT '',
  filearea VARCHAR(50) NOT NULL DEFAULT '',
  itemid BIGINT(10) NOT NULL,
  filepath VARCHAR(255) NOT NULL DEFAULT '',
  filename VARCHAR(255) NOT NULL DEFAULT '',
  userid BIGINT(10) DEFAULT NULL,
  filesize BIGINT(10) NOT NULL,
  mimetype VARCHAR(100) DEFAULT NULL,
  status BIGINT(10) NOT NULL DEFAULT 0,
  source LONGTEXT,
  author VARCHAR(255) DEFAULT NULL,
  license VARCHAR(255) DEFAULT NULL,
  timecreated BIGINT(10) NOT NULL,
  timemodified BIGINT(10) NOT NULL,
  sortorder BIGINT(10) NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY mdl_file_pat_uix (pathnamehash),
  KEY mdl_file_comfilconite_ix (component, filearea, contextid, itemid),
  KEY mdl_file_con_ix (contenthash),
  KEY mdl_file_use_ix (userid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='description of files, content is stored in sha1 file pool';

CREATE TABLE mdl_forum_posts (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  discussion BIGINT(10) NOT NULL DEFAULT 0,
  parent BIGINT(10) NOT NULL DEFAULT 0,
  userid BIGINT(10) NOT NULL DEFAULT 0,
  created BIGINT(10) NOT NULL DEFAULT 0,
  modified BIGINT(10) NOT NULL DEFAULT 0,
  mailed TINYINT(2) NOT NULL DEFAULT 0,
  subject VARCHAR(255) NOT NULL DEFAULT '',
  message LONGTEXT NOT NULL,
  messageformat TINYINT(2) NOT NULL DEFAULT 0,
  messagetrust TINYINT(2) NOT NULL DEFAULT 0,
  attachment VARCHAR(100) NOT NULL DEFAULT '',
  totalscore SMALLINT(4) NOT NULL DEFAULT 0,
  mailnow BIGINT(10) NOT NULL DEFAULT 0,
  deleted TINYINT(1) NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  KEY mdl_forupost_use_ix (userid),
  KEY mdl_forupost_dis_ix (discussion),
  KEY mdl_forupost_par_ix (parent)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='All posts are stored in this table';

CREATE TABLE mdl_grade_grades (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  itemid BIGINT(10) NOT NULL,
  userid BIGINT(10) NOT NULL,
  rawgrade DECIMAL(10,5) DEFAULT NULL,
  rawgrademax DECIMAL(10,5) NOT NULL DEFAULT 100.00000,
  rawgrademin DECIMAL(10,5) NOT NULL DEFAULT 0.00000,
  usermodified BIGINT(10) DEFAULT NULL,
  finalgrade DECIMAL(10,5) DEFAULT NULL,
  hidden BIGINT(10) NOT NULL DEFAULT 0,
  locked BIGINT(10) NOT NULL DEFAULT 0,
  overridden BIGINT(10) NOT NULL DEFAULT 0,
  feedback LONGTEXT,
  feedbackformat BIGINT(10) NOT NULL DEFAULT 0,
  timecreated BIGINT(10) DEFAULT NULL,
  timemodified BIGINT(10) DEFAULT NULL,
  aggregationstatus VARCHAR(10) NOT NULL DEFAULT 'unknown',
  aggregationweight DECIMAL(10,5) DEFAULT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY mdl_gradgrad_useite_uix (userid, itemid),
  KEY mdl_gradgrad_ite_ix (itemid),
  KEY mdl_gradgrad_use_ix (userid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='grade_grades  This table keeps individual grades for each user';

CREATE TABLE mdl_logstore_standard_log (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  eventname VARCHAR(255) NOT NULL DEFAULT '',
  component VARCHAR(100) NOT NULL DEFAULT '',
  action VARCHAR(100) NOT NULL DEFAULT '',
  target VARCHAR(100) NOT NULL DEFAULT '',
  objecttable VARCHAR(50) DEFAULT NULL,
  objectid BIGINT(10) DEFAULT NULL,
  crud VARCHAR(1) NOT NULL DEFAULT '',
  edulevel TINYINT(1) NOT NULL,
  contextid BIGINT(10) NOT NULL,
  contextlevel BIGINT(10) NOT NULL,
  contextinstanceid BIGINT(10) NOT NULL,
  userid BIGINT(10) NOT NULL,
  courseid BIGINT(10) DEFAULT NULL,
  relateduserid BIGINT(10) DEFAULT NULL,
  anonymous TINYINT(1) NOT NULL DEFAULT 0,
  other LONGTEXT,
  timecreated BIGINT(10) NOT NULL,
  origin VARCHAR(10) DEFAULT NULL,
  ip VARCHAR(45) DEFAULT NULL,
  realuserid BIGINT(10) DEFAULT NULL,
  PRIMARY KEY (id),
  KEY mdl_logsstanlog_tim_ix (timecreated),
  KEY mdl_logsstanlog_couanotim_ix (courseid, anonymous, timecreated),
  KEY mdl_logsstanlog_useconconcrue_ix (userid, contextlevel, contextinstanceid, crud, edulevel, timecreated),
  KEY mdl_logsstanlog_con_ix (contextid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='Standard log table';

INSERT INTO mdl_config (name, value) VALUES
  ('version', '2024100700.00'), ('release', '4.5 (Build: 20241007)'),
  ('siteidentifier', 'mbkbench0123456789abcdef'), ('lang', 'es'),
  ('fullname', 'Campus Virtual — Benchmark'), ('logstore_standard_loglifetime', '0');
INSERT INTO mdl_config (name, value)
SELECT CONCAT('setting_', seq), CONCAT(MD5(seq), IF(seq % 3 = 0, ' ñandú', '')) FROM seq_1_to_2000;

-- Words for generated prose: a temporary table, so it is not dumped.
CREATE TEMPORARY TABLE bench_word (n INT PRIMARY KEY, w VARCHAR(20));
INSERT INTO bench_word VALUES
  (0,'el'),(1,'la'),(2,'de'),(3,'que'),(4,'en'),(5,'los'),(6,'curso'),(7,'tarea'),(8,'entrega'),
  (9,'profesor'),(10,'estudiante'),(11,'pregunta'),(12,'respuesta'),(13,'examen'),(14,'módulo'),
  (15,'semana'),(16,'lectura'),(17,'práctica'),(18,'the'),(19,'and'),(20,'assignment'),(21,'quiz'),
  (22,'deadline'),(23,'grade'),(24,'feedback'),(25,'forum'),(26,'resource'),(27,'chapter'),
  (28,'ejercicio'),(29,'solución'),(30,'duda'),(31,'gracias'),(32,'por'),(33,'favor'),(34,'para'),
  (35,'con'),(36,'una'),(37,'un'),(38,'matemáticas'),(39,'historia'),(40,'biología'),(41,'física'),
  (42,'proyecto'),(43,'grupo'),(44,'equipo'),(45,'informe'),(46,'archivo'),(47,'enlace'),
  (48,'vídeo'),(49,'calificación'),(50,'revisión'),(51,'plazo'),(52,'mañana'),(53,'hoy'),
  (54,'clase'),(55,'tema'),(56,'unidad'),(57,'evaluación'),(58,'nota'),(59,'ñandú');

CREATE TEMPORARY TABLE bench_phrase (n INT PRIMARY KEY, p TEXT);
INSERT INTO bench_phrase
SELECT s.seq - 1, CONCAT(UPPER(LEFT(a.w, 1)), SUBSTRING(a.w, 2), ' ', b.w, ' ', c.w, ' ', d.w, ' ', e.w, ' ', f.w,
       ELT(1 + s.seq % 4, '.', ',', '?', '.'))
FROM seq_1_to_1000 s
JOIN bench_word a ON a.n = (s.seq * 7) % 60
JOIN bench_word b ON b.n = (s.seq * 13 + 5) % 60
JOIN bench_word c ON c.n = (s.seq * 17 + 11) % 60
JOIN bench_word d ON d.n = (s.seq * 23 + 3) % 60
JOIN bench_word e ON e.n = (s.seq * 29 + 7) % 60
JOIN bench_word f ON f.n = (s.seq * 31 + 1) % 60;

INSERT INTO mdl_user (auth, confirmed, mnethostid, username, password, idnumber, firstname, lastname, email,
  city, country, lang, firstaccess, lastaccess, lastlogin, lastip, description, timecreated, timemodified)
SELECT 'manual', 1, 1, CONCAT('user', seq), CONCAT('$2y$10$', SUBSTRING(SHA2(seq, 256), 1, 53)), LPAD(seq, 8, '0'),
       ELT(1 + seq % 8, 'Ana', 'Iñaki', 'Søren', 'Mei', 'Ömer', 'José', 'Lucía', 'Zoë'),
       ELT(1 + (seq DIV 8) % 6, 'García', 'Müller', 'Núñez', 'Wang', 'Pérez', 'Łukasiewicz'),
       CONCAT('user', seq, '@example.edu'), ELT(1 + seq % 5, 'Medellín', 'Bogotá', 'Quito', 'Lima', 'Kraków'),
       ELT(1 + seq % 5, 'CO', 'CO', 'EC', 'PE', 'PL'), 'es',
       1690000000 + seq * 60, 1730000000 + seq % 86400, 1729990000 + seq % 86400,
       CONCAT('10.', (seq DIV 65536) % 256, '.', (seq DIV 256) % 256, '.', seq % 256),
       IF(seq % 4 = 0, CONCAT('<p>', (SELECT p FROM bench_phrase WHERE n = seq % 1000), '</p>'), ''),
       1690000000 + seq * 60, 1700000000 + seq * 60
FROM seq_1_to_10000000 WHERE seq <= @users;

INSERT INTO mdl_course (category, sortorder, fullname, shortname, idnumber, summary, startdate, enddate, timecreated, timemodified)
SELECT 1 + seq % 12, 10000 + seq,
       CONCAT(ELT(1 + seq % 6, 'Matemáticas', 'Biología', 'Historia', 'Física', 'Programación', 'Inglés'), ' ', 1 + seq DIV 6, ' — grupo ', seq % 4),
       CONCAT('C', LPAD(seq, 5, '0')), CONCAT('course-', seq),
       CONCAT('<p>', (SELECT p FROM bench_phrase WHERE n = (seq * 3) % 1000), ' ', (SELECT p FROM bench_phrase WHERE n = (seq * 5) % 1000), '</p>'),
       1693526400 + (seq % 8) * 604800, 1709251200 + (seq % 8) * 604800, 1690000000 + seq * 3600, 1700000000 + seq * 3600
FROM seq_1_to_10000000 WHERE seq <= @courses;

INSERT INTO mdl_files (contenthash, pathnamehash, contextid, component, filearea, itemid, filepath, filename, userid,
  filesize, mimetype, status, source, author, license, timecreated, timemodified, sortorder)
SELECT IF(seq % 2 = 0, 'da39a3ee5e6b4b0d3255bfef95601890afd80709', SHA1(CONCAT('content', seq DIV 2))),
       SHA1(CONCAT('path', seq)), 100 + (seq DIV 2) % 50000,
       ELT(1 + (seq DIV 2) % 5, 'user', 'mod_assign', 'mod_resource', 'mod_forum', 'course'),
       ELT(1 + (seq DIV 2) % 5, 'draft', 'submission_files', 'content', 'attachment', 'overviewfiles'),
       (seq * 37) % 100000, '/', IF(seq % 2 = 0, '.', CONCAT(ELT(1 + seq % 6, 'tarea', 'informe', 'foto', 'apuntes', 'video', 'presentación'), '_', seq,
       ELT(1 + seq % 6, '.pdf', '.docx', '.jpg', '.pdf', '.mp4', '.pptx'))),
       1 + (seq * 7) % GREATEST(@users, 1), IF(seq % 2 = 0, 0, 1024 + (seq * 7919) % 3000000),
       IF(seq % 2 = 0, NULL, ELT(1 + seq % 6, 'application/pdf', 'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
       'image/jpeg', 'application/pdf', 'video/mp4', 'application/vnd.openxmlformats-officedocument.presentationml.presentation')),
       0, IF(seq % 2 = 0, NULL, CONCAT('O:8:"stdClass":1:{s:6:"source";s:', 10 + LENGTH(seq), ':"documento_', seq, '";}')),
       IF(seq % 2 = 0, NULL, 'Estudiante'), IF(seq % 2 = 0, NULL, 'allrightsreserved'),
       1695000000 + seq * 97, 1695000000 + seq * 97, 0
FROM seq_1_to_10000000 WHERE seq <= @filerows;

INSERT INTO mdl_forum_posts (discussion, parent, userid, created, modified, mailed, subject, message, messageformat, attachment, mailnow)
SELECT 1 + seq DIV 7, IF(seq % 7 = 0, 0, seq - 1), 1 + (seq * 31) % GREATEST(@users, 1), 1695000000 + seq * 131, 1695000000 + seq * 131, 1,
       CONCAT('Re: ', (SELECT p FROM bench_phrase WHERE n = (seq DIV 7) % 1000)),
       CONCAT('<p>', (SELECT p FROM bench_phrase WHERE n = (seq * 7) % 1000), ' ',
                     (SELECT p FROM bench_phrase WHERE n = (seq * 11 + 3) % 1000), ' ',
                     (SELECT p FROM bench_phrase WHERE n = (seq * 13 + 5) % 1000), '</p><p>',
                     (SELECT p FROM bench_phrase WHERE n = (seq * 17 + 7) % 1000), ' ',
                     (SELECT p FROM bench_phrase WHERE n = (seq * 19 + 9) % 1000), ' (ref ', LEFT(MD5(seq), 8), ')</p>'),
       1, IF(seq % 9 = 0, '1', ''), 0
FROM seq_1_to_10000000 WHERE seq <= @posts;

INSERT INTO mdl_grade_grades (itemid, userid, rawgrade, usermodified, finalgrade, feedback, feedbackformat, timecreated, timemodified, aggregationstatus, aggregationweight)
SELECT 1 + seq % 400, 1 + seq DIV 400, IF(seq % 11 = 0, NULL, (CONV(SUBSTRING(MD5(seq), 1, 6), 16, 10) % 10000) / 100),
       2, IF(seq % 11 = 0, NULL, (CONV(SUBSTRING(MD5(seq), 1, 6), 16, 10) % 10000) / 100),
       IF(seq % 5 = 0, CONCAT('<p>', (SELECT p FROM bench_phrase WHERE n = (seq * 3) % 1000), '</p>'), NULL), 1,
       1700000000 + seq * 13, 1700000000 + seq * 13, ELT(1 + seq % 3, 'used', 'unknown', 'novalue'),
       IF(seq % 3 = 0, NULL, 1 / (1 + seq % 7))
FROM seq_1_to_100000000 WHERE seq <= @grades;
