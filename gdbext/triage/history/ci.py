# gdbext/triage/history/ci.py - which CI system runs us, and the commit, branch and job
# URL it names in its environment variables (a data table per provider).
"""The CI context of a triage run, read from the environment.

Each provider is a row of :data:`PROVIDERS`: the variable that says the job
runs there, and the variables (or templates of variables) for the commit,
branch, job name and job URL.  Values are taken as text, never run or
parsed further; a missing variable gives None.
"""
from __future__ import annotations

import enum
import os
import string
from dataclasses import asdict, dataclass
from typing import Dict, Mapping, Optional, Tuple

__all__ = ["CiProvider", "CiContext", "PROVIDERS", "detect_ci", "MAX_VALUE"]

#: The longest value kept from one variable.
MAX_VALUE = 500


class CiProvider(enum.Enum):
    """The CI systems :func:`detect_ci` knows."""

    GITHUB_ACTIONS = "github-actions"
    GITLAB_CI = "gitlab-ci"
    JENKINS = "jenkins"
    CIRCLECI = "circleci"
    BUILDKITE = "buildkite"
    AZURE_PIPELINES = "azure-pipelines"
    TRAVIS = "travis"
    BITBUCKET = "bitbucket-pipelines"
    DRONE = "drone"
    GENERIC = "ci"


@dataclass(frozen=True)
class _Row:
    marker: str  #: set when the job runs on this provider
    commit: Tuple[str, ...]  #: the first set variable wins
    branch: Tuple[str, ...]
    job: Tuple[str, ...]
    url: str  #: a string.Template over the environment; empty when a variable is missing


#: The providers, most specific first (GENERIC last: many set CI=true).
PROVIDERS: Dict[CiProvider, _Row] = {
    CiProvider.GITHUB_ACTIONS: _Row(
        "GITHUB_ACTIONS", ("GITHUB_SHA",), ("GITHUB_HEAD_REF", "GITHUB_REF_NAME"), ("GITHUB_JOB", "GITHUB_WORKFLOW"),
        "${GITHUB_SERVER_URL}/${GITHUB_REPOSITORY}/actions/runs/${GITHUB_RUN_ID}"),
    CiProvider.GITLAB_CI: _Row(
        "GITLAB_CI", ("CI_COMMIT_SHA",), ("CI_COMMIT_REF_NAME", "CI_COMMIT_BRANCH"), ("CI_JOB_NAME",), "${CI_JOB_URL}"),
    CiProvider.JENKINS: _Row(
        "JENKINS_URL", ("GIT_COMMIT",), ("BRANCH_NAME", "GIT_BRANCH"), ("JOB_NAME",), "${BUILD_URL}"),
    CiProvider.CIRCLECI: _Row(
        "CIRCLECI", ("CIRCLE_SHA1",), ("CIRCLE_BRANCH",), ("CIRCLE_JOB",), "${CIRCLE_BUILD_URL}"),
    CiProvider.BUILDKITE: _Row(
        "BUILDKITE", ("BUILDKITE_COMMIT",), ("BUILDKITE_BRANCH",), ("BUILDKITE_LABEL",),
        "${BUILDKITE_BUILD_URL}#${BUILDKITE_JOB_ID}"),
    CiProvider.AZURE_PIPELINES: _Row(
        "TF_BUILD", ("BUILD_SOURCEVERSION",), ("BUILD_SOURCEBRANCHNAME",), ("SYSTEM_JOBDISPLAYNAME",),
        "${SYSTEM_COLLECTIONURI}${SYSTEM_TEAMPROJECT}/_build/results?buildId=${BUILD_BUILDID}"),
    CiProvider.TRAVIS: _Row(
        "TRAVIS", ("TRAVIS_COMMIT",), ("TRAVIS_BRANCH",), ("TRAVIS_JOB_NAME",), "${TRAVIS_JOB_WEB_URL}"),
    CiProvider.BITBUCKET: _Row(
        "BITBUCKET_BUILD_NUMBER", ("BITBUCKET_COMMIT",), ("BITBUCKET_BRANCH",), ("BITBUCKET_STEP_UUID",),
        "https://bitbucket.org/${BITBUCKET_REPO_FULL_NAME}/pipelines/results/${BITBUCKET_BUILD_NUMBER}"),
    CiProvider.DRONE: _Row(
        "DRONE", ("DRONE_COMMIT_SHA",), ("DRONE_BRANCH",), ("DRONE_STEP_NAME",), "${DRONE_BUILD_LINK}"),
    CiProvider.GENERIC: _Row("CI", ("CI_COMMIT_SHA", "GIT_COMMIT"), ("CI_BRANCH", "GIT_BRANCH"), ("CI_JOB_NAME",), ""),
}


@dataclass(frozen=True)
class CiContext:
    """Where a triage run happened; every field may be None (not in CI, or not said)."""

    provider: Optional[str] = None
    commit: Optional[str] = None
    branch: Optional[str] = None
    job: Optional[str] = None
    url: Optional[str] = None

    def to_dict(self) -> Dict[str, Optional[str]]:
        return asdict(self)


def _clip(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    return value[:MAX_VALUE]


def _first(env: Mapping[str, str], names: Tuple[str, ...]) -> Optional[str]:
    for name in names:
        if env.get(name):
            return _clip(env[name])
    return None


def _url(env: Mapping[str, str], template: str) -> Optional[str]:
    if not template:
        return None
    names = [m.group("braced") for m in string.Template.pattern.finditer(template) if m.group("braced")]
    if not all(env.get(n) for n in names):
        return None
    return _clip(string.Template(template).substitute({n: env[n] for n in names}))


def detect_ci(env: Optional[Mapping[str, str]] = None) -> CiContext:
    """The CI context the environment describes (``os.environ`` by default); empty outside CI."""
    env = os.environ if env is None else env
    for provider, row in PROVIDERS.items():
        marker = env.get(row.marker, "")
        if marker and marker.lower() not in ("0", "false"):
            return CiContext(provider.value, _first(env, row.commit), _first(env, row.branch), _first(env, row.job),
                             _url(env, row.url))
    return CiContext()
