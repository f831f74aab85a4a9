"""The job service: queues, job records, processors, promoter and API."""
