-- One chunk of the standard log, rows @lo..@hi (bench.sh repeats it so that
-- no single transaction grows with the scale). The event kind, user and
-- course come from an MD5 of the row number: varied, but reproducible.
INSERT INTO mdl_logstore_standard_log (eventname, component, action, target, objecttable, objectid, crud, edulevel,
  contextid, contextlevel, contextinstanceid, userid, courseid, relateduserid, anonymous, other, timecreated, origin, ip)
SELECT ELT(1 + e, '\\core\\event\\course_viewed', '\\mod_page\\event\\course_module_viewed', '\\core\\event\\user_loggedin',
               '\\mod_quiz\\event\\attempt_submitted', '\\mod_forum\\event\\discussion_viewed', '\\core\\event\\dashboard_viewed',
               '\\mod_assign\\event\\submission_status_viewed', '\\mod_resource\\event\\course_module_viewed',
               '\\core\\event\\user_graded', '\\mod_forum\\event\\post_created'),
       ELT(1 + e, 'core', 'mod_page', 'core', 'mod_quiz', 'mod_forum', 'core', 'mod_assign', 'mod_resource', 'core', 'mod_forum'),
       ELT(1 + e, 'viewed', 'viewed', 'loggedin', 'submitted', 'viewed', 'viewed', 'viewed', 'viewed', 'graded', 'created'),
       ELT(1 + e, 'course', 'course_module', 'user', 'attempt', 'discussion', 'dashboard', 'submission_status', 'course_module', 'user', 'post'),
       ELT(1 + e, NULL, 'page', 'user', 'quiz_attempts', 'forum_discussions', NULL, 'assign', 'resource', 'grade_grades', 'forum_posts'),
       IF(e IN (0, 5), NULL, IF(e = 2, u, 1 + (h DIV 1000) % 250000)),
       ELT(1 + e, 'r', 'r', 'r', 'u', 'r', 'r', 'r', 'r', 'u', 'c'),
       ELT(1 + e, 2, 2, 0, 2, 2, 0, 2, 2, 2, 2),
       IF(e = 2, 1, IF(e = 5, 5 + u, 100 + (h DIV 7) % 60000)),
       ELT(1 + e, 50, 70, 10, 70, 70, 30, 70, 70, 50, 70),
       IF(e = 2, 0, IF(e = 5, u, (h DIV 7) % 60000)),
       u, IF(e IN (2, 5), 0, c), IF(e = 8, 1 + (h DIV 13) % @users, NULL), 0,
       CASE e
         WHEN 2 THEN CONCAT('{"username":"user', u, '","extrauserinfo":[]}')
         WHEN 3 THEN CONCAT('{"submitterid":', u, ',"quizid":', (h DIV 100) % 3000, '}')
         WHEN 8 THEN CONCAT('{"itemid":', (h DIV 100) % 400, ',"overridden":false,"finalgrade":"', (h % 10000) / 100, '"}')
         WHEN 9 THEN CONCAT('{"discussionid":', (h DIV 100) % 40000, ',"forumid":', (h DIV 10) % 900, ',"forumtype":"general"}')
         ELSE 'null'
       END,
       1693526400 + seq * 2 + h % 2,
       ELT(1 + (h DIV 3) % 10, 'web', 'web', 'web', 'web', 'web', 'web', 'web', 'ws', 'cli', 'restore'),
       CONCAT('10.', (u DIV 65536) % 256, '.', (u DIV 256) % 256, '.', u % 256)
FROM (SELECT seq, h, h % 10 AS e, 1 + (h DIV 10) % @users AS u, 1 + (h DIV 100000) % @courses AS c
      FROM (SELECT seq, CONV(SUBSTRING(MD5(seq), 1, 8), 16, 10) AS h
            FROM seq_1_to_1000000000 WHERE seq BETWEEN @lo AND @hi) r) s;
