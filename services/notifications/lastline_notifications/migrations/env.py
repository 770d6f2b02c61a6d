from lastline_shared.migrations import run_env

from lastline_notifications.app import metadata

run_env(metadata)
