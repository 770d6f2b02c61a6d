from lastline_reporting.app import metadata
from lastline_shared.migrations import run_env

run_env(metadata)
