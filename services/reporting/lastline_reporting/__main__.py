"""`lastline-reporting` / `python -m lastline_reporting`: serve, or migrate the schema."""

from lastline_reporting.app import runtime
from lastline_shared.service_cli import service_cli

main = service_cli(runtime)

if __name__ == "__main__":
    main()
