-- wrk script for the "upload" workload: every request is a 1 MiB POST.
-- wrk.format() adds the Content-Length header because a body is set.
wrk.method = "POST"
wrk.body = string.rep("x", 1048576)
wrk.headers["Content-Type"] = "application/octet-stream"
