# The demo: back up the stack that `make demo` starts (scripts/stack.sh up):
# the MariaDB container mbk-demo-db and the moodledata volume mbk-demo-moodledata.
env_file = "demo.env"

variable "retention_days" {
  type        = number
  default     = 7
  description = "Keep sets made within this many days of the newest one."
}

locals {
  stack = "mbk-demo"
}

pipeline "demo" {
  root     = env("MBK_DEMO_ROOT", "/tmp/mbk-demo/backups")
  schedule = "*/30 * * * *"
  timezone = "UTC"
  timeout  = "30m"

  stage "dump" "mysql" {
    container   = "${local.stack}-db"
    database    = "moodle"
    user        = "moodle"
    password    = env("MYSQL_PASSWORD")
    compression = "gzip"
  }

  stage "archive" "volume" {
    volume  = "${local.stack}-moodledata"
    exclude = ["cache", "localcache", "temp", "sessions", "climaintenance.html"]
  }

  stage "checksum" "sha256" {}

  stage "retain" "policy" {
    keep_days = var.retention_days
    keep_last = 3
  }
}
