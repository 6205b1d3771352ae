"""The Jobs API client: submit entrypoints to a cluster and watch them (Ray's ``ray.job_submission``)."""

from solray.job_submission.models import (
    DriverInfo,
    JobDetails,
    JobErrorType,
    JobInfo,
    JobStatus,
    JobType,
)
from solray.job_submission.sdk import JobSubmissionClient

__all__ = [
    "DriverInfo",
    "JobDetails",
    "JobErrorType",
    "JobInfo",
    "JobStatus",
    "JobSubmissionClient",
    "JobType",
]
