"""`lastline-reporting` / `python -m lastline_reporting`: serve, or migrate the schema."""

from lastline_shared.service_cli import service_cli

from lastline_reporting.app import runtime

main = service_cli(runtime)

if __name__ == "__main__":
    main()
