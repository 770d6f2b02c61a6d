"""`lastline-intake` / `python -m lastline_intake`: serve, migrate the schema, or manage partners."""

from lastline_intake.app import partners, runtime
from lastline_intake.cli import partners_cli
from lastline_shared.service_cli import service_cli

main = service_cli(runtime, extra=partners_cli(runtime, partners))

if __name__ == "__main__":
    main()
