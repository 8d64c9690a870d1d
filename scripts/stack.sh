#!/usr/bin/env bash
# stack.sh - test/demo stack for mbk: a real Docker engine, a MariaDB container and a
# Moodle-shaped "app" container with a moodledata volume, built without any registry.
#
# Usage: scripts/stack.sh deps|engine|image|up [NAME]|down [NAME]|env [NAME]
#
#   deps         install docker.io, MariaDB and the tools the tests use (apt) when missing
#   engine       start dockerd when `docker info` does not answer
#   image        build mbk-base:latest (tiny rootfs, host /usr and /etc bound at run time)
#   up [NAME]    (re)create NAME-db, NAME-app and volumes NAME-dbdata, NAME-moodledata
#                with sample data (mdl_files naming every blob in filedir); any previous
#                stack of that NAME is removed first
#   down [NAME]  remove the containers and volumes of NAME
#   env [NAME]   print shell exports describing the stack (never the password)
#
# NAME defaults to mbk-demo. The database password of user `moodle` comes from
# MBK_DB_PASSWORD (default: 'moodle-Secret$ pass;#ñ'); it only ever travels on stdin.
set -euo pipefail

readonly IMAGE="mbk-base:latest"
readonly DEFAULT_NAME="mbk-demo"
readonly DOCKERD_LOG="/var/log/mbk-dockerd.log"
readonly DB_NAME="moodle"
readonly DB_USER="moodle"
readonly DATAROOT="/var/www/moodledata"
readonly STACK_LABEL="io.mbk.stack"

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
  printf '[stack] error: %s\n' "$*" >&2
  exit 1
}

usage() {
  sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

check_name() {
  [[ $1 =~ ^[a-zA-Z0-9][a-zA-Z0-9_.-]*$ ]] || die "invalid stack name '$1' (letters, digits, _ . -)"
}

# ---------------------------------------------------------------------------- deps
cmd_deps() {
  local missing=() c
  for c in docker dockerd mariadb mariadb-dump mariadb-install-db mariadbd tar gzip setsid sha1sum zstd crontab /usr/sbin/sshd ssh protoc minisign systemd-analyze man dpkg; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  ((${#missing[@]} == 0)) && return 0

  log "missing: ${missing[*]}; installing docker.io and MariaDB with apt"
  command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand"
  local sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null 2>&1 || die "not root and no sudo: cannot install ${missing[*]}"
    sudo=(sudo)
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" apt-get install -y -qq --no-install-recommends \
    docker.io mariadb-server mariadb-client tar gzip zstd coreutils util-linux procps ca-certificates cron openssh-server openssh-client protobuf-compiler minisign systemd man-db dpkg >/dev/null
  for c in "${missing[@]}"; do
    command -v "$c" >/dev/null 2>&1 || die "'$c' still missing after apt-get install"
  done
}

# ---------------------------------------------------------------------------- engine
cmd_engine() {
  command -v docker >/dev/null 2>&1 || die "docker CLI not found (run: $0 deps)"
  docker info >/dev/null 2>&1 && return 0

  command -v dockerd >/dev/null 2>&1 || die "dockerd not found (run: $0 deps)"
  ((EUID == 0)) || die "docker engine is not answering and starting dockerd needs root"
  log "starting dockerd (log: $DOCKERD_LOG)"
  # setsid + nohup: the engine must outlive this script and its session.
  setsid nohup dockerd >"$DOCKERD_LOG" 2>&1 </dev/null &
  disown || true

  local i
  for ((i = 0; i < 60; i++)); do
    docker info >/dev/null 2>&1 && {
      log "dockerd is up"
      return 0
    }
    sleep 1
  done
  tail -n 20 "$DOCKERD_LOG" >&2 || true
  die "dockerd did not answer 'docker info' within 60 s (see $DOCKERD_LOG)"
}

# ---------------------------------------------------------------------------- image
cmd_image() {
  local real
  for real in mariadb:11 mariadb:latest; do
    if docker image inspect "$real" >/dev/null 2>&1; then
      log "note: official image $real is present locally; the stack still uses $IMAGE + host MariaDB"
      break
    fi
  done
  docker image inspect "$IMAGE" >/dev/null 2>&1 && return 0

  log "building $IMAGE from a tiny rootfs (no registry)"
  local tmp
  tmp=$(mktemp -d)
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'; trap - RETURN" RETURN
  local r="$tmp/rootfs"
  mkdir -p "$r"/{usr,etc,tmp,var/lib/mysql,var/log/mysql,var/tmp,run/mysqld,proc,sys,dev,root,var/www}
  chmod 1777 "$r/tmp" "$r/var/tmp"
  ln -s usr/bin "$r/bin"
  ln -s usr/sbin "$r/sbin"
  ln -s usr/lib "$r/lib"
  ln -s usr/lib64 "$r/lib64"
  tar -C "$r" --numeric-owner --owner=0 --group=0 -c . |
    docker import \
      -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      -c 'ENV LANG=C.UTF-8' \
      -c 'CMD ["sleep", "infinity"]' \
      -m "mbk test base: bind /usr and /etc from the host read-only" \
      - "$IMAGE" >/dev/null
  log "built $IMAGE"
}

# ---------------------------------------------------------------------------- down
cmd_down() {
  local name=$1
  check_name "$name"
  docker rm -f -v "$name-db" "$name-app" >/dev/null 2>&1 || true
  docker volume rm -f "$name-dbdata" "$name-moodledata" >/dev/null 2>&1 || true
}

# ---------------------------------------------------------------------------- env
cmd_env() {
  local name=$1
  check_name "$name"
  printf 'export MBK_STACK_DB=%q\n' "$name-db"
  printf 'export MBK_STACK_APP=%q\n' "$name-app"
  printf 'export MBK_STACK_VOLUME=%q\n' "$name-moodledata"
  printf 'export MBK_DB_NAME=%q\n' "$DB_NAME"
  printf 'export MBK_DB_USER=%q\n' "$DB_USER"
}

# ---------------------------------------------------------------------------- up
# Escape a value for a single-quoted SQL string literal (default sql_mode).
sql_quote() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\'/\'\'}
  printf '%s' "$s"
}

start_db() {
  local name=$1
  docker volume create --label "$STACK_LABEL=$name" "$name-dbdata" >/dev/null
  # mariadb-install-db gives root@localhost unix-socket auth (no password).
  docker run -d --name "$name-db" --hostname "$name-db" \
    --label "$STACK_LABEL=$name" \
    -v /usr:/usr:ro -v /etc:/etc:ro -v "$name-dbdata:/var/lib/mysql" \
    "$IMAGE" sh -c '
      if [ ! -d /var/lib/mysql/mysql ]; then
        mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db >/tmp/init.log 2>&1 ||
          { cat /tmp/init.log >&2; exit 1; }
      fi
      exec mariadbd --user=root --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
        --pid-file=/run/mysqld/mysqld.pid --bind-address=0.0.0.0' >/dev/null

  local i
  for ((i = 0; i < 90; i++)); do
    if docker exec "$name-db" mariadb -uroot -e 'select 1' >/dev/null 2>&1; then
      return 0
    fi
    if [[ $(docker inspect -f '{{.State.Running}}' "$name-db" 2>/dev/null) != true ]]; then
      docker logs --tail 30 "$name-db" >&2 || true
      die "container $name-db exited while starting MariaDB"
    fi
    sleep 1
  done
  docker logs --tail 30 "$name-db" >&2 || true
  die "MariaDB in $name-db not ready after 90 s"
}

load_db() {
  local name=$1 pw
  pw=$(sql_quote "${MBK_DB_PASSWORD-moodle-Secret\$ pass;#ñ}")
  # Everything goes through stdin: the password never appears on a command line.
  docker exec -i "$name-db" mariadb -uroot --default-character-set=utf8mb4 <<SQL
CREATE DATABASE IF NOT EXISTS \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
CREATE OR REPLACE USER '$DB_USER'@'%' IDENTIFIED BY '$pw';
CREATE OR REPLACE USER '$DB_USER'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'%';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
FLUSH PRIVILEGES;
SQL

  docker exec -i "$name-db" mariadb -uroot --default-character-set=utf8mb4 "$DB_NAME" >/dev/null <<'SQL'
SET SESSION max_recursive_iterations = 100000;

CREATE TABLE mdl_config (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  name VARCHAR(255) NOT NULL DEFAULT '',
  value LONGTEXT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY mdl_conf_nam_uix (name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='Moodle configuration variables';

INSERT INTO mdl_config (name, value) VALUES
  ('version', '2024100700.00'),
  ('release', '4.5 (Build: 20241007)'),
  ('siteidentifier', 'mbkdemo0123456789abcdef'),
  ('lang', 'es'),
  ('fullname', 'Campus Virtual — Demostración ñandú 🎓');

CREATE TABLE mdl_config_plugins (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  plugin VARCHAR(100) NOT NULL DEFAULT 'core',
  name VARCHAR(100) NOT NULL DEFAULT '',
  value LONGTEXT NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY mdl_confplug_plunam_uix (plugin, name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='Moodle modules and plugins configuration variables';

-- The version rows are the installed plugins (what a drill compares);
-- the others are plugin settings, which it leaves alone.
INSERT INTO mdl_config_plugins (plugin, name, value) VALUES
  ('mod_forum', 'version', '2024100700'),
  ('mod_resource', 'version', '2024100700'),
  ('mod_assign', 'version', '2024100701'),
  ('mod_quiz', 'version', '2024100700'),
  ('auth_manual', 'version', '2024100700'),
  ('auth_email', 'version', '2024100700'),
  ('enrol_manual', 'version', '2024100700'),
  ('enrol_self', 'version', '2024100700'),
  ('block_html', 'version', '2024100700'),
  ('theme_boost', 'version', '2024100700'),
  ('logstore_standard', 'version', '2024100700'),
  ('tool_mobile', 'version', '2024100700'),
  ('mod_forum', 'maxbytes', '512000'),
  ('auth_manual', 'expiration', '0'),
  ('theme_boost', 'preset', 'default.scss');

-- Filled by load_files once the file pool exists: one row per blob.
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
  timecreated BIGINT(10) NOT NULL,
  timemodified BIGINT(10) NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY mdl_file_pat_uix (pathnamehash),
  KEY mdl_file_comfilconite_ix (component, filearea, contextid, itemid),
  KEY mdl_file_con_ix (contenthash)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='description of files, content is stored in sha1 file pool';

CREATE TABLE mdl_user (
  id BIGINT(10) NOT NULL AUTO_INCREMENT,
  auth VARCHAR(20) NOT NULL DEFAULT 'manual',
  confirmed TINYINT(1) NOT NULL DEFAULT 0,
  deleted TINYINT(1) NOT NULL DEFAULT 0,
  suspended TINYINT(1) NOT NULL DEFAULT 0,
  mnethostid BIGINT(10) NOT NULL DEFAULT 0,
  username VARCHAR(100) NOT NULL DEFAULT '',
  password VARCHAR(255) NOT NULL DEFAULT '',
  firstname VARCHAR(100) NOT NULL DEFAULT '',
  lastname VARCHAR(100) NOT NULL DEFAULT '',
  email VARCHAR(100) NOT NULL DEFAULT '',
  city VARCHAR(120) NOT NULL DEFAULT '',
  country VARCHAR(2) NOT NULL DEFAULT '',
  lang VARCHAR(30) NOT NULL DEFAULT 'en',
  description LONGTEXT,
  timecreated BIGINT(10) NOT NULL DEFAULT 0,
  timemodified BIGINT(10) NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  UNIQUE KEY mdl_user_mneuse_uix (mnethostid, username),
  KEY mdl_user_del_ix (deleted),
  KEY mdl_user_ema_ix (email)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='One record for each person';

INSERT INTO mdl_user (auth, confirmed, mnethostid, username, password, firstname, lastname, email, city, country, lang, description, timecreated, timemodified) VALUES
  ('manual', 1, 1, 'guest', '', 'Guest user', ' ', 'root@localhost', '', '', 'en', 'This user is a special user that allows read-only access to some courses.', 1700000000, 1700000000),
  ('manual', 1, 1, 'admin', '$2y$10$abcdefghijklmnopqrstuuDemoHashNotARealOne0123456789ab', 'Admin', 'Usuario', 'admin@example.com', 'Bogotá', 'CO', 'es', 'Administradora del sitio ✔', 1700000000, 1700000000),
  ('manual', 1, 1, 'jose.nunez', '', 'José', 'Núñez', 'jose@example.com', 'Peñalolén', 'CL', 'es', 'Profesor de matemáticas — «cálculo»', 1700000100, 1700000100),
  ('manual', 1, 1, 'zoe', '', 'Zoë', 'Łukasiewicz-Ødegård', 'zoe@example.com', 'Kraków', 'PL', 'en', 'Emoji test: 😀🎉👩‍🏫 and a 4-byte char 𝔐', 1700000200, 1700000200),
  ('manual', 1, 1, 'li.xiaolong', '', '小龍', '李', 'li@example.com', '北京', 'CN', 'zh_cn', '中文描述：数据库备份测试', 1700000300, 1700000300),
  ('manual', 1, 1, 'tanaka', '', '太郎', '田中', 'tanaka@example.com', '東京', 'JP', 'ja', 'こんにちは、ムードル！', 1700000400, 1700000400);

INSERT INTO mdl_user (auth, confirmed, mnethostid, username, firstname, lastname, email, city, country, lang, description, timecreated, timemodified)
WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 300)
SELECT 'manual', 1, 1, CONCAT('student', n),
       ELT(1 + n % 5, 'Ana', 'Iñaki', 'Søren', 'Mei 美', 'Ömer'),
       ELT(1 + n % 4, 'García', 'Müller', 'Ñúñez 🙂', '王'),
       CONCAT('student', n, '@example.com'), 'Medellín', 'CO', 'es',
       CONCAT('Estudiante nº ', n, ' — ', REPEAT('á', n % 7)),
       1700000000 + n * 60, 1700000000 + n * 60
FROM seq;

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
  timecreated BIGINT(10) NOT NULL DEFAULT 0,
  timemodified BIGINT(10) NOT NULL DEFAULT 0,
  PRIMARY KEY (id),
  KEY mdl_cour_cat_ix (category),
  KEY mdl_cour_sho_ix (shortname(191))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='Central course table';

INSERT INTO mdl_course (category, sortorder, fullname, shortname, summary, format, startdate, timecreated, timemodified) VALUES
  (0, 1, 'Campus Virtual — Demostración', 'campus', 'Página principal del sitio', 'site', 0, 1700000000, 1700000000);
INSERT INTO mdl_course (category, sortorder, fullname, shortname, idnumber, summary, startdate, timecreated, timemodified)
WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 40)
SELECT 1 + n % 3, 10000 + n,
       CONCAT(ELT(1 + n % 4, 'Matemáticas', 'Educación física 🏃', '日本語入門', 'Programación en C++'), ' ', n),
       CONCAT('C', LPAD(n, 3, '0')), CONCAT('course-', n),
       CONCAT('<p>Resumen del curso nº ', n, ': «ñandú», 😀, 中文</p>'),
       1700000000 + n * 86400, 1700000000, 1700000000
FROM seq;

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
  KEY mdl_logsstanlog_useconconcrue_ix (userid, contextlevel, contextinstanceid, crud, edulevel, timecreated)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci ROW_FORMAT=DYNAMIC COMMENT='Standard log table';

INSERT INTO mdl_logstore_standard_log (eventname, component, action, target, objecttable, objectid, crud, edulevel,
  contextid, contextlevel, contextinstanceid, userid, courseid, anonymous, other, timecreated, origin, ip)
WITH RECURSIVE seq (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < 5000)
SELECT ELT(1 + n % 3, '\\core\\event\\course_viewed', '\\core\\event\\user_loggedin', '\\mod_forum\\event\\post_created'),
       ELT(1 + n % 3, 'core', 'core', 'mod_forum'),
       ELT(1 + n % 3, 'viewed', 'loggedin', 'created'),
       ELT(1 + n % 3, 'course', 'user', 'post'),
       ELT(1 + n % 3, NULL, 'user', 'forum_posts'),
       n % 500, ELT(1 + n % 3, 'r', 'r', 'c'), n % 3,
       10 + n % 41, 50, 2 + n % 40, 3 + n % 300, 2 + n % 40, 0,
       CONCAT('{"username":"student', n % 300, '","mensaje":"¡Hola ñandú! 😀 日本"}'),
       1700000000 + n * 37, 'web', CONCAT('10.0.', n % 256, '.', n % 251)
FROM seq;

ANALYZE TABLE mdl_config, mdl_config_plugins, mdl_user, mdl_course, mdl_logstore_standard_log;
SQL
}

# load_files gives every blob fill_moodledata put in filedir its mdl_files
# row, as Moodle would (trashdir's blobs are the files it no longer refers
# to), and each file area of the first files its directory row.
load_files() {
  local name=$1 listing size hash i=0 n ctx comp area fname mime ts
  listing=$(docker exec -e "D=$DATAROOT" "$name-app" sh -c 'cd "$D" && find filedir -type f -printf "%s %f\n" | sort -k2')
  [[ -n $listing ]] || die "no blobs in $name-app:$DATAROOT/filedir"
  local -a rows=()
  while read -r size hash; do
    [[ $hash =~ ^[0-9a-f]{40}$ ]] || die "filedir holds a blob named '$hash', not a SHA-1"
    ctx=$((100 + i % 40)) ts=$((1700000000 + i * 3600))
    case $((i % 5)) in
    0) comp=mod_resource area=content fname="documento-$i.pdf" mime=application/pdf ;;
    1) comp=mod_forum area=attachment fname="adjunto $i.jpg" mime=image/jpeg ;;
    2) comp=user area=private fname="apuntes-ñandú-$i.txt" mime=text/plain ;;
    3) comp=mod_assign area=submission_files fname="entrega_$i.docx" mime=application/vnd.openxmlformats-officedocument.wordprocessingml.document ;;
    4) comp=course area=overviewfiles fname="portada-$i.png" mime=image/png ;;
    esac
    # Moodle's pathnamehash: SHA-1 of /contextid/component/filearea/itemid/filepath/filename.
    if ((i < 5)); then
      rows+=("('da39a3ee5e6b4b0d3255bfef95601890afd80709', SHA1('/$ctx/$comp/$area/$i/.'), $ctx, '$comp', '$area', $i, '/', '.', 2, 0, NULL, $ts, $ts)")
    fi
    rows+=("('$hash', SHA1('/$ctx/$comp/$area/$i/$fname'), $ctx, '$comp', '$area', $i, '/', '$fname', 2, $size, '$mime', $ts, $ts)")
    i=$((i + 1))
  done <<<"$listing"
  n=${#rows[@]}
  {
    echo "INSERT INTO mdl_files (contenthash, pathnamehash, contextid, component, filearea, itemid, filepath, filename, userid, filesize, mimetype, timecreated, timemodified) VALUES"
    local j
    for ((j = 0; j < n; j++)); do
      if ((j + 1 < n)); then echo "  ${rows[j]},"; else echo "  ${rows[j]};"; fi
    done
    echo "ANALYZE TABLE mdl_files;"
  } | docker exec -i "$name-db" mariadb -uroot --default-character-set=utf8mb4 "$DB_NAME" >/dev/null
  log "mdl_files: $i files and 5 directories"
}

start_app() {
  local name=$1
  docker volume create --label "$STACK_LABEL=$name" "$name-moodledata" >/dev/null
  docker run -d --name "$name-app" --hostname "$name-app" \
    --label "$STACK_LABEL=$name" \
    -v /usr:/usr:ro -v /etc:/etc:ro -v "$name-moodledata:$DATAROOT" \
    "$IMAGE" sleep infinity >/dev/null
}

fill_moodledata() {
  local name=$1
  # Runs inside the app container (host /usr gives sh, head, sha1sum, chown...).
  docker exec -i -e "D=$DATAROOT" "$name-app" sh -s <<'SH'
set -eu
cd "$D"
umask 027
mkdir -p filedir trashdir lang/en lang/es muc cache/cachestore_file localcache/mustache temp/backup sessions

# put FILE DIR: store FILE content-addressed as DIR/ab/cd/<sha1> (Moodle file pool layout)
put() {
  h=$(sha1sum "$1" | cut -c1-40)
  a=$(printf %s "$h" | cut -c1-2)
  b=$(printf %s "$h" | cut -c3-4)
  mkdir -p "$2/$a/$b"
  mv "$1" "$2/$a/$b/$h"
}

i=0
while [ $i -lt 200 ]; do            # already-compressed-looking content: random bytes
  head -c $(( (i * 7919) % 65536 + 1 )) /dev/urandom >/tmp/f
  put /tmp/f filedir
  i=$((i + 1))
done
i=0
while [ $i -lt 120 ]; do            # compressible text
  n=0
  while [ $n -lt $(( i % 40 + 1 )) ]; do
    echo "Archivo $i línea $n: Lorem ipsum dolor sit amet, ñandú, 日本語, 😀"
    n=$((n + 1))
  done >/tmp/f
  put /tmp/f filedir
  i=$((i + 1))
done
for s in 1 2 3; do                  # a few larger files (1 MiB each)
  head -c 1048576 /dev/urandom >/tmp/f
  put /tmp/f filedir
done
i=0
while [ $i -lt 5 ]; do              # dereferenced files waiting in the trash
  echo "borrado $i $(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >/tmp/f
  put /tmp/f trashdir
  i=$((i + 1))
done

cat >lang/en/langconfig.php <<'PHP'
<?php
$string['thisdirection'] = 'ltr';
$string['thislanguage'] = 'English';
PHP
cat >lang/es/langconfig.php <<'PHP'
<?php
$string['parentlanguage'] = '';
$string['thisdirection'] = 'ltr';
$string['thislanguage'] = 'Español - Internacional';
PHP
cat >muc/config.php <<'PHP'
<?php defined('MOODLE_INTERNAL') || die();
 $configuration = array (
  'siteidentifier' => 'mbkdemo0123456789abcdef',
  'stores' => array (
    'redis_main' => array ('name' => 'redis_main', 'plugin' => 'redis', 'configuration' => array ('server' => 'redis:6379', 'prefix' => 'mdl_'), 'features' => 26, 'modes' => 3, 'mappingsonly' => false, 'class' => 'cachestore_redis', 'default' => false, 'lock' => 'cachelock_file_default'),
  ),
  'modemappings' => array (),
  'definitions' => array (),
  'definitionmappings' => array (),
  'locks' => array ('cachelock_file_default' => array ('name' => 'cachelock_file_default', 'type' => 'cachelock_file', 'dir' => 'filelocks', 'default' => true)),
);
PHP
echo 'deny from all' >.htaccess
echo 'cached' >cache/cachestore_file/core_string.cache
echo 'cached' >cache/core_component.php
echo '{{! template }}' >localcache/mustache/0123abcd.php
echo 'temporary' >temp/backup/tmp-123.txt
for s in a1b2c3 d4e5f6 0789ab; do echo 'USER|O:8:"stdClass":0:{}' >"sessions/sess_$s"; done
rm -f climaintenance.html /tmp/f

chown -R 33:33 "$D"
find "$D" -type d -exec chmod 0750 {} +
find "$D" -type f -exec chmod 0640 {} +
SH
}

cmd_up() {
  local name=$1 t0=$SECONDS
  check_name "$name"
  cmd_deps
  cmd_engine
  cmd_image
  cmd_down "$name"
  log "starting $name-db"
  start_db "$name"
  log "creating database $DB_NAME and sample data"
  load_db "$name"
  log "starting $name-app with volume $name-moodledata"
  start_app "$name"
  fill_moodledata "$name"
  load_files "$name"
  log "stack $name is up in $((SECONDS - t0)) s"
  cmd_env "$name"
}

main() {
  local cmd=${1:-}
  (($# > 0)) && shift
  case $cmd in
  deps) cmd_deps ;;
  engine) cmd_engine ;;
  image) cmd_engine && cmd_image ;;
  up) cmd_up "${1:-$DEFAULT_NAME}" ;;
  down) cmd_down "${1:-$DEFAULT_NAME}" ;;
  env) cmd_env "${1:-$DEFAULT_NAME}" ;;
  -h | --help | help) usage ;;
  *)
    usage >&2
    exit 2
    ;;
  esac
}

main "$@"
