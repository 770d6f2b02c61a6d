from lastline_intake.app import metadata
from lastline_shared.migrations import run_env

run_env(metadata)
