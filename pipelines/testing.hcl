# The testing Moodle site: what `backup.sh testing` did, daily at 02:00.
# Settings come from the old system's .env, kept at /etc/mbk/moodle.env
# (see moodle.env.example); the shell environment wins over the file.
env_file = "/etc/mbk/moodle.env"

variable "retention_days" {
  type        = number
  default     = tonumber(env("BACKUP_RETENTION_DAYS", "7"))
  description = "The old BACKUP_RETENTION_DAYS."
}

variable "email_to" {
  type    = list(string)
  default = split(",", env("BACKUP_EMAIL_TO", "admin@example.com"))
}

pipeline "testing" {
  root     = "/opt/docker-project/backups/testing"
  schedule = "0 2 * * *"
  timezone = "Local"
  # language = "es"  # the e-mails in Spanish (default "en")
  timeout  = "2h"

  stage "dump" "mysql" {
    container   = "moodle-test-db"
    database    = "moodle_test"
    user        = "moodle"
    password    = env("MYSQL_PASSWORD")
    compression = "gzip"
  }

  stage "archive" "volume" {
    volume  = "moodle-test_moodledata"
    exclude = ["cache", "localcache", "temp", "sessions", "climaintenance.html"]
  }

  stage "checksum" "sha256" {}

  stage "retain" "policy" {
    keep_days = var.retention_days
    keep_last = 3
  }

  stage "notify" "smtp" {
    on       = ["success", "failure", "warning"]
    host     = env("SMTP_SERVER", "smtp.gmail.com")
    port     = tonumber(env("SMTP_PORT", "465"))
    tls      = env("SMTP_PORT", "465") == "465" ? "implicit" : "starttls"
    username = env("SMTP_USER")
    password = env("SMTP_PASSWORD")
    from     = "${env("SMTP_FROM_NAME", "Moodle Backup System")} <${env("SMTP_USER")}>"
    to       = var.email_to
  }
}
