-- The job step a log line belongs to (its `job_steps.seq`), when it came
-- while a step ran: a pipeline's CI step logs, a deploy's build output.
ALTER TABLE job_logs ADD COLUMN step INTEGER;
