#!/usr/bin/env bash
# bench.sh - `make bench`: mbk measured against the shell way and the floor on a
# deterministic Moodle-shaped site, and the result appended to BENCHMARKS.md.
#
# Usage: scripts/bench.sh [run]     SCALE=small|medium|large ROUNDS=3 ONLY=|files|pool QUIET=1 QUIET_BUDGET=90 LEVELS=1
#                                   BENCH_NAME=mbk-bench (prefix of the dataset's container and volumes) (environment)
#        scripts/bench.sh clean [SCALE]   remove a scale's cached dataset
#
#   small   ~100 MiB of SQL, 200 MiB / 5,000 files of moodledata
#   medium  ~295 MiB of SQL, 464 MiB / 12,900 files (the issue's reference site)
#   large   ~2.1 GiB of SQL, 3 GiB / 50,000 files
#
# The dataset (container mbk-bench-SCALE-db with volume mbk-bench-SCALE-dbdata, and
# volume mbk-bench-SCALE-moodledata) is built once and reused while its recorded
# parameters match; the database container is stopped at the end. Every run is timed
# warm, ROUNDS times, the variants interleaved within each round:
#   floor-db      docker exec DB mariadb-dump ... | wc -c
#   floor-files   docker run -v VOL:/data ... sh -c 'tar cf - -C /data . | wc -c'
#   shell-db      docker exec DB mariadb-dump ... | gzip > moodle.sql.gz
#   shell-files   docker run --rm -v VOL:/data ... tar czf - -C /data . > moodledata.tar.gz
#   mbk-gzip      bin/mbk run (dump + archive + checksum), compression gzip
#   mbk-zstd      the same with zstd
#   mbk-old-gzip, mbk-old-zstd
#                 the whole backup with the defaults before #21 (compression_level 1,
#                 --hex-blob): the sizes and the restore the new defaults replace
#   mbk-db-gzip, mbk-db-zstd, mbk-files-gzip, mbk-files-zstd
#                 bin/mbk run of the dump stage alone, or the archive stage alone: the
#                 paths #3 and #4 compare with shell-db, shell-files and the floors
#   onepass-files-gzip, onepass-files-zstd
#                 benchtool onepass: the one-process way to archive the volume's
#                 directory (archive/tar into klauspost's stream encoders, no
#                 hashing), the design of the peer issue #4 quotes: for scale
#   restore-shell-db     gunzip -c moodle.sql.gz | docker exec -i DB mariadb NEWDB
#   restore-shell-files  docker run -i -v NEWVOL:/data ... tar xzf - -C /data < moodledata.tar.gz
#   restore-mbk   bin/mbk restore FILE SET --yes --target-database NEWDB --target-volume NEWVOL
#   restore-mbk-old  the same of the mbk-old-gzip set
#   drill-mbk     bin/mbk drill FILE SET --json: throwaway database container and volume,
#                 the restore, the checks (1% sample), the teardown
#   pool-first-zstd      bin/mbk run of the archive stage with filedir = "pool" into an empty
#                        root: every blob is new (bytes out: the files' bytes in the root afterwards)
#   floor-walk           find DIR -printf '%m %U %G %T@ %s %p\n' | wc -c on the volume's
#                        directory on this host, just before pool-unchanged-zstd: the bare walk
#   pool-unchanged-zstd  the same pipeline again, nothing changed (bytes out: the files' bytes the root gained)
#   pool-unchanged-engine-zstd  the same pipeline with read = "engine", nothing changed: a helper
#                        container walks the volume next to its data and only new files' content
#                        would cross the Engine (the helper's own CPU and memory are not the
#                        tree's: its CPU counts as other tenants')
#   pool-1pct-zstd       again, after 1% new files (benchtool files -add; bytes in: the new
#                        blobs' raw bytes, out: the files' bytes the root gained); then a whole archive of a
#                        copy of the new files alone, whose size is the 1% target's reference;
#                        the files are removed after
#   restore-files-tar    bin/mbk restore of the mbk-files-zstd set into a new volume
#   restore-files-pool   bin/mbk restore of the unchanged pooled set into a new volume; the
#                        two volumes' fingerprints (names, modes, owners, mtimes, sizes, link
#                        targets, content hashes) must be identical, or the run stops
# ONLY=pool runs floor-files, mbk-files-zstd and the pool's variants alone.
# ONLY=files runs the archive path's variants alone (floor-files, shell-files,
# mbk-files-*, onepass-files-*): no dump, no restore, so that #4's large volume
# can be measured over several rounds in minutes.
# Then the codecs' size/speed table (benchtool levels: every codec and level on the
# raw dump and tar, with gzip -6 and the zstd tool for reference; #21) and the
# side-channel Go benchmarks (core/sdk/bench_test.go). LEVELS=0 leaves the table out
# (it reads the raw dump and tar into memory: 5 GiB at SCALE=large). Raw results stay in
# /tmp/mbk-bench-results-SCALE-DATE/.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
readonly REPO
readonly HERE="$REPO/scripts/bench"
readonly IMAGE="mbk-base:latest"
readonly CG="mbkbench" # cgroup parent of every benchmark container: their CPU adds up there
readonly DB_USER="bench"
readonly DB_NAME="moodle"
export BENCH_DB_PASSWORD='bench-Pa$$ word;#ñ'
# mbk's mysql plugin's default flags, so that every variant dumps the same way.
# No --hex-blob since #21: the old scripts did not use it either.
readonly DUMP_FLAGS=(--single-transaction --quick --routines --triggers --events --default-character-set=utf8mb4)
readonly DATASET_VERSION=1
export PATH="$PATH:/usr/local/go/bin"

SCALE=${SCALE:-small}
ROUNDS=${ROUNDS:-3}
ONLY=${ONLY:-}
QUIET=${QUIET:-1}               # 0: do not wait for the machine to be idle before each run
QUIET_BUDGET=${QUIET_BUDGET:-90} # seconds of such waiting, at most, in a whole run
QUIET_SPENT=0
LEVELS=${LEVELS:-1}

log() { printf '[bench] %s\n' "$*" >&2; }
die() {
  printf '[bench] error: %s\n' "$*" >&2
  exit 1
}

# scale_params sets the dataset's sizes. The row counts were chosen so that the
# dump comes out at the named size (about 190 bytes of SQL per log row).
scale_params() {
  case $SCALE in
  small) USERS=3000 COURSES=120 POSTS=20000 GRADES=60000 FILEROWS=10000 LOGROWS=458000 FILES=5000 FILEBYTES=$((200 << 20)) ;;
  medium) USERS=9000 COURSES=360 POSTS=60000 GRADES=180000 FILEROWS=25800 LOGROWS=1354000 FILES=12900 FILEBYTES=$((464 << 20)) ;;
  large) USERS=63000 COURSES=2520 POSTS=420000 GRADES=1260000 FILEROWS=100000 LOGROWS=10070000 FILES=50000 FILEBYTES=$((3 << 30)) ;;
  *) die "SCALE must be small, medium or large, not '$SCALE'" ;;
  esac
  [[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "ROUNDS must be a positive number, not '$ROUNDS'"
  [[ -z $ONLY || $ONLY == files || $ONLY == pool ]] || die "ONLY must be files, pool or empty, not '$ONLY'"
  # BENCH_NAME gives a run a dataset of its own (a second checkout measuring
  # beside another must not add files to, or restore over, its dataset).
  NAME="${BENCH_NAME:-mbk-bench}-$SCALE"
  DB="$NAME-db"
  DBVOL="$NAME-dbdata"
  VOL="$NAME-moodledata"
  DB_KEY="v$DATASET_VERSION users=$USERS courses=$COURSES posts=$POSTS grades=$GRADES filerows=$FILEROWS logrows=$LOGROWS"
  FILES_KEY="v$DATASET_VERSION files=$FILES bytes=$FILEBYTES seed=1"
}

# ------------------------------------------------------------------ dataset: database
db_sql() { docker exec -i "$DB" mariadb -uroot --default-character-set=utf8mb4 "$@"; }

start_db() {
  local state
  if ! state=$(docker container inspect -f '{{.State.Running}}' "$DB" 2>/dev/null); then
    state=missing
  fi
  case $state in
  true) DB_WAS_RUNNING=1 ;;
  false) docker start "$DB" >/dev/null ;;
  missing)
    docker volume create --label io.mbk.bench="$SCALE" "$DBVOL" >/dev/null
    # A 1 GiB buffer pool, as a small Moodle server would give MariaDB; the
    # rest is MariaDB's defaults.
    docker run -d --name "$DB" --hostname "$DB" --label io.mbk.bench="$SCALE" --cgroup-parent="/$CG" \
      -v /usr:/usr:ro -v /etc:/etc:ro -v "$DBVOL:/var/lib/mysql" "$IMAGE" sh -c '
        if [ ! -d /var/lib/mysql/mysql ]; then
          mariadb-install-db --user=root --datadir=/var/lib/mysql --skip-test-db >/tmp/init.log 2>&1 ||
            { cat /tmp/init.log >&2; exit 1; }
        fi
        exec mariadbd --user=root --datadir=/var/lib/mysql --socket=/run/mysqld/mysqld.sock \
          --pid-file=/run/mysqld/mysqld.pid --bind-address=127.0.0.1 \
          --innodb-buffer-pool-size=1G --innodb-log-file-size=256M' >/dev/null
    ;;
  esac
  local i
  for ((i = 0; i < 120; i++)); do
    docker exec "$DB" mariadb -uroot -e 'select 1' >/dev/null 2>&1 && return 0
    [[ $(docker inspect -f '{{.State.Running}}' "$DB" 2>/dev/null) == true ]] || {
      docker logs --tail 30 "$DB" >&2 || true
      die "container $DB exited while starting MariaDB"
    }
    sleep 1
  done
  die "MariaDB in $DB not ready after 120 s"
}

build_db() {
  local have
  have=$(docker exec "$DB" mariadb -uroot -N -e "SELECT value FROM $DB_NAME.mdl_config WHERE name = 'mbk_bench_dataset'" 2>/dev/null || true)
  if [[ $have == "$DB_KEY" ]]; then
    log "database: cached ($DB_KEY)"
  else
    log "database: building $DB_KEY (once per scale)"
    local t0=$SECONDS lo hi chunk=250000
    db_sql <<<"DROP DATABASE IF EXISTS \`$DB_NAME\`; CREATE DATABASE \`$DB_NAME\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"
    {
      echo "SET @users = $USERS, @courses = $COURSES, @posts = $POSTS, @grades = $GRADES, @filerows = $FILEROWS, @logrows = $LOGROWS;"
      cat "$HERE/dataset.sql"
      for ((lo = 1; lo <= LOGROWS; lo += chunk)); do
        hi=$((lo + chunk - 1 < LOGROWS ? lo + chunk - 1 : LOGROWS))
        echo "SET @lo = $lo, @hi = $hi;"
        cat "$HERE/logchunk.sql"
      done
      echo "ANALYZE TABLE mdl_config, mdl_user, mdl_course, mdl_files, mdl_forum_posts, mdl_grade_grades, mdl_logstore_standard_log;"
      # Written last: a database without it is rebuilt.
      echo "INSERT INTO mdl_config (name, value) VALUES ('mbk_bench_dataset', '$DB_KEY');"
    } | db_sql "$DB_NAME" >/dev/null
    log "database: built in $((SECONDS - t0)) s"
  fi
  # The pipeline's user: rights on the site and on the restore targets.
  local pw=${BENCH_DB_PASSWORD//\'/\'\'}
  db_sql <<SQL
CREATE OR REPLACE USER '$DB_USER'@'localhost' IDENTIFIED BY '$pw';
GRANT ALL PRIVILEGES ON \`$DB_NAME\`.* TO '$DB_USER'@'localhost';
GRANT ALL PRIVILEGES ON \`mbkr\\_%\`.* TO '$DB_USER'@'localhost';
SQL
}

# ------------------------------------------------------------------ dataset: files
# in_volume MOUNT [docker run options...] -- CMD...: run CMD in a throwaway container
# of the base image with MOUNT (VOL:/data[:ro]), in the benchmark's cgroup.
in_volume() {
  local mount=$1 opts=()
  shift
  while [[ $1 != -- ]]; do opts+=("$1") && shift; done
  shift
  docker run --rm "${opts[@]}" --cgroup-parent="/$CG" -v /usr:/usr:ro -v /etc:/etc:ro -v "$mount" "$IMAGE" "$@"
}

# in_volume_line MOUNT [options]: the same `docker run` as a line for bash -c.
in_volume_line() {
  local mount=$1
  shift
  printf 'docker run --rm %s --cgroup-parent=/%s -v /usr:/usr:ro -v /etc:/etc:ro -v %s %s' "$*" "$CG" "$mount" "$IMAGE"
}

build_files() {
  local have
  have=$(in_volume "$VOL:/data:ro" -- cat /data/.mbk-bench-dataset 2>/dev/null || true)
  if [[ $have == "$FILES_KEY" ]]; then
    log "moodledata: cached ($FILES_KEY)"
    return 0
  fi
  log "moodledata: building $FILES_KEY (once per scale)"
  docker volume rm -f "$VOL" >/dev/null 2>&1 || die "cannot remove stale volume $VOL (in use?)"
  docker volume create --label io.mbk.bench="$SCALE" "$VOL" >/dev/null
  in_volume "$VOL:/data" -v "$WORK/tool:/tool:ro" -- /tool/benchtool files -dir /data -files "$FILES" -bytes "$FILEBYTES" -seed 1 -marker "$FILES_KEY" >&2
}

# ------------------------------------------------------------------ runs
measure() { # measure LABEL ROUND CMD...
  local label=$1 round=$2
  shift 2
  # Let other work on the machine (builds, tests) calm down first, within a
  # budget for the whole run: a busy machine must not stretch it without end.
  local t=$SECONDS
  if ((QUIET && QUIET_SPENT < QUIET_BUDGET)); then
    "$WORK/tool/benchtool" quiet -max 0.25 -seconds 2 -timeout "$((QUIET_BUDGET - QUIET_SPENT < 20 ? QUIET_BUDGET - QUIET_SPENT : 20))s"
  fi
  QUIET_SPENT=$((QUIET_SPENT + SECONDS - t))
  "$WORK/tool/benchtool" measure -o "$RES/$label.r$round.json" -label "$label" -round "$round" -cgroup "$CG" -- "$@"
}

annotate() { "$WORK/tool/benchtool" annotate "$@"; }

# newest_set prints the newest set directory under a pipeline's root.
newest_set() {
  local sets=("$1"/20*)
  [[ -d ${sets[-1]} ]] || die "no set under $1"
  printf '%s' "${sets[-1]}"
}

size_of() { stat -c %s "$1"; }

# files_bytes DIR: the bytes of the files under DIR, what a run wrote there.
# A directory's own size (4 KiB on ext4 whatever it holds; the pool makes one
# per new ab/cd) is the file system's, not data, and a store has none: the
# pool's runs report it apart (-dirbytes), from du -sb.
files_bytes() { find "$1" -type f -printf '%s\n' | awk '{s += $1} END {print s + 0}'; }

floor_db() {
  measure floor-db "$1" bash -c "MYSQL_PWD=\$BENCH_DB_PASSWORD docker exec -e MYSQL_PWD $DB mariadb-dump ${DUMP_FLAGS[*]} --user=$DB_USER $DB_NAME | wc -c" >"$WORK/count"
  annotate "$RES/floor-db.r$1.json" -in "$(<"$WORK/count")" -out 0
}

floor_files() {
  measure floor-files "$1" bash -c "$(in_volume_line "$VOL:/data:ro") sh -c 'tar cf - -C /data . | wc -c'" >"$WORK/count"
  annotate "$RES/floor-files.r$1.json" -in "$(<"$WORK/count")" -out 0
}

# onepass_files gzip|zstd ROUND: the one-process way (benchtool onepass), on
# the volume's directory as mbk reads it: for scale, not a target.
onepass_files() {
  local c=$1 r=$2 out="$WORK/shell/onepass.tar.$1"
  rm -f "$out"
  measure "onepass-files-$c" "$r" "$WORK/tool/benchtool" onepass -compression "$c" -out "$out" \
    -dir "$(docker volume inspect -f '{{.Mountpoint}}' "$VOL")"
  annotate "$RES/onepass-files-$c.r$r.json" -in "$RAW_FILES" -out "$(size_of "$out")"
  rm -f "$out"
}

shell_db() {
  measure shell-db "$1" bash -c "MYSQL_PWD=\$BENCH_DB_PASSWORD docker exec -e MYSQL_PWD $DB mariadb-dump ${DUMP_FLAGS[*]} --user=$DB_USER $DB_NAME | gzip > $WORK/shell/moodle.sql.gz"
  annotate "$RES/shell-db.r$1.json" -in "$RAW_DB" -out "$(size_of "$WORK/shell/moodle.sql.gz")"
}

shell_files() {
  measure shell-files "$1" bash -c "$(in_volume_line "$VOL:/data:ro") tar czf - -C /data . > $WORK/shell/moodledata.tar.gz"
  annotate "$RES/shell-files.r$1.json" -in "$RAW_FILES" -out "$(size_of "$WORK/shell/moodledata.tar.gz")"
}

mbk_run() { # mbk_run [db-|files-]gzip|zstd ROUND: the whole pipeline, or one stage alone
  local v=$1 r=$2 root="$WORK/root-$1" set
  rm -rf "$root" && mkdir -p "$root"
  measure "mbk-$v" "$r" "$REPO/bin/mbk" --log-format json run "$WORK/bench-$v.hcl" \
    >/dev/null 2>"$RES/mbk-$v.r$r.log" || die "mbk run failed: see $RES/mbk-$v.r$r.log"
  set=$(newest_set "$root")
  annotate "$RES/mbk-$v.r$r.json" -manifest "$set/manifest.json"
}

restore_shell() {
  local r=$1 db="mbkr_shell_$1" vol="$NAME-rs-shell-$1"
  measure restore-shell-db "$r" bash -c "set -e
    MYSQL_PWD=\$BENCH_DB_PASSWORD docker exec -e MYSQL_PWD $DB mariadb --user=$DB_USER -e 'CREATE DATABASE $db CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci'
    gunzip -c $WORK/shell/moodle.sql.gz | MYSQL_PWD=\$BENCH_DB_PASSWORD docker exec -i -e MYSQL_PWD $DB mariadb --user=$DB_USER --default-character-set=utf8mb4 $db"
  annotate "$RES/restore-shell-db.r$r.json" -in "$(size_of "$WORK/shell/moodle.sql.gz")" -out "$RAW_DB"
  measure restore-shell-files "$r" bash -c "set -e
    docker volume create $vol >/dev/null
    $(in_volume_line "$vol:/data" -i) tar xzf - -C /data < $WORK/shell/moodledata.tar.gz"
  annotate "$RES/restore-shell-files.r$r.json" -in "$(size_of "$WORK/shell/moodledata.tar.gz")" -out "$RAW_FILES"
}

restore_mbk() { # restore_mbk ROUND [old]: the gzip set, or the old defaults' gzip set
  local r=$1 v=gzip label=restore-mbk set
  if [[ ${2:-} == old ]]; then v=old-gzip label=restore-mbk-old; fi
  set=$(newest_set "$WORK/root-$v")
  measure "$label" "$r" "$REPO/bin/mbk" --log-format json restore "$WORK/bench-$v.hcl" "$(basename "$set")" --yes \
    --target-database "mbkr_${v//-/_}_$r" --target-volume "$NAME-rs-$v-$r" \
    >/dev/null 2>"$RES/$label.r$r.log" || die "mbk restore failed: see $RES/$label.r$r.log"
  annotate "$RES/$label.r$r.json" -manifest "$set/manifest.json" -restore -mbklog "$RES/$label.r$r.log"
}

drill_mbk() {
  local r=$1 set
  set=$(newest_set "$WORK/root-gzip")
  measure drill-mbk "$r" "$REPO/bin/mbk" --log-format json drill "$WORK/bench-gzip.hcl" "$(basename "$set")" --json --no-record \
    >"$RES/drill-mbk.r$r.out" 2>"$RES/drill-mbk.r$r.log" || die "mbk drill failed: see $RES/drill-mbk.r$r.out and .log"
  annotate "$RES/drill-mbk.r$r.json" -manifest "$set/manifest.json" -restore -drill "$RES/drill-mbk.r$r.out"
}

# pool_runs ROUND: the pool's three backups, in the order they need.
pool_runs() {
  local r=$1 root="$WORK/root-pool-zstd" before before_disk wrote grew set added="$WORK/added.txt" v
  rm -rf "$root" && mkdir -p "$root"
  for v in first unchanged unchanged-engine 1pct; do
    local hcl="$WORK/bench-pool-zstd.hcl"
    [[ $v == unchanged-engine ]] && hcl="$WORK/bench-pool-engine-zstd.hcl"
    if [[ $v == 1pct ]]; then
      in_volume "$VOL:/data" -v "$WORK/tool:/tool:ro" -- /tool/benchtool files -add -dir /data \
        -files $((FILES / 100)) -bytes $((FILEBYTES / 100)) -seed $((1000 + r)) >"$added"
    fi
    [[ $v == first ]] || sleep 1 # the next set's name
    if [[ $v == unchanged ]]; then
      # The bare walk of the same tree, as mbk reads it (its directory on
      # this host, warm): what an unchanged night cannot go below.
      measure floor-walk "$r" bash -c "find \"\$(docker volume inspect -f '{{.Mountpoint}}' '$VOL')\" -printf '%m %U %G %T@ %s %p\n' | wc -c" >/dev/null
    fi
    before=$(files_bytes "$root") before_disk=$(du -sb "$root" | cut -f1)
    measure "pool-$v-zstd" "$r" "$REPO/bin/mbk" --log-format json run "$hcl" \
      >/dev/null 2>"$RES/pool-$v-zstd.r$r.log" || die "mbk run failed: see $RES/pool-$v-zstd.r$r.log"
    set=$(newest_set "$root")
    annotate "$RES/pool-$v-zstd.r$r.json" -manifest "$set/manifest.json"
    wrote=$(($(files_bytes "$root") - before)) grew=$(($(du -sb "$root" | cut -f1) - before_disk))
    if [[ $v == 1pct ]]; then
      annotate "$RES/pool-$v-zstd.r$r.json" -in "$(grep -o '"new_bytes": [0-9]*' "$set/manifest.json" | grep -o '[0-9]*$')" \
        -out "$wrote" -dirbytes $((grew - wrote))
      # What mbk's whole archive writes for the new files alone (copied
      # into a directory of their own, as the tree has them).
      local mp copy="$WORK/new-files" refroot="$WORK/root-newfiles-zstd"
      mp=$(docker volume inspect -f '{{.Mountpoint}}' "$VOL")
      rm -rf "$copy" "$refroot" && mkdir -p "$copy" "$refroot"
      (cd "$mp" && xargs -r -d '\n' cp -a --parents -t "$copy" <"$added")
      "$REPO/bin/mbk" run "$WORK/bench-newfiles-zstd.hcl" >/dev/null 2>"$RES/newfiles-zstd.r$r.log" ||
        die "mbk run of the new files failed: see $RES/newfiles-zstd.r$r.log"
      annotate "$RES/pool-$v-zstd.r$r.json" -ref "$(size_of "$(newest_set "$refroot")"/moodledata_*.tar.zst)"
      rm -rf "$copy" "$refroot"
      in_volume "$VOL:/data" -i -- xargs -r -d '\n' -a /dev/stdin sh -c 'cd /data && rm -f -- "$@"' sh <"$added"
    else
      annotate "$RES/pool-$v-zstd.r$r.json" -in "$RAW_FILES" -out "$wrote" -dirbytes $((grew - wrote))
    fi
  done
}

# fingerprint VOLUME: every entry's name, mode, owner, mtime, size and link
# target, and every file's content hash, hashed.
fingerprint() {
  in_volume "$1:/data:ro" -- sh -c 'cd /data && find . -printf "%p %m %U %G %T@ %s %l\n" | sort | sha256sum &&
    find . -type f -print0 | sort -z | xargs -0 -r sha256sum | sha256sum'
}

# restore_pool ROUND: the files restored from the whole tar and from the
# pool (the unchanged set: the same tree), in alternating order, then
# compared.
restore_pool() {
  local r=$1 tarset poolset sets v
  tarset=$(newest_set "$WORK/root-files-zstd")
  sets=("$WORK/root-pool-zstd"/20*)
  poolset=${sets[1]}
  for v in $( (($r % 2)) && echo "tar pool" || echo "pool tar"); do
    local hcl=$WORK/bench-files-zstd.hcl set=$tarset
    [[ $v == pool ]] && hcl=$WORK/bench-pool-zstd.hcl set=$poolset
    measure "restore-files-$v" "$r" "$REPO/bin/mbk" --log-format json restore "$hcl" "$(basename "$set")" --yes --no-safety-copy \
      --target-volume "$NAME-rs-$v-$r" >/dev/null 2>"$RES/restore-files-$v.r$r.log" || die "mbk restore failed: see $RES/restore-files-$v.r$r.log"
    annotate "$RES/restore-files-$v.r$r.json" -manifest "$set/manifest.json" -restore -mbklog "$RES/restore-files-$v.r$r.log"
  done
  fingerprint "$NAME-rs-tar-$r" >"$RES/fingerprint-tar.r$r.txt"
  fingerprint "$NAME-rs-pool-$r" >"$RES/fingerprint-pool.r$r.txt"
  cmp -s "$RES/fingerprint-tar.r$r.txt" "$RES/fingerprint-pool.r$r.txt" ||
    die "the restores from the pool and from the tar differ: see $RES/fingerprint-*.r$r.txt"
  echo "fingerprint_identical_r$r=yes" >>"$RES/machine.txt"
}

# restores ROUND: both restores, the first one alternating between rounds,
# then a drill of the same set.
restores() {
  if (($1 % 2)); then
    log "round $1/$ROUNDS: restore (shell, then mbk, then mbk of the old defaults' set)"
    restore_shell "$1"
    restore_mbk "$1"
    restore_mbk "$1" old
  else
    log "round $1/$ROUNDS: restore (mbk of the old defaults' set, then mbk, then shell)"
    restore_mbk "$1" old
    restore_mbk "$1"
    restore_shell "$1"
  fi
  log "round $1/$ROUNDS: drill"
  drill_mbk "$1"
}

# Removes what a round (or a killed run) left: restored databases and volumes.
clean_targets() {
  local dbs v
  dbs=$(docker exec "$DB" mariadb -uroot -N -e "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE 'mbkr\\_%'" 2>/dev/null || true)
  for v in $dbs; do db_sql <<<"DROP DATABASE \`$v\`;"; done
  for v in $(docker volume ls -q --filter "name=^$NAME-rs-"); do docker volume rm -f "$v" >/dev/null; done
  rm -rf "$WORK"/root-* "$WORK/shell"
  mkdir -p "$WORK/shell"
}

write_pipelines() {
  local comp dump archive old
  for comp in gzip zstd; do
    dump=$(dump_stage "$comp" "")
    archive=$(archive_stage "$comp" "")
    # The whole backup, then each path alone (no checksum stage: the
    # shell way and the floor do not re-read what they wrote).
    bench_pipeline "$comp" "the whole backup" "$dump"$'\n'"$archive"$'\n  stage "checksum" "sha256" {}'
    bench_pipeline "db-$comp" "the dump stage alone" "$dump"
    bench_pipeline "files-$comp" "the archive stage alone" "$archive"
    # The whole backup as mbk made it before #21: the fastest level, and
    # binary columns in hex.
    old="    compression_level = 1"
    bench_pipeline "old-$comp" "the whole backup with the defaults before #21" \
      "$(dump_stage "$comp" "$old"$'\n    extra_args = ["--hex-blob"]')"$'\n'"$(archive_stage "$comp" "$old")"$'\n  stage "checksum" "sha256" {}'
  done
  bench_pipeline pool-zstd "the archive stage alone, filedir in the pool" "$(archive_stage zstd '    filedir     = "pool"')"
  # The same pipeline (its root, its pool) read through the Engine.
  sed 's/^    filedir     = "pool"$/&\n    read        = "engine"/' "$WORK/bench-pool-zstd.hcl" >"$WORK/bench-pool-engine-zstd.hcl"
  # The 1% target's reference: a whole archive of the new files alone.
  bench_pipeline newfiles-zstd "a whole archive of a copy of pool-1pct's new files" \
    "$(archive_stage zstd "" "path        = \"$WORK/new-files\"")"
}

dump_stage() { # dump_stage COMPRESSION EXTRA-LINES
  cat <<HCL
  stage "dump" "mysql" {
    container   = "$DB"
    database    = "$DB_NAME"
    user        = "$DB_USER"
    password    = env("BENCH_DB_PASSWORD")
    compression = "$1"
$2
  }
HCL
}

archive_stage() { # archive_stage COMPRESSION EXTRA-LINES [SOURCE-LINE]
  cat <<HCL
  stage "archive" "volume" {
    ${3:-volume      = \"$VOL\"}
    exclude     = []
    compression = "$1"
$2
  }
HCL
}

# levels: the codecs' size/speed table over the raw dump and tar, written to
# files first (the table times the compressors, not the sources).
levels() {
  local inputs=() d="$WORK/levels"
  mkdir -p "$d"
  if [[ $ONLY != files ]]; then
    MYSQL_PWD=$BENCH_DB_PASSWORD docker exec -e MYSQL_PWD "$DB" mariadb-dump "${DUMP_FLAGS[@]}" --user="$DB_USER" "$DB_NAME" >"$d/dump.sql"
    inputs+=("dump=$d/dump.sql")
  fi
  in_volume "$VOL:/data:ro" -- tar cf - -C /data . >"$d/files.tar"
  inputs+=("tar=$d/files.tar")
  "$WORK/tool/benchtool" levels -o "$RES/levels.json" "${inputs[@]}" || log "warning: benchtool levels failed"
  rm -rf "$d"
}

bench_pipeline() { # bench_pipeline VARIANT WHAT STAGES
  cat >"$WORK/bench-$1.hcl" <<HCL
# Written by scripts/bench.sh: the benchmark's site, $2, $1.
pipeline "bench-$1" {
  root     = "$WORK/root-$1"
  timezone = "UTC"
  timeout  = "4h"

$3
}
HCL
}

describe_machine() {
  local f="$RES/machine.txt"
  {
    echo "date=$(date -u '+%Y-%m-%d %H:%M UTC')"
    echo "host_cpus=$(nproc)"
    echo "cpu_model=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
    echo "ram=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
    echo "kernel=$(uname -r)"
    # shellcheck disable=SC1091
    echo "os=$(. /etc/os-release && echo "$PRETTY_NAME")"
    echo "docker=$(docker version --format '{{.Server.Version}}' 2>/dev/null) ($(docker info --format '{{.Driver}}, cgroup {{.CgroupVersion}} {{.CgroupDriver}}' 2>/dev/null))"
    echo "mariadb=$(docker exec "$DB" mariadb -uroot -N -e 'SELECT VERSION()') (buffer pool 1 GiB, in container $DB)"
    echo "tools=$(gzip --version | head -n 1), $(tar --version | head -n 1) (host's, bound into the containers)"
    echo "go=$(go version | cut -d' ' -f3-)"
    echo "mbk=$(git -C "$REPO" describe --always --dirty 2>/dev/null || echo unknown)"
    echo "load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)"
  } >"$f"
}

describe_dataset() {
  local rows
  rows=$(docker exec "$DB" mariadb -uroot -N -e "SELECT CONCAT(table_name, ':', table_rows) FROM information_schema.tables WHERE table_schema = '$DB_NAME' ORDER BY data_length DESC" 2>/dev/null | tr '\n' ' ' || true)
  {
    echo "sql_bytes=$RAW_DB"
    echo "tables=$rows(InnoDB estimates)"
    echo "log_rows=$LOGROWS"
    echo "files=$FILES in filedir, +20 in trashdir, +5 others"
    echo "file_bytes=$FILEBYTES in filedir (half random bytes: already compressed)"
    echo "tar_bytes=$RAW_FILES"
  } >"$RES/dataset.txt"
}

cmd_run() {
  scale_params
  command -v docker >/dev/null || die "docker not found (run: bash scripts/stack.sh deps)"
  docker info >/dev/null 2>&1 || die "the Docker engine does not answer (run: bash scripts/stack.sh engine)"
  docker image inspect "$IMAGE" >/dev/null 2>&1 || die "image $IMAGE missing (run: bash scripts/stack.sh image)"
  [[ -x $REPO/bin/mbk && -x $REPO/bin/mbk-plugin-mysql && -x $REPO/bin/mbk-plugin-volume ]] || die "bin/mbk and plugins missing (run: make build)"
  local t0=$SECONDS
  WORK=$(mktemp -d /tmp/mbk-bench.XXXXXX)
  RES="/tmp/mbk-bench-results-$SCALE-$(date -u +%Y%m%d-%H%M%S)"
  mkdir -p "$RES" "$WORK/tool" "$WORK/shell"
  # The database container is stopped only when this run started it.
  DB_WAS_RUNNING=0
  trap 'clean_targets >/dev/null 2>&1 || true; rm -rf "$WORK"; ((DB_WAS_RUNNING)) || docker stop "$DB" >/dev/null 2>&1 || true' EXIT
  export WORK
  log "SCALE=$SCALE ROUNDS=$ROUNDS; results in $RES"

  # Static, so that it also runs inside the tiny image.
  (cd "$REPO" && CGO_ENABLED=0 go build -o "$WORK/tool/benchtool" ./scripts/bench/benchtool)
  # ONLY=pool measures the files alone: no database.
  if [[ $ONLY == pool ]]; then DB_WAS_RUNNING=1; else
    start_db
    build_db
  fi
  build_files
  clean_targets
  write_pipelines
  describe_machine

  log "warming the caches (untimed floor and mbk runs)"
  local warm=zstd
  RAW_DB=0
  if [[ -n $ONLY ]]; then
    warm=files-zstd
  else
    MYSQL_PWD=$BENCH_DB_PASSWORD docker exec -e MYSQL_PWD "$DB" mariadb-dump "${DUMP_FLAGS[@]}" --user="$DB_USER" "$DB_NAME" | wc -c >"$WORK/count"
    RAW_DB=$(<"$WORK/count")
  fi
  RAW_FILES=$(in_volume "$VOL:/data:ro" -- sh -c 'tar cf - -C /data . | wc -c')
  "$REPO/bin/mbk" --log-format json run "$WORK/bench-$warm.hcl" >/dev/null 2>"$RES/warmup.log" || die "mbk run failed: see $RES/warmup.log"
  clean_targets
  describe_dataset
  log "dump $((RAW_DB >> 20)) MiB, tar $((RAW_FILES >> 20)) MiB"

  local r i k backups=(floor_db floor_files shell_db shell_files "mbk_run gzip" "mbk_run zstd"
    "mbk_run db-gzip" "mbk_run db-zstd" "mbk_run files-gzip" "mbk_run files-zstd" "mbk_run old-gzip" "mbk_run old-zstd"
    "onepass_files gzip" "onepass_files zstd")
  if [[ $ONLY == files ]]; then
    backups=(floor_files shell_files "mbk_run files-gzip" "mbk_run files-zstd" "onepass_files gzip" "onepass_files zstd")
  elif [[ $ONLY == pool ]]; then
    backups=(floor_files "mbk_run files-zstd")
  fi
  for ((r = 1; r <= ROUNDS; r++)); do
    # Rotate the order every round, so no variant always runs first.
    for ((i = 0; i < ${#backups[@]}; i++)); do
      k=$(((i + r - 1) % ${#backups[@]}))
      log "round $r/$ROUNDS: ${backups[k]}"
      ${backups[k]} "$r"
    done
    # The pool's runs come last: their 1% step leaves the tree changed
    # (the new files are deleted, but their directories and the times of
    # their parents stay), and restore_pool compares this round's whole
    # archive with the pool's unchanged set, both made before it. (With
    # the pool in the rotation, ONLY=pool's third round made the whole
    # archive after that step, and the fingerprints differed.)
    if [[ $ONLY != files ]]; then
      log "round $r/$ROUNDS: pool_runs"
      pool_runs "$r"
    fi
    [[ -n $ONLY ]] || restores "$r"
    [[ $ONLY == files ]] || restore_pool "$r"
    clean_targets
  done
  echo "load_at_end=$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RES/machine.txt"

  if ((LEVELS)) && [[ $ONLY != pool ]]; then # the pool's variants need no codec table
    log "the codecs' size/speed table (benchtool levels)"
    levels
  fi

  log "side-channel Go benchmarks (core/sdk/bench_test.go)"
  # The test binary is run directly: go test would mix go-plugin's debug log
  # (stderr) into the benchmark lines.
  if (cd "$REPO" && go test -c -o "$WORK/sdk.test" ./core/sdk/); then
    "$WORK/sdk.test" -test.run '^$' -test.bench 'SideChannel|InProcess|UnixSocket' -test.count 1 \
      >"$RES/gobench.txt" 2>"$RES/gobench.log" || log "warning: the Go benchmarks failed; see $RES/gobench.txt"
  else
    log "warning: cannot build the core/sdk test binary"
  fi

  "$WORK/tool/benchtool" report -dir "$RES" -md "$REPO/BENCHMARKS.md" -scale "$SCALE${ONLY:+, ONLY=$ONLY}" -rounds "$ROUNDS" \
    -command "make bench SCALE=$SCALE ROUNDS=$ROUNDS${ONLY:+ ONLY=$ONLY}"
  log "done in $((SECONDS - t0)) s; raw results in $RES; section appended to BENCHMARKS.md"
}

cmd_clean() {
  SCALE=${1:-$SCALE}
  scale_params
  docker rm -f -v "$DB" >/dev/null 2>&1 || true
  docker volume rm -f "$DBVOL" "$VOL" >/dev/null 2>&1 || true
  for v in $(docker volume ls -q --filter "name=^$NAME-rs-"); do docker volume rm -f "$v" >/dev/null; done
  log "removed the $SCALE dataset"
}

case ${1:-run} in
run) cmd_run ;;
clean) cmd_clean "${2:-}" ;;
-h | --help | help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0" ;;
*) die "unknown command '$1' (run, clean)" ;;
esac
