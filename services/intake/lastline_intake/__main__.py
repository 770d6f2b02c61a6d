"""`lastline-intake` / `python -m lastline_intake`: serve, migrate the schema, manage partners, or
erase expired client PII."""

from lastline_intake.app import partners, pii_retention, runtime
from lastline_intake.cli import intake_cli
from lastline_shared.service_cli import service_cli

main = service_cli(runtime, extra=intake_cli(runtime, partners, pii_retention))

if __name__ == "__main__":
    main()
